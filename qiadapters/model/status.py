"""What each adapter layer is doing, in peft's terms: :func:`get_layer_status` and
:func:`get_model_status` return dataclasses with the fields of peft 0.21's
``TunerLayerStatus`` / ``TunerModelStatus``, computed with its rules (a value that differs
between layers is ``"irregular"``), so code that reads peft's status reads ours."""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Literal, Union

from torch import nn

from ..adapters.layer import AdapterLayer, unwrap
from .injection import adapter_layers

Irregular = Literal["irregular"]


@dataclass
class TunerLayerStatus:
    """One adapter layer (peft's fields): its module path ``name``, its class
    ``module_type``, whether its adapters are ``enabled``, the ``active_adapters``, the
    ``merged_adapters``, per adapter whether its parameters ``requires_grad`` (``"irregular"``
    for a mix), the ``available_adapters`` and per adapter the ``devices`` of its parameters;
    ``quantization_backend``: ``"bnb 4bit"`` / ``"bnb 8bit"`` for a bitsandbytes base, else
    None."""

    name: str
    module_type: str
    enabled: bool
    active_adapters: list[str]
    merged_adapters: list[str]
    requires_grad: dict[str, Union[bool, Irregular]]
    available_adapters: list[str]
    devices: dict[str, list[str]]
    quantization_backend: Union[str, None]


@dataclass
class TunerModelStatus:
    """The whole model (peft's fields): the class of the base model, ``"AdapterModel"``,
    each adapter's ``adapter_type`` under ``peft_types``, parameter counts, the number of
    adapter layers, and the layers' fields merged as peft merges them (``"irregular"`` where
    layers disagree)."""

    base_model_type: str
    adapter_model_type: str
    peft_types: dict[str, str]
    trainable_params: int
    total_params: int
    num_adapter_layers: int
    enabled: Union[bool, Irregular]
    active_adapters: Union[list[str], Irregular]
    merged_adapters: Union[list[str], Irregular]
    requires_grad: dict[str, Union[bool, Irregular]]
    available_adapters: list[str]
    devices: dict[str, list[str]]
    quantization_backend: Union[str, None, Irregular]


def _agree(values) -> Union[bool, Irregular]:
    values = list(values)
    if all(v is True for v in values):
        return True
    if all(v is False for v in values):
        return False
    return "irregular"


def _quantization(layer: AdapterLayer) -> str | None:
    base = unwrap(layer.base_layer)
    if not type(base).__module__.startswith("bitsandbytes"):
        return None
    return "bnb 4bit" if "4bit" in type(base).__name__ else "bnb 8bit"


def _layer_status(name: str, layer: AdapterLayer) -> TunerLayerStatus:
    grads: dict[str, list[bool]] = collections.defaultdict(list)
    devices: dict[str, set[str]] = collections.defaultdict(set)
    for attr in layer.adapter_layer_names:
        for adapter, module in getattr(layer, attr).items():
            for p in module.parameters():
                grads[adapter].append(p.requires_grad)
                devices[adapter].add(p.device.type)
    return TunerLayerStatus(
        name=name, module_type=type(layer).__name__, enabled=not layer.disable_adapters,
        active_adapters=list(layer.active_adapters), merged_adapters=list(layer.merged_adapters),
        requires_grad={a: _agree(v) for a, v in grads.items()},
        available_adapters=sorted(layer.adapter_names),
        devices={a: sorted(d) for a, d in devices.items()},
        quantization_backend=_quantization(layer))


def _root(model: nn.Module) -> nn.Module:
    from .adapter_model import AdapterModel
    return model.base_model if isinstance(model, AdapterModel) else model


def get_layer_status(model: nn.Module) -> list[TunerLayerStatus]:
    """The status of every adapter layer of ``model`` (an ``AdapterModel`` or a model with
    adapter layers), modules_to_save copies included, as peft lists its wrappers; ValueError
    when it has none."""
    status = [_layer_status(n, layer) for n, layer in adapter_layers(_root(model))]
    if not status:
        raise ValueError(f"model ({type(model).__name__}) holds no adapter layers; inject "
                         f"adapters first (qiadapters.get_adapter_model(model, config))")
    return status


def get_model_status(model: nn.Module) -> TunerModelStatus:
    """The status of ``model`` as a whole (peft's ``get_model_status``)."""
    from .adapter_model import AdapterModel
    layers = get_layer_status(model)
    ours = isinstance(model, AdapterModel)
    if ours:
        trainable, total = model.get_nb_trainable_parameters()
    else:
        params = list(model.parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
    enabled = {s.enabled for s in layers}
    active = {tuple(s.active_adapters) for s in layers}
    merged_any = set().union(*(s.merged_adapters for s in layers))
    irregular_merge = any((set(s.available_adapters) - set(s.merged_adapters)) & merged_any
                          for s in layers)
    grads: dict[str, list] = collections.defaultdict(list)
    devices: dict[str, set[str]] = collections.defaultdict(set)
    for s in layers:
        for a, v in s.requires_grad.items():
            grads[a].append(v)
        for a, d in s.devices.items():
            devices[a].update(d)
    backends = {s.quantization_backend for s in layers}
    return TunerModelStatus(
        base_model_type=type(_root(model)).__name__,
        adapter_model_type="AdapterModel" if ours else "None",
        peft_types={a: c.adapter_type for a, c in model.peft_config.items()} if ours else {},
        trainable_params=trainable, total_params=total,
        num_adapter_layers=len(layers),
        enabled=enabled.pop() if len(enabled) == 1 else "irregular",
        active_adapters=list(active.pop()) if len(active) == 1 else "irregular",
        merged_adapters="irregular" if irregular_merge else sorted(merged_any),
        requires_grad={a: _agree(v) for a, v in grads.items()},
        available_adapters=sorted(set().union(*(s.available_adapters for s in layers))),
        devices={a: sorted(d) for a, d in devices.items()},
        quantization_backend=backends.pop() if len(backends) == 1 else "irregular")
