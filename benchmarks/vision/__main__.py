"""``python -m benchmarks.vision``: :func:`benchmarks.vision.run.main`."""
import sys

from .run import main

sys.exit(main())
