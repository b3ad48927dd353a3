"""Benchmark: compiled Hamming blocks vs the minors-by-determinant construction vs PennyLane.

``python -m benchmarks.circuits`` (or ``benchmarks.circuits.run``) runs it;
:mod:`benchmarks.circuits.run` documents it and holds its code.  Its names stay importable
from here (deprecated: import them from :mod:`benchmarks.circuits.run`).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "measure"))
