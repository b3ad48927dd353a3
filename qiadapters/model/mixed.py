"""``adapter_names=[...]`` of :meth:`AdapterModel.forward` / :meth:`AdapterModel.generate`:
checked here, before the model runs, then served by the layers
(:mod:`qiadapters.adapters.mixed_batch`)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..adapters.mixed_batch import BASE, rows_context

__all__ = ["check_adapter_names", "generate"]


def _rows_of(args: tuple, kwargs: dict) -> int | None:
    """The batch size of a call: the first axis of its first tensor argument."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.ndim:
            return value.shape[0]
    return None


def check_adapter_names(model, adapter_names, args: tuple, kwargs: dict) -> tuple[str, ...]:
    """``adapter_names`` as a tuple, after every check that can be made before the model
    runs: a list of names, one per row, each an adapter of ``model`` or ``"__base__"``; the
    model in eval mode, nothing merged, and every layer the named adapters use able to serve
    mixed batches."""
    if isinstance(adapter_names, (str, bytes)) or not isinstance(adapter_names, Sequence) \
            or not all(isinstance(n, str) for n in adapter_names):
        raise TypeError(f"adapter_names={adapter_names!r} must be a list of adapter names, one "
                        f"per row of the batch ({BASE!r} for the base model)")
    names = tuple(adapter_names)
    unknown = sorted({n for n in names if n != BASE and n not in model.peft_config})
    if unknown or not names:
        raise ValueError(f"adapter_names={list(names)!r} is not valid: {unknown or 'empty'}; "
                         f"give one name per row, each of {list(model.peft_config)} or "
                         f"{BASE!r} (the base model)")
    rows = _rows_of(args, kwargs)
    if rows is not None and rows != len(names):
        raise ValueError(f"adapter_names has {len(names)} names but the batch has {rows} rows; "
                         f"give one name per row")
    if model.training:
        raise ValueError("adapter_names=[...] was given while the model is in training mode; "
                         "mixed-adapter batches serve inference: call eval() first")
    used = set(names)
    for path, layer in model.adapter_layers():
        if layer.merged:
            raise ValueError(f"adapter_names=[...] was given but layer {path!r} is merged "
                             f"({layer.merged_adapters}); call unmerge_adapter() first")
        if used & set(layer.adapter_names) and not layer.supports_mixed_batches:
            raise TypeError(f"adapter_names=[...]: layer {path!r} holds "
                            f"{type(layer).__name__} adapters, which cannot serve "
                            f"mixed-adapter batches; run one adapter at a time (set_adapter)")
    return names


def generate(model, base_generate, *args, adapter_names: Sequence[str] | None = None, **kwargs):
    """``base_generate(*args, **kwargs)``, serving row ``i`` with ``adapter_names[i]``."""
    if adapter_names is None:
        return base_generate(*args, **kwargs)
    names = check_adapter_names(model, adapter_names, args, kwargs)
    with rows_context(names, generating=True):
        return base_generate(*args, **kwargs)
