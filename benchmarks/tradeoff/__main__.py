"""``python -m benchmarks.tradeoff``: :func:`benchmarks.tradeoff.run.main`."""
import sys

from .run import main

sys.exit(main())
