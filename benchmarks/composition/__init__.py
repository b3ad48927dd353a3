"""Benchmark: combining two task adapters into one, Hamming against peft LoRA.

``python -m benchmarks.composition`` (or ``benchmarks.composition.run``) runs it;
:mod:`benchmarks.composition.run` documents it.  The names of the former module
``benchmarks/composition.py`` stay importable from here (deprecated: import them from the
modules beside it).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "tasks", "combine", "report"))
