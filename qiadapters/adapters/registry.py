"""The registry of adapter families: ``adapter_type`` -> config class -> layer class.

A family is a pair ``(config class, layer class)``; registering it is one line in the
family's ``__init__.py``::

    register(HammingConfig, HammingAdapter)

The model machinery (:mod:`qiadapters.model`) and saved files only ever go through this
registry, so a new family plugs in without touching them.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

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


def register(config_cls: type["AdapterConfig"], layer_cls: type["AdapterLayer"]) -> None:
    """Register an adapter family: ``config_cls.adapter_type`` names it in saved configs."""
    from .config import AdapterConfig
    from .layer import AdapterLayer

    if not (isinstance(config_cls, type) and issubclass(config_cls, AdapterConfig)):
        raise TypeError(f"config_cls must be an AdapterConfig subclass, got {config_cls!r}")
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, AdapterLayer)):
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


def config_class(adapter_type: str) -> type["AdapterConfig"]:
    """The config class registered as ``adapter_type``, importing its provider package first
    if it is not loaded yet (e.g. ``"physics"``)."""
    import importlib

    if not isinstance(adapter_type, str):  # a JSON list or object is no name (and unhashable)
        raise ValueError(f"adapter_type={adapter_type!r} is not valid; choose one of "
                         f"{list(dict.fromkeys([*CONFIGS, *PROVIDERS]))}")
    if adapter_type not in CONFIGS and adapter_type in PROVIDERS:
        importlib.import_module(PROVIDERS[adapter_type])  # registers the family on import
    if adapter_type not in CONFIGS:
        raise ValueError(f"adapter_type={adapter_type!r} is not valid; choose one of "
                         f"{list(CONFIGS)}")
    return CONFIGS[adapter_type]
