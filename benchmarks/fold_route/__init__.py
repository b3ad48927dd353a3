"""Benchmark: the fold route against the activation route and LoRA r=8 (memory, CPU time).

``python -m benchmarks.fold_route`` (or ``benchmarks.fold_route.run``) runs it;
:mod:`benchmarks.fold_route.run` documents it.  The names of the former module
``benchmarks/fold_route.py`` stay importable from here (deprecated: import them from the
modules beside it).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "process"))
