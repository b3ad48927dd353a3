"""``python -m benchmarks.route_costs``: :func:`benchmarks.route_costs.run.main`."""
from .run import main

main()
