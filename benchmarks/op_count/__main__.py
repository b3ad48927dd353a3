"""``python -m benchmarks.op_count``: :func:`benchmarks.op_count.run.main`."""
from .run import main

raise SystemExit(main())
