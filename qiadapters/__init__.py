"""qiadapters: parameter-efficient fine-tuning with quantum-inspired (Hamming-weight) adapters.

The physics-prior family lives in the sibling top-level package :mod:`physics`; this package
never imports it at import time.
"""
from ._version import __version__
from .circuits import (FBS, GATES, LAYOUTS, RBS, Circuit, block_dim, compound,
                       compound_by_minors, hamming_basis, max_qubits)

__all__ = ["__version__", "Circuit", "RBS", "FBS", "GATES", "LAYOUTS", "hamming_basis",
           "block_dim", "max_qubits", "compound", "compound_by_minors", "pennylane"]
from .adapters import HammingAdapter, HammingConfig
from .model import AdapterModel, get_adapter_model

__all__ += ["HammingAdapter", "HammingConfig", "AdapterModel", "get_adapter_model"]
from .adapters import Mixture, MixtureConfig

__all__ += ["Mixture", "MixtureConfig"]
from . import pennylane  # noqa: E402  (reference functions and export; PennyLane loads lazily)
from . import bounds  # noqa: E402  (size bounds on what a config may build; unbounded())
from . import optimizers  # noqa: E402  (create_hamming_optimizer: rates per parameter kind)
