"""``python -m benchmarks.numerics``: :func:`benchmarks.numerics.run.main`."""
from .run import main

main()
