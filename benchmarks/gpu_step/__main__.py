"""``python -m benchmarks.gpu_step``: :func:`benchmarks.gpu_step.step.main`."""
from .step import main

raise SystemExit(main())
