"""The contract every adapter family implements, and the registry of families.

A family is a pair ``(config class, layer class)`` registered with :func:`register`:

* the **config** (:class:`AdapterConfig` subclass) is a documented dataclass with a unique
  ``adapter_type`` string; every field except ``target_modules`` / ``modules_to_save`` is a
  per-layer option passed to the layer's :meth:`~AdapterLayer.build`;
* the **layer** (:class:`AdapterLayer` subclass) wraps one base module (``base_layer``) and
  keeps the state of each named adapter in ``nn.ModuleDict`` attributes listed in
  ``adapter_layer_names`` (trainable modules, saved) and plain dicts listed in
  ``other_param_names`` (settings, not saved: they are rebuilt from the config).

A layer declares what it can do as class attributes: ``mergeable`` says whether
:meth:`~AdapterLayer.merge` can fold the adapters into the base weights.  A family implements
:meth:`~AdapterLayer.build` (validate and construct one adapter's modules without touching the
base module), :meth:`~AdapterLayer.adapter_forward` and, if mergeable,
:meth:`~AdapterLayer._merge` / :meth:`~AdapterLayer._unmerge`; everything else (adding,
activating, deleting, disabling, merge bookkeeping, aux losses) is generic and lives here.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import warnings
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, NamedTuple, Optional, Sequence, Union

import torch
from torch import nn

#: ``adapter_type`` -> config class.
CONFIGS: dict[str, type["AdapterConfig"]] = {}
#: config class -> layer class.
LAYERS: dict[type["AdapterConfig"], type["AdapterLayer"]] = {}
#: ``adapter_type`` -> package that registers it when imported (loaded on demand by
#: :meth:`AdapterConfig.from_dict`, never at import time: ``qiadapters`` does not import them).
PROVIDERS: dict[str, str] = {"physics": "physics"}

CONFIG_NAME = "adapter_config.json"


def register(config_cls: type["AdapterConfig"], layer_cls: type["AdapterLayer"]) -> None:
    """Register an adapter family: ``config_cls.adapter_type`` names it in saved configs."""
    if not (isinstance(config_cls, type) and issubclass(config_cls, AdapterConfig)):
        raise TypeError(f"config_cls must be an AdapterConfig subclass, got {config_cls!r}")
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, AdapterLayer)):
        raise TypeError(f"layer_cls must be an AdapterLayer subclass, got {layer_cls!r}")
    if not config_cls.adapter_type:
        raise ValueError(f"{config_cls.__name__}.adapter_type must be a non-empty string")
    CONFIGS[config_cls.adapter_type] = config_cls
    LAYERS[config_cls] = layer_cls


def layer_class(config: "AdapterConfig") -> type["AdapterLayer"]:
    """The layer class registered for ``config``'s family."""
    try:
        return LAYERS[type(config)]
    except KeyError:
        raise TypeError(f"{type(config).__name__} is not a registered adapter config; "
                        f"registered: {[c.__name__ for c in LAYERS]}") from None


# ---------------------------------------------------------------------------------- config
_SHARED_FIELDS = ("target_modules", "modules_to_save")


