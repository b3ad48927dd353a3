"""Loading a saved adapter into a live one in place: :func:`hotswap_adapter`.

As peft's ``hotswap_adapter``: the saved tensors are copied into the parameters the model
already holds (``copy_``), so nothing is registered, replaced or re-allocated, and a
``torch.compile``d model serves the new adapter without recompiling (the compiled graph
reads the same parameters; dynamo guards on their shapes and dtypes, which do not change).
The result is the model that ``AdapterModel.from_pretrained(model, folder)`` would give.

Only an adapter of the same layout swaps in: the same per-layer options (family, orders,
blocks, parametrization, side, ... -- :func:`layout_difference`) on the same layers with the
same tensor names and shapes.  Everything is checked before the first tensor is copied.
"""
from __future__ import annotations

import os

import torch

from ..adapters.config import AdapterConfig
from . import io
from .live import check_live

__all__ = ["hotswap_adapter", "layout_difference"]

#: Config fields that choose WHICH modules are adapted: two adapters whose tensors sit on the
#: same layers may spell them differently; the layers themselves are compared by tensor name.
_SELECTION = ("target_modules", "modules_to_save", "exclude_modules", "layers_to_transform",
              "layers_pattern")


def layout_difference(a: AdapterConfig, b: AdapterConfig) -> str | None:
    """The first config field (besides the module selection) whose value differs between
    ``a`` and ``b``, as ``"field=A vs B"``; None when they compute with the same layout."""
    da, db = a.to_dict(), b.to_dict()
    for key in sorted(set(da) | set(db)):
        if key not in _SELECTION and da.get(key) != db.get(key):
            return f"{key}={da.get(key)!r} vs {db.get(key)!r}"
    return None


def hotswap_adapter(model, directory: str | os.PathLike, adapter_name: str = "default") -> None:
    """Copy the adapter saved in ``directory`` into the live adapter ``adapter_name`` of
    ``model`` (an :class:`~qiadapters.AdapterModel`, or ``torch.compile`` of one), in place
    (module docstring).

    Refuses, before any tensor changes: an ``adapter_name`` the model does not hold, a merged
    model (unmerge first), a saved adapter of another layout or on other layers (naming both).
    The swapped adapter keeps its trainable flags and its active state.
    """
    from .adapter_model import AdapterModel

    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: the model inside
    if not isinstance(model, AdapterModel):
        raise TypeError(f"model must be an AdapterModel, got {type(model).__name__}")
    if adapter_name not in model.peft_config:
        raise ValueError(f"adapter_name={adapter_name!r} does not exist; existing: "
                         f"{list(model.peft_config)}")
    config, state, layers = io.read_saved(directory)
    io.check_layers(model.base_model, layers, directory)
    where = os.fspath(directory)
    live = model.peft_config[adapter_name]
    diff = layout_difference(config, live)
    if diff:
        raise ValueError(f"the adapter saved in {where!r} and the live adapter "
                         f"{adapter_name!r} have different layouts ({diff}, saved vs live); "
                         f"hot-swapping copies tensors into the live layout: load it with "
                         f"load_adapter({where!r}, adapter_name=...) instead")
    check_live(model.base_model, adapter_name, layers, directory)  # each layer's layout
    merged = [n for n, l in model.adapter_layers() if adapter_name in l.merged_adapters]
    if merged:
        raise RuntimeError(f"adapter {adapter_name!r} is merged (layers {merged[:3]}); call "
                           f"unmerge_adapter() before hotswap_adapter()")
    targets = dict(io._adapter_tensors(model.base_model, adapter_name))
    saved = {k: tuple(v.shape) for k, v in state.items()}
    held = {k: tuple(v.shape) for k, v in targets.items()}
    if saved != held:
        key = sorted(set(saved) ^ set(held)) or [k for k in sorted(held) if saved[k] != held[k]]
        raise ValueError(f"the adapter saved in {where!r} does not fit the live adapter "
                         f"{adapter_name!r}: tensor {key[0]!r} is {saved.get(key[0])} saved, "
                         f"{held.get(key[0])} live (None: absent); load it with "
                         f"load_adapter({where!r}, adapter_name=...) instead")
    with torch.no_grad():
        for key, tensor in targets.items():
            tensor.copy_(state[key])
