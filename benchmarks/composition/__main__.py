"""``python -m benchmarks.composition``: :func:`benchmarks.composition.run.main`."""
from .run import main

raise SystemExit(main())
