"""Adapter families and the contract they share.

* :mod:`~qiadapters.adapters.registry` -- ``register(config_cls, layer_cls)``: the one line
  that plugs a family in; the model machinery (:mod:`qiadapters.model`) only uses it.
* :mod:`~qiadapters.adapters.config` -- ``AdapterConfig``, the dataclass every config extends.
* :mod:`~qiadapters.adapters.layer` -- ``AdapterLayer``, the layer contract (build, forward,
  fold), with the device / dtype policy.
* :mod:`~qiadapters.adapters.routers` -- the routers shared by the mixture layer and the
  physics family.
* Families: :mod:`~qiadapters.adapters.hamming`, :mod:`~qiadapters.adapters.mixture`
  (``physics`` registers itself the same way when imported).
"""
from .config import AdapterConfig
from .layer import AdapterLayer, AdapterParts, SharedBase, compute_dtype
from .registry import CONFIGS, LAYERS, register
from .hamming import HammingAdapter, HammingConfig
from .mixture import Mixture, MixtureConfig

__all__ = ["AdapterConfig", "AdapterLayer", "AdapterParts", "SharedBase", "compute_dtype",
           "register", "CONFIGS", "LAYERS", "HammingAdapter", "HammingConfig",
           "Mixture", "MixtureConfig"]
