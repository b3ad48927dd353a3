"""Vision benchmark: every adapter family on a small pretrained ViT, five 1,000-example tasks.

``python -m benchmarks.vision`` (or ``benchmarks.vision.run``) is the command
(:mod:`benchmarks.vision.run` documents it; :mod:`~benchmarks.vision.worker` trains the
runs); beside it :mod:`~benchmarks.vision.methods` (the
rows and their lr grids), :mod:`~benchmarks.vision.data` (the tasks),
:mod:`~benchmarks.vision.model` (the ViT), :mod:`~benchmarks.vision.pretrain` (its
checkpoint), :mod:`~benchmarks.vision.tables` (the outputs) and
:mod:`~benchmarks.vision.figures`.  The names of the former module ``benchmarks/vision.py``
are still importable from here (deprecated: import them from where they live).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "worker", "tables", "methods", "data"))
