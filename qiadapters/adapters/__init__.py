"""Adapter families.  Each family registers ``config class -> layer class`` in
:mod:`qiadapters.adapters.base`; the model machinery (:mod:`qiadapters.model`) only uses that
registry, so a new family (e.g. the physics-prior adapter) plugs in by calling
:func:`~qiadapters.adapters.base.register`."""
from .base import CONFIGS, LAYERS, AdapterConfig, AdapterLayer, AdapterParts, register
from .hamming import HammingAdapter, HammingConfig
from .mixture import Mixture, MixtureConfig

__all__ = ["AdapterConfig", "AdapterLayer", "AdapterParts", "register", "CONFIGS", "LAYERS",
           "HammingAdapter", "HammingConfig", "Mixture", "MixtureConfig"]
