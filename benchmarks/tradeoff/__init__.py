"""Parameter count vs accuracy, qiadapters against Hugging Face peft in one run.

``python -m benchmarks.tradeoff`` (or ``benchmarks.tradeoff.run``) is the command
(:mod:`benchmarks.tradeoff.run` documents it); :mod:`~benchmarks.tradeoff.methods` holds the
rows and their lr grids, :mod:`~benchmarks.tradeoff.tables` the outputs.  The names of the
former module ``benchmarks/tradeoff.py`` (``train_one``, ``summarize``, ``report``, ...) are
still importable from here (deprecated: import them from where they live).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "tables", "methods", "benchmarks.common.runs",
                                         "benchmarks.common.summary", "benchmarks.common.sweep"))
