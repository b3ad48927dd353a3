"""``python -m benchmarks.frontier``: :func:`benchmarks.frontier.run.main`."""
import sys

from .run import main

sys.exit(main())
