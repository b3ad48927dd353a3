"""Benchmark: orthogonality drift of Hamming blocks under long, aggressive training.

``python -m benchmarks.numerics`` (or ``benchmarks.numerics.run``) runs it;
:mod:`benchmarks.numerics.run` documents it.  The names of the former module
``benchmarks/numerics.py`` stay importable from here (deprecated: import them from the
modules beside it).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "orthogonality"))
