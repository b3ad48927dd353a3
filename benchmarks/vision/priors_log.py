r"""What the physics adapters of a vision model do during and after training, as JSON.

* :func:`router_monitor` -- a ``monitor(step)`` for :func:`benchmarks.common.training.train`:
  the routers of every physics adapter with several priors, read on a fixed probe batch in
  eval mode.  With ``w: (batch, N, P)`` a layer's per-token weights over the ``P`` priors,

  .. math:: \text{shares}_p = \overline{w_{\cdot,\cdot,p}}, \qquad
            \text{entropy} = \overline{-\textstyle\sum_p w_p \log w_p}

  (means over the batch and the grid tokens; the entropy is ``log P`` = 1.0986 for
  ``P = 3`` when the router is uniform, 0 when every token picks one prior), per layer and
  averaged over the layers.
* :func:`prior_state` -- after training: each physics adapter's learned constants (after
  softplus, one per channel), each prior's frequency response ``response[p][m, c] =
  m_p(λ_m)`` for channel ``c`` (the operator's eigenvalue on the grid's mode ``m``, whose
  eigenvalue of ``-Δ`` is ``λ_m``: :meth:`physics.PhysicsAdapter.multipliers`), and the mean
  power spectrum of its grid input, ``power[m, c] = mean_b (B g_{b,·,c})_m^2`` with
  ``g: (batch, N, r)`` the down-projected grid features and ``B`` the boundary's orthonormal
  basis.  :mod:`benchmarks.vision.spectra` draws the responses against the spectrum.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def physics_adapters(model: nn.Module, routed_only: bool = False) -> dict[str, nn.Module]:
    """``{module name: PhysicsAdapter}`` of ``model`` (only those with a router if
    ``routed_only``)."""
    import physics

    return {name: m for name, m in model.named_modules()
            if isinstance(m, physics.PhysicsAdapter)
            and (not routed_only or m.router is not None)}


@torch.no_grad()
def _inputs_of(model: nn.Module, adapters: dict, inputs: dict) -> dict[str, torch.Tensor]:
    """The hidden states each adapter reads in one eval-mode forward of ``inputs``."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(
        lambda mod, args, out, name=name: seen.__setitem__(name, args[0].detach()))
        for name, m in adapters.items()]
    was_training = model.training
    model.eval()
    try:
        model(**inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return seen


def _round(values, digits: int = 4) -> list:
    return [round(float(v), digits) for v in values]


@torch.no_grad()
def router_summary(model: nn.Module, inputs: dict) -> dict:
    """``{"names", "shares", "entropy", "per_layer": {name: {"shares", "entropy"}}}`` of the
    routed physics adapters of ``model`` on ``inputs``; ``{}`` when there are none."""
    adapters = physics_adapters(model, routed_only=True)
    if not adapters:
        return {}
    seen = _inputs_of(model, adapters, inputs)
    per_layer = {}
    for name, adapter in adapters.items():
        w = adapter.route(seen[name])
        w = w.reshape(-1, w.shape[-1])
        entropy = -(w * torch.log(w.clamp_min(torch.finfo(w.dtype).tiny))).sum(-1).mean()
        per_layer[name] = {"shares": _round(w.mean(0)), "entropy": round(float(entropy), 4)}
    layers = list(per_layer.values())
    shares = torch.tensor([layer["shares"] for layer in layers]).mean(0)
    return {"names": list(next(iter(adapters.values())).prior_names),
            "shares": _round(shares),
            "entropy": round(sum(layer["entropy"] for layer in layers) / len(layers), 4),
            "per_layer": per_layer}


def router_monitor(model: nn.Module, inputs: dict):
    """A ``monitor(step) -> dict`` for :func:`benchmarks.common.training.train` (module
    docstring), or None when ``model`` has no routed physics adapter."""
    if not physics_adapters(model, routed_only=True):
        return None
    return lambda step: {"router": router_summary(model, inputs)}


def uniform_entropy(priors: int) -> float:
    """The entropy ``log P`` of a router that weighs ``P`` priors equally."""
    return math.log(priors)


@torch.no_grad()
def prior_state(model: nn.Module, inputs: dict) -> dict:
    """``{adapter name: {"grid", "boundary", "lam": [per mode], "constants": {prior: {constant:
    [per channel]}}, "response": {prior: [[per channel] per mode]}, "power": [[per channel]
    per mode]}}`` after a forward of ``inputs`` (module docstring);
    ``{}`` without physics adapters."""
    from physics.bases import eigenvalues, get_boundary, transform

    adapters = physics_adapters(model)
    if not adapters:
        return {}
    seen = _inputs_of(model, adapters, inputs)
    out = {}
    for name, adapter in adapters.items():
        x = seen[name]
        shape = adapter.grid_shape(x.shape[1])
        g = adapter.down(x)[:, adapter.extra_tokens:]
        g_hat = transform(g.reshape(g.shape[0], *shape, adapter.rank),
                          get_boundary(adapter.boundary))
        power = g_hat.square().mean(0).reshape(-1, adapter.rank)        # (N, r)
        constants = {p: {k: _round(v) for k, v in prior.constants().items()}
                     for p, prior in adapter.priors.items()}
        for p, prior in adapter.priors.items():
            if hasattr(prior, "velocity"):
                constants[p]["velocity"] = _round(prior.velocity)
        response = adapter.multipliers(shape)                              # (P, N, r)
        lam = eigenvalues(adapter.boundary, shape, dtype=response.dtype).reshape(-1)
        out[name] = {"grid": list(shape), "boundary": adapter.boundary, "lam": _round(lam, 6),
                     "constants": constants,
                     "response": {p: [_round(row, 6) for row in response[i].tolist()]
                                  for i, p in enumerate(adapter.priors)},
                     "power": [_round(row, 6) for row in power.tolist()]}
    return out
