"""Benchmark: one mixed-adapter batch against one batch per adapter (throughput).

``python -m benchmarks.mixed_batch`` (or ``benchmarks.mixed_batch.run``) runs it;
:mod:`benchmarks.mixed_batch.run` documents it.  The names of the former module
``benchmarks/mixed_batch.py`` stay importable from here (deprecated: import them from the
modules beside it).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "batches", "figures",
                                          "benchmarks.common.architecture"))
