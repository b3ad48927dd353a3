r"""Routers: softmax weights over ``P`` priors, and the route regulariser.

A router maps the down-projected grid features ``z: (batch, N, r)`` to weights ``w`` that are
non-negative and sum to 1 over the last axis:

=========  ==================  ======================================================
router     ``w`` shape          logits
=========  ==================  ======================================================
token      ``(batch, N, P)``    ``z_n G^T + b`` (a linear gate on each grid token)
sample     ``(batch, P)``       ``mean_n(z_n) G^T + b`` (the gate on the token mean)
global     ``(P,)``             a free vector ``ℓ`` shared by all inputs
=========  ==================  ======================================================

Gates and ``ℓ`` start at zero, so every router starts uniform (``w_p = 1/P``).

Route regulariser (:func:`route_loss`).  With ``w̄_p`` the mean weight of prior ``p`` over all
routed units (tokens and samples, or the single global vector) and ``H(w) = -Σ_p w_p log w_p``:

.. math:: \mathcal{L}_{route} = α \big(P \sum_p \bar w_p^2 - 1\big)
          + β \big(\log P - \overline{H(w)}\big)

The first (load-balancing) term is 0 when the priors share the load evenly on average and
``P - 1`` when one prior takes everything; the second (entropy) term is 0 when every unit
routes uniformly, ``log P`` when every unit is one-hot.  Both are ``>= 0``; α = ``balance``,
β = ``entropy``.  Training code adds it to its loss (scaling it down over time if only the
early phase should be balanced).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Router", "TokenRouter", "SampleRouter", "GlobalRouter", "ROUTERS", "route_loss"]


class Router(nn.Module):
    """Base class.  ``per_token`` routers are mixed in space, the others in the spectrum."""

    per_token = False

    def __init__(self, rank: int, priors: int):
        super().__init__()
        self.rank, self.priors = rank, priors


class TokenRouter(Router):
    """A linear gate per grid token: ``w = softmax(z G^T + b)``, shape ``(batch, N, P)``."""

    per_token = True

    def __init__(self, rank: int, priors: int):
        super().__init__(rank, priors)
        self.gate = nn.Linear(rank, priors)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.gate(z), dim=-1)


class SampleRouter(TokenRouter):
    """A linear gate on the mean grid token: ``w = softmax(mean_n(z) G^T + b)``, ``(batch, P)``."""

    per_token = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.gate(z.mean(dim=1)), dim=-1)


class GlobalRouter(Router):
    """Free logits shared by every input: ``w = softmax(ℓ)``, shape ``(P,)``."""

    def __init__(self, rank: int, priors: int):
        super().__init__(rank, priors)
        self.logits = nn.Parameter(torch.zeros(priors))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits.to(z.dtype), dim=-1)


ROUTERS: dict[str, type[Router]] = {"token": TokenRouter, "sample": SampleRouter,
                                    "global": GlobalRouter}


def route_loss(w: torch.Tensor, balance: float = 0.01, entropy: float = 0.0) -> torch.Tensor:
    """The route regulariser of the module docstring for weights ``w: (..., P)``."""
    p = w.shape[-1]
    flat = w.reshape(-1, p)
    mean = flat.mean(dim=0)
    loss = balance * (p * (mean * mean).sum() - 1.0)
    if entropy:
        h = -(flat * torch.log(flat.clamp_min(torch.finfo(w.dtype).tiny))).sum(-1).mean()
        loss = loss + entropy * (math.log(p) - h)
    return loss
