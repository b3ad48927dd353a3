r"""Routers: learned logits over ``E`` choices (a mixture's experts, a physics adapter's priors).

A router maps its input ``x: (..., d)`` to logits ``ℓ`` over ``E`` choices; the caller turns
them into weights (a softmax, with a temperature and top-k for the mixture layer).

==========  ==========================  =========================================  ===========
router      logits shape                ``ℓ``                                      reads ``x``
==========  ==========================  =========================================  ===========
global      ``(E,)``                    a free vector (one routing unit for all)   no
sample      ``(B, 1, ..., 1, E)``       ``mean_t(x_t) G^T + g``, the mean over     yes
                                        every axis between batch and features
token       ``(..., E)``                ``x_t G^T + g`` for every token            yes
==========  ==========================  =========================================  ===========

A 2-D input ``(B, d)`` has one token per sample, so ``sample`` gives ``(B, E)`` there.
``G``, ``g`` and the global vector start at zero, so every router starts uniform.  Logits are
computed in :func:`~qiadapters.adapters.layer.compute_dtype` of the input (float32, or
float64 for float64 inputs) whatever the dtype of the base model.  New routers register in
:data:`ROUTERS`.
"""
from __future__ import annotations

from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .layer import compute_dtype

__all__ = ["Router", "GlobalRouter", "SampleRouter", "TokenRouter", "ROUTERS"]


class Router(nn.Module):
    """Base class: ``forward(x: (..., d)) -> logits`` (shapes in the module docstring).

    Args:
        in_features: width ``d`` of the input read by the router (None if it reads none).
        n_experts: number ``E`` of choices.
    """

    name: ClassVar[str] = ""
    #: whether the router reads its input (and so needs ``in_features``).
    needs_input: ClassVar[bool] = True
    #: whether the weights differ from token to token (the caller mixes in token space).
    per_token: ClassVar[bool] = False

    def __init__(self, in_features: Optional[int], n_experts: int):
        super().__init__()
        self.in_features, self.n_experts = in_features, n_experts

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_experts={self.n_experts}"


class GlobalRouter(Router):
    """Free logits ``ℓ: (E,)`` shared by every input (zero: uniform at init)."""

    name = "global"
    needs_input = False

    def __init__(self, in_features: Optional[int], n_experts: int):
        super().__init__(in_features, n_experts)
        self.logits = nn.Parameter(torch.zeros(n_experts))

    def forward(self, x: Optional[torch.Tensor] = None) -> torch.Tensor:
        dtype = compute_dtype(self.logits.dtype if x is None else x.dtype)
        return self.logits.to(dtype)


class _Gate(Router):
    """A zero-initialised linear gate ``d -> E`` applied in the compute dtype."""

    def __init__(self, in_features: Optional[int], n_experts: int):
        super().__init__(in_features, n_experts)
        self.gate = nn.Linear(in_features, n_experts)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def _gate(self, h: torch.Tensor) -> torch.Tensor:
        h = h.to(compute_dtype(h.dtype))
        return F.linear(h, self.gate.weight.to(h.dtype), self.gate.bias.to(h.dtype))


class SampleRouter(_Gate):
    """A linear gate on each sample's mean token: ``(B, 1, ..., 1, E)`` for ``x: (B, ..., d)``."""

    name = "sample"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim <= 2:
            return self._gate(x)
        mean = x.to(compute_dtype(x.dtype)).mean(dim=tuple(range(1, x.ndim - 1)))
        return self._gate(mean).reshape(x.shape[0], *([1] * (x.ndim - 2)), self.n_experts)


class TokenRouter(_Gate):
    """A linear gate on every token: ``(..., E)`` for ``x: (..., d)``."""

    name = "token"
    per_token = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._gate(x)


#: Registry of routers by name.
ROUTERS: dict[str, type[Router]] = {"global": GlobalRouter, "sample": SampleRouter,
                                    "token": TokenRouter}
