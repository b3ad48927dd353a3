"""The demo (``make demo``): a Hamming adapter vs LoRA on a real model and real data, on CPU.

``python -m benchmarks.demo`` (or ``benchmarks.demo.run``) runs it;
:mod:`benchmarks.demo.run` documents it.  The names of the former module
``benchmarks/demo.py`` stay importable from here (deprecated: import them from the
modules beside it).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "methods", "table"))
