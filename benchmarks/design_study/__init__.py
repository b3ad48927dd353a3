"""The design study: Hamming variants against peft's tiny-budget methods at equal budget.

``python -m benchmarks.design_study`` (or ``benchmarks.design_study.run``) runs it;
:mod:`benchmarks.design_study.run` documents it and holds its code.  Its names stay importable
from here (deprecated: import them from :mod:`benchmarks.design_study.run`).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "rows", "compare", "report"))
