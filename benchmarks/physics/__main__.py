"""``python -m benchmarks.physics``: :func:`benchmarks.physics.run.main`."""
from .run import main

main()
