"""The saved adapter format: one directory per adapter with two files.

``adapter_config.json``
    the config's :meth:`~qiadapters.adapters.base.AdapterConfig.to_dict` plus
    ``"qiadapters_version"``.
``adapter_model.safetensors``
    every tensor in the adapter's modules (``adapter_layer_names`` ModuleDicts and
    ``modules_to_save`` copies), keyed ``<module path>.<attr>.<param>`` without the adapter
    name, e.g. ``bert.encoder.layer.0.attention.self.query.hamming.weight`` or
    ``classifier.modules_to_save.weight``.  No base weights; index tables are non-persistent
    buffers and are not saved.
"""
from __future__ import annotations

import json
import os

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .._version import __version__
from ..adapters.config import CONFIG_NAME, AdapterConfig
from .injection import adapter_layers

WEIGHTS_NAME = "adapter_model.safetensors"
VERSION_KEY = "qiadapters_version"


def adapter_state_dict(model: nn.Module, adapter_name: str) -> dict[str, torch.Tensor]:
    """The tensors of one adapter, keyed as in the saved file."""
    out = {}
    for path, layer in adapter_layers(model):
        for attr in layer.adapter_layer_names:
            modules = getattr(layer, attr)
            if adapter_name in modules:
                for key, value in modules[adapter_name].state_dict().items():
                    out[f"{path}.{attr}.{key}"] = value
    return out


def save_adapter(directory: str | os.PathLike, config: AdapterConfig,
                 state: dict[str, torch.Tensor]) -> None:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    config.save(directory, extra={VERSION_KEY: __version__})
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    save_file(tensors, os.path.join(directory, WEIGHTS_NAME),
              metadata={"format": "pt", VERSION_KEY: __version__})


def read_adapter(directory: str | os.PathLike) -> tuple[AdapterConfig, dict[str, torch.Tensor]]:
    """Read a saved adapter; raises if files are missing or the library version differs."""
    directory = os.fspath(directory)
    cfg_path = os.path.join(directory, CONFIG_NAME)
    weights = os.path.join(directory, WEIGHTS_NAME)
    for path in (cfg_path, weights):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path!r} does not exist; a saved adapter directory holds "
                                    f"{CONFIG_NAME} and {WEIGHTS_NAME}")
    with open(cfg_path) as f:
        data = json.load(f)
    version = data.pop(VERSION_KEY, None)
    if version != __version__:
        raise ValueError(f"adapter in {directory!r} was saved by qiadapters version "
                         f"{version!r}, but this is version {__version__!r}; load it with "
                         f"qiadapters=={version}" if version else
                         f"{cfg_path!r} has no {VERSION_KEY!r}: it was not saved by qiadapters")
    return AdapterConfig.from_dict(data), load_file(weights)


def check_state(expected: dict[str, torch.Size], state: dict[str, torch.Tensor],
                directory: str | os.PathLike) -> None:
    """Raise ValueError naming the first keys that are missing, unexpected or mis-shaped."""
    where = os.fspath(directory)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"adapter in {where!r} does not fit this model: missing tensors "
                         f"{missing[:5]}, unexpected tensors {unexpected[:5]} (was it saved "
                         f"for another model or config?)")
    for key, shape in expected.items():
        if tuple(state[key].shape) != tuple(shape):
            module = key.rsplit(".", 2)[0]
            raise ValueError(f"adapter in {where!r} does not fit module {module!r}: tensor "
                             f"{key!r} has shape {tuple(state[key].shape)} in the file but "
                             f"{tuple(shape)} for this model (saved for other layer shapes?)")
