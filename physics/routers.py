r"""Routing over the priors: the shared routers, their weights, and the route regulariser.

The routers are the library's own (:mod:`qiadapters.adapters.routers`: ``token``,
``sample``, ``global``, zero-initialised, so every router starts uniform).  A physics adapter
reads them on the down-projected grid features ``z: (batch, N, r)``;
:func:`prior_weights` turns their logits into weights ``w`` that are non-negative and sum to
1 over the priors:

=========  ==================  ======================================================
router     ``w`` shape          logits
=========  ==================  ======================================================
token      ``(batch, N, P)``    ``z_n G^T + b`` (a linear gate on each grid token)
sample     ``(batch, P)``       ``mean_n(z_n) G^T + b`` (the gate on the token mean)
global     ``(P,)``             a free vector ``ℓ`` shared by all inputs
=========  ==================  ======================================================

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

from qiadapters.adapters.routers import ROUTERS, GlobalRouter, Router, SampleRouter, TokenRouter

__all__ = ["Router", "TokenRouter", "SampleRouter", "GlobalRouter", "ROUTERS", "prior_weights",
           "route_loss"]


def prior_weights(router: Router, z: torch.Tensor) -> torch.Tensor:
    """Softmax weights over the priors for grid features ``z: (batch, N, r)`` (shapes in the
    module docstring)."""
    w = torch.softmax(router(z), dim=-1)
    # the priors' count, not -1: an empty batch has no size to infer
    return w.reshape(z.shape[0], w.shape[-1]) if isinstance(router, SampleRouter) else w


def route_loss(w: torch.Tensor, balance: float = 0.01, entropy: float = 0.0,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """The route regulariser of the module docstring for weights ``w: (..., P)``.

    ``mask`` (shape ``w.shape[:-1]``, nonzero = counted) restricts both means to the real
    routed units (padding tokens are not units); None counts every unit.  A mask that counts
    no unit (every token padding) gives an exact 0, as an empty batch does.
    """
    p = w.shape[-1]
    flat = w.reshape(-1, p)
    keep = None if mask is None else mask.reshape(-1, 1).to(flat.dtype)
    count = None if keep is None else keep.sum().clamp_min(1.0)
    avg = (lambda v: v.mean(dim=0)) if keep is None else (lambda v: (v * keep).sum(0) / count)
    mean = avg(flat)
    loss = balance * (p * (mean * mean).sum() - 1.0)
    if entropy:
        h = avg(-(flat * torch.log(flat.clamp_min(torch.finfo(w.dtype).tiny))).sum(-1, True))
        loss = loss + entropy * (math.log(p) - h.squeeze(-1))
    if keep is not None:  # no unit counted: 0 (a product, not a branch: no host sync)
        loss = loss * (keep.sum() > 0).to(loss.dtype)
    return loss