@dataclass
class AdapterConfig:
    """Fields shared by every family: which modules to adapt and which to train fully."""

    target_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": (
        "Modules to wrap: a list of name suffixes (['query', 'value'] matches "
        "'encoder.layer.0.attention.self.query'), a regex string that must match the full "
        "module name, or 'all-linear' (every nn.Linear except the output head: the model's "
        "output embeddings, modules named classifier/score/lm_head/qa_outputs/head/cls, or "
        "else the last nn.Linear).")})
    modules_to_save: Optional[list[str]] = field(default=None, metadata={"help": (
        "Name suffixes of modules trained in full next to the adapter (e.g. the freshly "
        "initialised ['classifier']).  Each gets a trainable copy per adapter; the original "
        "stays frozen and is used when adapters are disabled.  Copies are saved with the "
        "adapter.")})

    adapter_type: ClassVar[str] = ""

    def __post_init__(self):
        tm = self.target_modules
        if tm is None:
            raise ValueError("target_modules is required: a list of module-name suffixes, a "
                             "regex string, or 'all-linear'")
        if isinstance(tm, str):
            if not tm:
                raise ValueError("target_modules='' is empty; give name suffixes, a regex or "
                                 "'all-linear'")
            if tm != "all-linear":
                try:
                    re.compile(tm)
                except re.error as e:
                    raise ValueError(f"target_modules={tm!r} is not a valid regex: {e}") from None
        else:
            self.target_modules = _names("target_modules", tm)
        if self.modules_to_save is not None:
            self.modules_to_save = _names("modules_to_save", self.modules_to_save)
        self.validate()

    def validate(self) -> None:
        """Family hook: check the per-layer options (called on construction)."""

    # --------------------------------------------------------------- per-layer options
    def layer_options(self) -> dict[str, Any]:
        """The keyword arguments given to the layer's ``build`` (every non-shared field)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in _SHARED_FIELDS}

    # --------------------------------------------------------------- JSON round trip
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``adapter_type`` and every field (tuples become lists)."""
        out: dict[str, Any] = {"adapter_type": self.adapter_type}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdapterConfig":
        """Inverse of :meth:`to_dict`.  On the base class, dispatches on ``adapter_type``."""
        if not isinstance(data, dict):
            raise TypeError(f"config data must be a dict, got {type(data).__name__}")
        data = dict(data)
        kind = data.pop("adapter_type", cls.adapter_type or None)
        target = cls
        if cls is AdapterConfig or kind != cls.adapter_type:
            if kind not in CONFIGS and kind in PROVIDERS:
                importlib.import_module(PROVIDERS[kind])  # registers the family on import
            if kind not in CONFIGS:
                raise ValueError(f"adapter_type={kind!r} is not valid; choose one of "
                                 f"{list(CONFIGS)}")
            target = CONFIGS[kind]
            if not issubclass(target, cls):
                raise ValueError(f"adapter_type={kind!r} is a {target.__name__}, not a "
                                 f"{cls.__name__}")
        known = {f.name: f for f in fields(target)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown {target.__name__} fields {unknown}; valid fields: "
                             f"{sorted(known)}")
        kwargs = {}
        for name, value in data.items():
            default = known[name].default
            if isinstance(value, list) and default is not MISSING and isinstance(default, tuple):
                value = tuple(value)
            kwargs[name] = value
        return target(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> str:
        """Write ``adapter_config.json`` (plus ``extra`` keys) into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, CONFIG_NAME)
        data = {**self.to_dict(), **(extra or {})}
        with open(path, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, ignore: Sequence[str] = ()) -> "AdapterConfig":
        """Read ``adapter_config.json`` from ``directory`` (keys in ``ignore`` are dropped)."""
        path = os.path.join(directory, CONFIG_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {CONFIG_NAME} in {os.fspath(directory)!r}")
        with open(path) as f:
            data = json.load(f)
        for key in ignore:
            data.pop(key, None)
        return cls.from_dict(data)


def _names(arg: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set)):
        raise ValueError(f"{arg}={value!r} must be a list of module-name strings")
    value = list(value)
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad or not value:
        raise ValueError(f"{arg}={value!r} must be a non-empty list of non-empty strings")
    return value


# ---------------------------------------------------------------------------------- layer
class AdapterParts(NamedTuple):
    """One adapter's state for one layer, built before anything is attached.

    ``modules``: attribute in ``adapter_layer_names`` -> module; ``settings``: attribute in
    ``other_param_names`` -> value.
    """

    modules: dict[str, nn.Module]
    settings: dict[str, Any]


class AdapterLayer(nn.Module):
    """A base module wrapped with named adapters (the shared contract; see module docstring).

    ``forward`` runs the base module alone when adapters are disabled or none is active,
    the merged base module when every active adapter is merged, and otherwise the family's
    :meth:`adapter_forward` on the active, unmerged adapters in the order they were added.
    """

    #: ``nn.ModuleDict`` attributes holding per-adapter modules (the saved, trainable state).
    adapter_layer_names: ClassVar[tuple[str, ...]] = ()
    #: plain dict attributes holding per-adapter settings.
    other_param_names: ClassVar[tuple[str, ...]] = ()
    #: whether :meth:`merge` can fold the adapters into the base weights.
    mergeable: ClassVar[bool] = False

    def __init__(self, base_layer: nn.Module):
        super().__init__()
        if not isinstance(base_layer, nn.Module):
            raise TypeError(f"base_layer must be an nn.Module, got {type(base_layer).__name__}")
        if not self.adapter_layer_names:
            raise TypeError(f"{type(self).__name__}.adapter_layer_names must name at least "
                            f"one nn.ModuleDict attribute")
        self.base_layer = base_layer
        for attr in self.adapter_layer_names:
            setattr(self, attr, nn.ModuleDict())
        for attr in self.other_param_names:
            setattr(self, attr, {})
        self._active: list[str] = []
        self.merged_adapters: list[str] = []
        self.disable_adapters = False

    @classmethod
    def wrap(cls, base_layer: nn.Module) -> "AdapterLayer":
        """An instance of this layer class around ``base_layer`` holding no adapter yet."""
        layer = cls.__new__(cls)
        AdapterLayer.__init__(layer, base_layer)
        return layer

    # ------------------------------------------------------------ family hooks
    @classmethod
    def build(cls, base_layer: nn.Module, **options) -> AdapterParts:
        """Validate ``options`` against ``base_layer`` and construct one adapter's state.

        Must not modify ``base_layer``; raises ValueError/TypeError naming the bad value.
        """
        raise NotImplementedError(f"{cls.__name__} must implement build()")

    def adapter_forward(self, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
        """Forward through ``base_layer`` with the named (active, unmerged) adapters."""
        raise NotImplementedError(f"{type(self).__name__} must implement adapter_forward()")

    def adapter_output(self, x: torch.Tensor, base_output: torch.Tensor,
                       adapter_names: list[str], *args, **kwargs):
        """The adapted output, given ``base_output = base_layer(x, *args, **kwargs)`` already
        computed (the mixture layer computes it once for all its experts).

        Default: :meth:`adapter_forward`, which ignores ``base_output`` (a second base call).
        A family overrides this when its output is cheap given the base output.
        """
        return self.adapter_forward(x, adapter_names, *args, **kwargs)

    def merge_blocker(self) -> Optional[str]:
        """Why :meth:`merge` cannot fold the active adapters into the base weights, or None.

        Default: None for a ``mergeable`` family; a layer whose mergeability depends on its
        adapters' options (e.g. the mixture's router) overrides this and ``mergeable``.
        """
        return None if self.mergeable else "they are not a change of the base weights"

    def _merge(self, adapter_names: list[str], safe_merge: bool) -> None:
        raise TypeError(f"{type(self).__name__} adapters are not mergeable")

    def _unmerge(self, adapter_names: list[str]) -> None:
        raise TypeError(f"{type(self).__name__} adapters are not mergeable")

    def aux_loss(self) -> torch.Tensor:
        """Auxiliary loss of the active adapters (regularisers, router losses); default 0."""
        ref = next(self.base_layer.parameters(), None)
        device = ref.device if ref is not None else None
        return torch.zeros((), device=device)

    # ------------------------------------------------------------ bookkeeping
    @property
    def adapter_names(self) -> list[str]:
        """Names of the adapters held by this layer, in the order they were added."""
        return list(getattr(self, self.adapter_layer_names[0]).keys())

    @property
    def active_adapters(self) -> list[str]:
        """Active adapters held by this layer, in the order they were added."""
        return [a for a in self.adapter_names if a in self._active]

    @property
    def merged(self) -> bool:
        return bool(self.merged_adapters)

    def attach(self, adapter_name: str, parts: AdapterParts) -> None:
        """Store an adapter built by :meth:`build` under ``adapter_name`` (not activated)."""
        if adapter_name in self.adapter_names:
            raise ValueError(f"adapter_name={adapter_name!r} already exists on this "
                             f"{type(self).__name__}; existing: {self.adapter_names}")
        for attr in self.adapter_layer_names:
            getattr(self, attr)[adapter_name] = parts.modules[attr]
        for attr in self.other_param_names:
            getattr(self, attr)[adapter_name] = parts.settings[attr]

    def add_adapter(self, adapter_name: str, **options) -> None:
        """Build and attach another adapter (use :meth:`set_adapter` to activate it)."""
        self.attach(adapter_name, self.build(self.base_layer, **options))

    def set_adapter(self, adapter_names: str | Sequence[str]) -> None:
        """Make these adapters active (they apply in the order they were added).

        Names this layer does not hold are ignored (a model's adapters may target different
        layers).  A merged layer is unmerged first, with a warning.
        """
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        if self.merged and set(names) != set(self.merged_adapters):
            warnings.warn("set_adapter on a merged layer: unmerging first", stacklevel=2)
            self.unmerge()
        self._active = names

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter (unmerging the layer first if it is merged)."""
        if adapter_name not in self.adapter_names:
            raise ValueError(f"adapter_name={adapter_name!r} is not on this layer; "
                             f"existing: {self.adapter_names}")
        if adapter_name in self.merged_adapters:
            self.unmerge()
        for attr in self.adapter_layer_names:
            del getattr(self, attr)[adapter_name]
        for attr in self.other_param_names:
            getattr(self, attr).pop(adapter_name, None)
        self._active = [a for a in self._active if a != adapter_name]

    # ------------------------------------------------------------ merge
    def merge(self, adapter_names: Sequence[str] | None = None, safe_merge: bool = False) -> None:
        """Fold the adapters (default: the active ones) into the base weights.

        A second merge while merged is a no-op with a warning.  ``safe_merge`` checks the
        merged weights are finite before writing them.
        """
        reason = self.merge_blocker()
        if reason is not None:
            raise TypeError(f"{type(self).__name__} adapters are not mergeable ({reason}); "
                            f"use unload() instead")
        if self.merged:
            warnings.warn(f"{type(self).__name__} is already merged "
                          f"({self.merged_adapters}); merge() is a no-op", stacklevel=2)
            return
        names = self.active_adapters if adapter_names is None else [
            a for a in self.adapter_names if a in set(adapter_names)]
        if not names:
            return
        self._merge(names, safe_merge)
        self.merged_adapters = names

    def unmerge(self) -> None:
        """Undo :meth:`merge`; a no-op with a warning when nothing is merged."""
        if not self.merged:
            warnings.warn(f"{type(self).__name__} is not merged; unmerge() is a no-op",
                          stacklevel=2)
            return
        self._unmerge(self.merged_adapters)
        self.merged_adapters = []

    def unload(self, merge: bool = False) -> nn.Module:
        """The base module with the adapters merged in (``merge=True``) or removed."""
        if merge:
            if not self.merged:
                self.merge()
        elif self.merged:
            self.unmerge()
        return self.base_layer

    # ------------------------------------------------------------ forward
    def forward(self, x, *args, **kwargs):
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        pending = [a for a in self.active_adapters if a not in self.merged_adapters]
        if not pending:
            return self.base_layer(x, *args, **kwargs)
        return self.adapter_forward(x, pending, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"active={self.active_adapters}, merged={self.merged_adapters}, "
                f"disabled={self.disable_adapters}")
