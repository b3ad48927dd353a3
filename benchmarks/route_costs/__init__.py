"""Benchmark: the two routes of a compound block, timed against the cost model that picks one.

``python -m benchmarks.route_costs`` (or ``benchmarks.route_costs.run``) runs it;
:mod:`benchmarks.route_costs.run` documents it.  The names of the former module
``benchmarks/route_costs.py`` stay importable from here (deprecated: import them from the
modules beside it).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "cases"))
