r"""Routers of the mixture layer: router logits, (top-k) weights, and the router losses.

A router maps the wrapped module's input ``x: (..., d)`` to logits ``ℓ`` over ``E`` experts,
shaped so that they broadcast against the output ``(..., d_out)`` after one more axis:

==========  ==========================  ===================================================
router      logits shape                ``ℓ``
==========  ==========================  ===================================================
global      ``(E,)``                    a free vector (one routing unit for every input)
sample      ``(B, 1, ..., 1, E)``       ``mean_t(x_t) G^T + g``, the mean over every axis
                                        between the batch axis and the features
token       ``(..., E)``                ``x_t G^T + g`` for each token (position)
==========  ==========================  ===================================================

``G``, ``g`` and the global vector start at zero, so every router starts uniform
(``α_e = 1/E``).  Routers compute in float32 (float64 for a float64 input) whatever the base
dtype.

Weights (:func:`route`): ``p = softmax(ℓ / T)`` with temperature ``T``; with ``top_k`` only
the ``k`` largest entries of each unit are kept and renormalised
(``α = softmax over the kept ℓ / T``, exactly 0 elsewhere).  No noise: routing is
deterministic, in training and in eval.

Losses (:func:`router_losses`), over the ``U`` routing units (tokens, samples, or the single
global unit): Switch-Transformer load balancing

.. math:: L_{bal} = \text{balance} \cdot E \sum_e f_e P_e,

``f_e`` the fraction of units whose top-1 expert (argmax of ``p``, first index on ties) is
``e`` (no gradient), ``P_e`` the mean of ``p_e`` over units; and the ST-MoE router z-loss
:math:`L_z = \text{z\_loss} \cdot \operatorname{mean}_u \big(\log\sum_e \exp(ℓ_{u,e}/T)\big)^2`.
"""
from __future__ import annotations

from typing import ClassVar, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Router", "GlobalRouter", "SampleRouter", "TokenRouter", "ROUTERS", "Routing",
           "route", "router_losses"]


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()


class Router(nn.Module):
    """Base class: ``forward(x: (..., d)) -> logits`` (shapes in the module docstring)."""

    name: ClassVar[str] = ""
    #: whether the router reads the input (and so needs its width ``in_features``).
    needs_input: ClassVar[bool] = True

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
        if x is not None and x.dtype == torch.float64:
            return self.logits.double()
        return self.logits.float()


class _Gate(Router):
    def __init__(self, in_features: Optional[int], n_experts: int):
        super().__init__(in_features, n_experts)
        self.gate = nn.Linear(in_features, n_experts)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def _gate(self, h: torch.Tensor) -> torch.Tensor:
        h = _float(h)
        return F.linear(h, self.gate.weight.to(h.dtype), self.gate.bias.to(h.dtype))


class SampleRouter(_Gate):
    """A linear gate on each sample's mean token: ``(B, 1, ..., 1, E)`` for ``x: (B, ..., d)``
    (a 2D ``x: (B, d)`` has one token per sample)."""

    name = "sample"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim <= 2:
            return self._gate(x)
        mean = _float(x).mean(dim=tuple(range(1, x.ndim - 1)))
        return self._gate(mean).reshape(x.shape[0], *([1] * (x.ndim - 2)), self.n_experts)


class TokenRouter(_Gate):
    """A linear gate on every token: ``(..., E)`` for ``x: (..., d)``."""

    name = "token"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._gate(x)


#: Registry of routers by name.
ROUTERS: dict[str, type[Router]] = {"global": GlobalRouter, "sample": SampleRouter,
                                    "token": TokenRouter}


class Routing(NamedTuple):
    """One routing decision.  ``weights``/``probs``/``scaled``: the shape of the logits."""

    weights: torch.Tensor  # α: top-k renormalised, sums to 1 over the last axis
    probs: torch.Tensor    # p = softmax(ℓ / T) before top-k
    scaled: torch.Tensor   # ℓ / T


def route(logits: torch.Tensor, temperature: float = 1.0,
          top_k: Optional[int] = None) -> Routing:
    """Weights ``α`` (and ``p``) from router logits (see the module docstring)."""
    scaled = logits / temperature
    probs = torch.softmax(scaled, dim=-1)
    if top_k is None or top_k >= logits.shape[-1]:
        return Routing(probs, probs, scaled)
    kept = scaled.topk(top_k, dim=-1)
    masked = torch.full_like(scaled, float("-inf")).scatter(-1, kept.indices, kept.values)
    return Routing(torch.softmax(masked, dim=-1), probs, scaled)


def router_losses(routing: Routing, balance: float, z_loss: float) -> torch.Tensor:
    """``L_bal + L_z`` of one routing decision (a scalar with gradient)."""
    n_experts = routing.probs.shape[-1]
    probs = routing.probs.reshape(-1, n_experts)
    top1 = F.one_hot(probs.argmax(dim=-1), n_experts).to(probs.dtype)
    loss = balance * n_experts * (top1.mean(dim=0) * probs.mean(dim=0)).sum()
    if z_loss:
        lse = torch.logsumexp(routing.scaled.reshape(-1, n_experts), dim=-1)
        loss = loss + z_loss * lse.square().mean()
    return loss


def router_stats(routing: Routing) -> dict[str, torch.Tensor]:
    """Detached per-expert statistics of one routing decision, each ``(E,)``:
    ``weight`` (mean α), ``prob`` (mean p, the ``P_e`` of the balance loss) and ``load``
    (fraction of units whose top-1 is the expert, the ``f_e``)."""
    n_experts = routing.probs.shape[-1]
    probs = routing.probs.detach().reshape(-1, n_experts)
    top1 = F.one_hot(probs.argmax(dim=-1), n_experts).to(probs.dtype)
    return {"weight": routing.weights.detach().reshape(-1, n_experts).mean(dim=0),
            "prob": probs.mean(dim=0), "load": top1.mean(dim=0)}
