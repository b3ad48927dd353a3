"""``python -m benchmarks.circuits``: :func:`benchmarks.circuits.run.main`."""
from .run import main

main()
