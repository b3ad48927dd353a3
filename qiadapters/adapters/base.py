"""Old home of the adapter contract, kept so existing imports work.

The contract now lives in three modules: :mod:`qiadapters.adapters.registry` (``register``,
``CONFIGS``, ``LAYERS``), :mod:`qiadapters.adapters.config` (``AdapterConfig``) and
:mod:`qiadapters.adapters.layer` (``AdapterLayer``, ``AdapterParts``).  Importing a name from
here still works and warns once (``DeprecationWarning``) naming its new module.
"""
from __future__ import annotations

import importlib
import warnings

_MOVED = {
    "CONFIGS": "registry", "LAYERS": "registry", "PROVIDERS": "registry",
    "register": "registry", "layer_class": "registry",
    "AdapterConfig": "config", "CONFIG_NAME": "config",
    "AdapterLayer": "layer", "AdapterParts": "layer",
}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new = f"qiadapters.adapters.{_MOVED[name]}"
    warnings.warn(f"qiadapters.adapters.base.{name} moved to {new}.{name}; import it from "
                  f"there (or from qiadapters.adapters)", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(new), name)


def __dir__():
    return sorted(_MOVED)
