r"""The mixture layer's routing: (top-k) weights from router logits, and the router losses.

The routers themselves (``global``, ``sample``, ``token``) are shared with the physics
family: see :mod:`qiadapters.adapters.routers` for their logits and shapes.

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

from typing import NamedTuple, Optional

import torch

from ..routers import ROUTERS, GlobalRouter, Router, SampleRouter, TokenRouter

__all__ = ["Router", "GlobalRouter", "SampleRouter", "TokenRouter", "ROUTERS", "Routing",
           "route", "router_losses", "routed_experts"]


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


def _top1(probs: torch.Tensor) -> torch.Tensor:
    """``(U, E)`` -> the one-hot ``(U, E)`` of each row's argmax (first index on ties), built by
    a scatter on the device (``F.one_hot`` reads the indices' range back on CPU)."""
    return torch.zeros_like(probs).scatter_(-1, probs.argmax(dim=-1, keepdim=True), 1.0)


def routed_experts(routing: Routing) -> torch.Tensor:
    """``(E,)`` bool on the device: whether expert ``e`` has weight > 0 for some routing unit."""
    return routing.weights.reshape(-1, routing.weights.shape[-1]).gt(0).any(dim=0)


def router_losses(routing: Routing, balance: float, z_loss: float) -> torch.Tensor:
    """``L_bal + L_z`` of one routing decision (a scalar with gradient); 0 when there is no
    routing unit (an empty batch: the means over no unit would be NaN)."""
    n_experts = routing.probs.shape[-1]
    probs = routing.probs.reshape(-1, n_experts)
    if probs.shape[0] == 0:
        return routing.scaled.sum()  # an exact 0, still in the router's graph
    top1 = _top1(probs)
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
    top1 = _top1(probs)
    return {"weight": routing.weights.detach().reshape(-1, n_experts).mean(dim=0),
            "prob": probs.mean(dim=0), "load": top1.mean(dim=0)}
