"""Physics benchmark: solver accuracy against the references, and PhysicsAdapter step time.

``python -m benchmarks.physics`` (or ``benchmarks.physics.run``) runs it;
:mod:`benchmarks.physics.run` documents it and holds its code.  Its names stay importable
from here (deprecated: import them from :mod:`benchmarks.physics.run`).
"""
from ..common.alias import folder_exports

__getattr__ = folder_exports(__name__, ("run", "step_time"))
