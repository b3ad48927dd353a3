"""Training speed and memory of Hamming adapters against peft's methods and the paper's
dense construction.

``python -m benchmarks.speed`` (or ``benchmarks.speed.run``) is the command
(:mod:`benchmarks.speed.run` documents its sections, :mod:`~benchmarks.speed.sections` runs
them); beside it :mod:`~benchmarks.speed.minilm` (methods, cases, the MiniLM step),
:mod:`~benchmarks.speed.report` (the summary and its PASS/FAIL lines),
:mod:`~benchmarks.speed.scaling`, :mod:`~benchmarks.speed.memory`, and the commands
:mod:`~benchmarks.speed.ablation` and :mod:`~benchmarks.speed.breakdown`.  The names of the
former module ``benchmarks/speed.py`` are still importable from here (deprecated).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "sections"))
