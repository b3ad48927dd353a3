"""``python -m benchmarks.mixed_batch``: :func:`benchmarks.mixed_batch.run.main`."""
from .run import main

raise SystemExit(main())
