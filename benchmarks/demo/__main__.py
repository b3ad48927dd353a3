"""``python -m benchmarks.demo``: :func:`benchmarks.demo.run.main`."""
import sys

from .run import main

sys.exit(main())
