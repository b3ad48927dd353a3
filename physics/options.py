"""The options of the physics-prior family, checked in one place.

:func:`check_adapter_options` is the one check of the :class:`physics.PhysicsAdapter`
options (its constructor calls it); :func:`check_layer_options` adds the layer's own two
(``placement``, ``route_weight``).  :class:`physics.PhysicsConfig` validates with the second,
:meth:`physics.PhysicsLayer.build` checks the layer's two and leaves the rest to the adapter
it constructs, so every option is checked by one function and once on every path.
"""
from __future__ import annotations

from typing import Any

from qiadapters import checks
from qiadapters.adapters.routers import ROUTERS

from .bases import BOUNDARIES
from .grids import check_grid
from .priors import check_priors
from .solvers import ZERO_MODES

__all__ = ["PLACEMENTS", "check_adapter_options", "check_layer_options", "check_model_options"]

#: Where the adapter sits relative to the wrapped module ``f`` (input ``x``, extra args ``a``).
PLACEMENTS = {
    "parallel": "y = f(x) + delta(x): beside an nn.Linear (the delta maps in_features to "
                "out_features)",
    "input": "y = f(x + delta(x), *a): before any module taking hidden states (batch, T, d) "
             "first, e.g. a self-attention block (MoPPA's placement)",
}


def check_adapter_options(*, rank=8, priors=("heat", "wave", "poisson"), grid="auto",
                          router="token", boundary="neumann", extra_tokens=0, kappa=1.0, c=1.0,
                          t=1.0, poisson_gain=0.1, poisson_zero_mode="screened",
                          poisson_eps=0.1, balance=0.01, entropy=0.0, scale=1.0,
                          bias=True, causal=False) -> dict[str, Any]:
    """The :class:`~physics.PhysicsAdapter` options, validated and normalised."""
    out = {
        "causal": checks.flag("causal", causal),
        "rank": checks.integer("rank", rank, low=1),
        "priors": check_priors(priors),
        "grid": check_grid(grid),
        "router": checks.choice("router", router, ROUTERS),
        "boundary": checks.choice("boundary", boundary, BOUNDARIES),
        "extra_tokens": checks.integer("extra_tokens", extra_tokens, low=0),
        "poisson_zero_mode": checks.choice("poisson_zero_mode", poisson_zero_mode, ZERO_MODES),
        "scale": checks.number("scale", scale),
        "bias": checks.flag("bias", bias),
    }
    for arg, value in (("kappa", kappa), ("c", c), ("t", t), ("poisson_gain", poisson_gain),
                       ("poisson_eps", poisson_eps)):
        out[arg] = checks.number(arg, value, low=0, strict=True)
    for arg, value in (("balance", balance), ("entropy", entropy)):
        out[arg] = checks.number(arg, value, low=0)
    if out["causal"] and isinstance(out["grid"], tuple) and len(out["grid"]) == 2:
        raise ValueError(f"grid={out['grid']!r} is not valid with causal=True: a prefix of a "
                         f"2D grid is not a grid; valid: 'sequence', 'auto' (1D when causal) "
                         f"or (L,)")
    return out


def check_placement(placement="parallel", route_weight=1.0) -> dict[str, Any]:
    """The layer's own options: where the delta goes and the weight of its regulariser."""
    return {"placement": checks.choice("placement", placement, PLACEMENTS),
            "route_weight": checks.number("route_weight", route_weight, low=0)}


def check_model_options(dim=None, causal=None) -> dict[str, Any]:
    """The options resolved against the model: an explicit hidden width (None: inferred from
    the target) and ``causal`` (None: follow the model; True / False)."""
    return {"dim": None if dim is None else checks.integer("dim", dim, low=1),
            "causal": None if causal is None else checks.flag("causal", causal)}


def check_layer_options(*, placement="parallel", route_weight=1.0, dim=None, causal=None,
                        **adapter_options) -> dict[str, Any]:
    """Every per-layer option of :class:`~physics.PhysicsConfig`, validated and normalised."""
    model = check_model_options(dim, causal)
    return {**check_placement(placement, route_weight), **model,
            **check_adapter_options(causal=bool(model["causal"]), **adapter_options),
            "causal": model["causal"]}
