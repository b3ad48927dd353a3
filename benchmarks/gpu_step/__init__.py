"""A training step at a shape people train on GPUs: a Llama-like decoder of about 0.5B parameters.

``python -m benchmarks.gpu_step`` runs it; :mod:`benchmarks.gpu_step.step` documents it and
holds its code (not ``run.py``: the module's function ``run`` keeps that name).  Its names stay importable
from here (deprecated: import them from :mod:`benchmarks.gpu_step.step`).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("step",))
