"""``python -m benchmarks.fold_route``: :func:`benchmarks.fold_route.run.main`."""
from .run import main

raise SystemExit(main())
