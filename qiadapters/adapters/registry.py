"""The registry of adapter families: ``adapter_type`` -> config class -> layer class.

A family is a pair ``(config class, layer class)``; registering it is one line in the
family's package ``__init__.py`` (``qiadapters.adapters.hamming``, ``.mixture``, ``physics``)::

    register(HammingConfig, HammingAdapter)

The model machinery (:mod:`qiadapters.model`) and saved files only ever go through this
registry, so a new family plugs in without touching them.  A leaf: it imports none of the
classes it holds (the contract's base classes are looked up among the loaded modules), and
:func:`config_class` is the one place a config's ``adapter_type`` picks its class.
"""
from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .config import AdapterConfig
    from .layer import AdapterLayer

#: ``adapter_type`` -> config class.
CONFIGS: dict[str, type["AdapterConfig"]] = {}
#: config class -> layer class.
LAYERS: dict[type["AdapterConfig"], type["AdapterLayer"]] = {}
#: ``adapter_type`` -> package that registers it when imported (loaded on demand when a saved
#: config names it, never at import time: ``qiadapters`` does not import these packages).
PROVIDERS: dict[str, str] = {"physics": "physics"}


def _subclass(cls, module: str, base: str) -> bool:
    """``issubclass(cls, module.base)`` without importing ``module``: a class deriving from
    ``base`` exists only once ``module`` is loaded, so a module not loaded means no."""
    found = getattr(sys.modules.get(module), base, None)
    return isinstance(cls, type) and found is not None and issubclass(cls, found)


def register(config_cls: type["AdapterConfig"], layer_cls: type["AdapterLayer"]) -> None:
    """Register an adapter family: ``config_cls.adapter_type`` names it in saved configs."""
    if not _subclass(config_cls, f"{__package__}.config", "AdapterConfig"):
        raise TypeError(f"config_cls must be an AdapterConfig subclass, got {config_cls!r}")
    if not _subclass(layer_cls, f"{__package__}.layer", "AdapterLayer"):
        raise TypeError(f"layer_cls must be an AdapterLayer subclass, got {layer_cls!r}")
    if not config_cls.adapter_type:
        raise ValueError(f"{config_cls.__name__}.adapter_type must be a non-empty string")
    CONFIGS[config_cls.adapter_type] = config_cls
    LAYERS[config_cls] = layer_cls


@contextmanager
def registered(config_cls: type["AdapterConfig"], layer_cls: type["AdapterLayer"]):
    """:func:`register` for the length of a ``with`` block, then forgotten (a family defined
    by a test: other code never sees it among the valid adapter types)::

        with registered(ScaleConfig, ScaleLayer):
            ...
    """
    register(config_cls, layer_cls)
    try:
        yield
    finally:
        CONFIGS.pop(config_cls.adapter_type, None)
        LAYERS.pop(config_cls, None)


def layer_class(config: "AdapterConfig") -> type["AdapterLayer"]:
    """The layer class registered for ``config``'s family."""
    try:
        return LAYERS[type(config)]
    except KeyError:
        raise TypeError(f"{type(config).__name__} is not a registered adapter config; "
                        f"registered: {[c.__name__ for c in LAYERS]}") from None


def config_class(adapter_type: str, within: Optional[type] = None) -> type["AdapterConfig"]:
    """The config class registered as ``adapter_type``, importing its provider package first
    if it is not loaded yet (e.g. ``"physics"``); with ``within``, it must be ``within`` or a
    subclass of it (``HammingConfig.from_dict`` reads no mixture).  The one dispatch of
    :meth:`AdapterConfig.from_dict <qiadapters.adapters.config.AdapterConfig.from_dict>`."""
    if not isinstance(adapter_type, str):  # a JSON list or object is no name (and unhashable)
        raise ValueError(f"adapter_type={adapter_type!r} is not valid; choose one of "
                         f"{list(dict.fromkeys([*CONFIGS, *PROVIDERS]))}")
    if adapter_type not in CONFIGS and adapter_type in PROVIDERS:
        importlib.import_module(PROVIDERS[adapter_type])  # registers the family on import
    if adapter_type not in CONFIGS:
        raise ValueError(f"adapter_type={adapter_type!r} is not valid; choose one of "
                         f"{list(CONFIGS)}")
    target = CONFIGS[adapter_type]
    if within is not None and not issubclass(target, within):
        raise ValueError(f"adapter_type={adapter_type!r} is a {target.__name__}, not a "
                         f"{within.__name__}")
    return target
