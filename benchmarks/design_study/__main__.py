"""``python -m benchmarks.design_study``: :func:`benchmarks.design_study.run.main`."""
from .run import main

raise SystemExit(main())
