"""Learning rates per kind of Hamming parameter: the rate rules the benchmarks measured.

A Hamming adapter trains two kinds of parameter: the **angles** that build its blocks (the
skew generators of a Cayley / expm adapter, ``theta`` and ``theta_mirror`` of a circuit
one) and, with ``scale=True``, the **scale** ``s`` of ``D diag(s)`` (``d`` values per
layer).  Everything else a model trains beside them (a classification head in
``modules_to_save``, a mixture's routers, another family's adapters) is **other**.  The
benchmarks found that the kinds want different rates (``docs/design_study.md``,
``docs/tradeoff.md``): on MiniLM the best rows train angles and scales at a quarter of the
head's lr; on the ViT of the vision suite the scales at 3x the lr.  This module builds the
optimizer that does that, as peft's LoRA+ (``peft.optimizers.create_loraplus_optimizer``)
does for LoRA's ``A`` and ``B``::

    optimizer = create_hamming_optimizer(model, torch.optim.AdamW, lr=0.05,
                                         angle_lr_ratio=0.25)      # MiniLM's rule

Group ``lr``: other ``lr``; angles ``lr * angle_lr_ratio``; scales ``lr * scale_lr_ratio``
(``None``: the angles' rate).  Frozen parameters are left out; each parameter is in one
group once (tied parameters too).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .adapters.hamming.parametrizations import Parametrization

__all__ = ["hamming_parameters", "hamming_param_groups", "create_hamming_optimizer"]


def hamming_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(angles, scales)``: the trainable parameters of every Hamming adapter in ``model``
    (every adapter name, inside mixtures too), each once, in module order."""
    angles: dict[int, nn.Parameter] = {}
    scales: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if not isinstance(module, Parametrization):
            continue
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (scales if p is module.scale else angles).setdefault(id(p), p)
    return list(angles.values()), list(scales.values())


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} is not valid; valid: a finite number > 0")
    return float(value)


def hamming_param_groups(model: nn.Module, *, lr: float, angle_lr_ratio: float = 1.0,
                         scale_lr_ratio: float | None = None) -> list[dict]:
    """Optimizer parameter groups for ``model``: ``{"name", "params", "lr"}`` for
    ``"other"`` (at ``lr``), ``"angles"`` (``lr * angle_lr_ratio``) and ``"scales"``
    (``lr * scale_lr_ratio``, or the angles' rate when it is None); empty groups are left
    out.  Raises ``ValueError``, naming the argument, for a rate that is not a finite number
    above 0, a model without a trainable Hamming adapter, or a ``scale_lr_ratio`` for a model
    without a learned scale."""
    lr = _positive("lr", lr)
    angle_lr_ratio = _positive("angle_lr_ratio", angle_lr_ratio)
    if scale_lr_ratio is not None:
        scale_lr_ratio = _positive("scale_lr_ratio", scale_lr_ratio)
    angles, scales = hamming_parameters(model)
    if not angles and not scales:
        raise ValueError("model has no trainable Hamming adapter: hamming_param_groups sets "
                         "the rates of its angles and scales (get_adapter_model with a "
                         "HammingConfig makes one)")
    if scale_lr_ratio is not None and not scales:
        raise ValueError(f"scale_lr_ratio={scale_lr_ratio!r} is set but the model's Hamming "
                         "adapters learn no scale; valid: None, or adapters with scale=True")
    taken = {id(p) for p in (*angles, *scales)}
    other, seen = [], set(taken)
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            other.append(p)
    scale_rate = angle_lr_ratio if scale_lr_ratio is None else scale_lr_ratio
    groups = [{"name": "other", "params": other, "lr": lr},
              {"name": "angles", "params": angles, "lr": lr * angle_lr_ratio},
              {"name": "scales", "params": scales, "lr": lr * scale_rate}]
    return [g for g in groups if g["params"]]


def create_hamming_optimizer(model: nn.Module, optimizer_cls: type[torch.optim.Optimizer], *,
                             lr: float, angle_lr_ratio: float = 1.0,
                             scale_lr_ratio: float | None = None,
                             **kwargs) -> torch.optim.Optimizer:
    """``optimizer_cls`` over :func:`hamming_param_groups` of ``model`` (``lr`` is also the
    optimizer's default); ``kwargs`` (``weight_decay``, ``betas``, ...) go to the optimizer.
    With ``angle_lr_ratio=1`` and no ``scale_lr_ratio`` it trains like ``optimizer_cls(
    model.parameters(), lr=lr)`` over the trainable parameters."""
    groups = hamming_param_groups(model, lr=lr, angle_lr_ratio=angle_lr_ratio,
                                  scale_lr_ratio=scale_lr_ratio)
    return optimizer_cls(groups, lr=lr, **kwargs)
