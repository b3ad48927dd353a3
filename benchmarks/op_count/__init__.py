"""Kernel launches per training step, counted as the ATen ops it dispatches (no timing).

``python -m benchmarks.op_count`` (or ``benchmarks.op_count.run``) runs it;
:mod:`benchmarks.op_count.run` documents it and holds its code.  Its names stay importable
from here (deprecated: import them from :mod:`benchmarks.op_count.run`).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "count"))
