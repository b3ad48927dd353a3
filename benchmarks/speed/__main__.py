"""``python -m benchmarks.speed``: :func:`benchmarks.speed.run.main`."""
from .run import main

main()
