"""What the routers of a trained model do: mean weight per prior (physics) or per expert
(mixture), measured on a batch of inputs.

A :class:`physics.PhysicsAdapter` with several priors weighs them per token, per sample or
globally; a :class:`qiadapters.adapters.mixture.Mixture` weighs its experts.  Both are read
after one forward in eval mode and averaged over the batch, the tokens and the adapted
layers; the per-layer means are kept too.
"""
from __future__ import annotations

import torch
from torch import nn

from .training import logits_of


def _physics_adapters(model: nn.Module) -> dict[str, nn.Module]:
    import physics

    return {name: m for name, m in model.named_modules()
            if isinstance(m, physics.PhysicsAdapter) and len(m.prior_names) > 1}


@torch.no_grad()
def router_weights(model: nn.Module, inputs: dict[str, torch.Tensor]) -> dict:
    """``{"kind": "priors" | "experts", "names": [...], "mean": [...], "per_layer": {name:
    [...]}}`` for the routers in ``model`` after ``model(**inputs)``; ``{}`` when it has
    none.  A model with both kinds reports the experts of its mixtures."""
    from qiadapters.adapters.mixture import Mixture, router_stats

    adapters = _physics_adapters(model)
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(
        lambda mod, args, out, name=name: seen.__setitem__(name, mod.route(args[0])))
        for name, m in adapters.items()]
    was_training = model.training
    model.eval()
    try:
        logits_of(model(**inputs))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    mixtures = router_stats(model)
    if mixtures:
        per_layer = {name: stats[next(iter(stats))]["weight"].tolist()
                     for name, stats in mixtures.items()}
        first: Mixture = model.get_submodule(next(iter(mixtures)))
        names = [type(e).__name__ for e in first.experts[next(iter(first.experts))]]
        kind = "experts"
    elif seen:
        per_layer = {name: w.reshape(-1, w.shape[-1]).mean(0).tolist()
                     for name, w in seen.items()}
        names = list(next(iter(adapters.values())).prior_names)
        kind = "priors"
    else:
        return {}
    layers = torch.tensor(list(per_layer.values()))
    return {"kind": kind, "names": names, "mean": layers.mean(0).tolist(),
            "per_layer": {k: [round(v, 4) for v in w] for k, w in per_layer.items()}}
