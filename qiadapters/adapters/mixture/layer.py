r"""The mixture layer: one frozen module, several adapters (experts), a router.

For a wrapped module ``f`` and experts ``e = 1..E`` with adapted outputs ``E_e(x)``:

.. math:: y = f(x) + \sum_e \alpha_e(x) \big(E_e(x) - f(x)\big), \qquad \sum_e \alpha_e = 1

``f(x)`` is computed once.  An expert's adapted output comes from its family's
:meth:`~qiadapters.adapters.base.AdapterLayer.adapter_output` given ``f(x)``:

* output-side Hamming: ``E(x) = (f(x) - b) D + b`` -- only ``D`` is applied (cheap);
* input-side Hamming: ``E(x) = f(x D)`` -- a second call of ``f`` per such expert;
* any family without a cheaper rule (e.g. physics, unless it overrides ``adapter_output``):
  its ``adapter_forward``, i.e. one more call of ``f``;
* a plain ``nn.Module`` expert ``m`` (standalone :class:`Mixture` only) is an additive
  adapter: ``E(x) = f(x) + m(x)`` (e.g. a :class:`physics.PhysicsAdapter`).

With ``top_k``, experts that get weight 0 for every routing unit of the batch are not run
(with a global router: all but the k routed ones; per token the work is not split, since
experts such as the physics priors mix tokens).  Mixing is done in float32 (float64 for a
float64 base) and cast back to the base output's dtype.

Merging (``router="global"`` over mergeable experts, on an ``nn.Linear`` or convolution):
every expert's merged parameters ``θ_e`` are computed on the base in turn (and the base is
restored), then ``θ = θ_0 + Σ_e α_e (θ_e - θ_0)``; since these modules are affine in their
parameters, ``f_θ(x) = Σ_e α_e f_{θ_e}(x)`` exactly.  For output-side Hamming experts that is
``W = (Σ_e α_e D_e)^T W_0``.  ``Σ_e α_e D_e`` is not orthogonal (and may be singular), so
unmerging does not invert it: the original parameters are kept in non-persistent buffers
while merged and copied back bit for bit.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from ..base import AdapterConfig, AdapterLayer, AdapterParts, layer_class
from .config import MixtureConfig, check_options
from .routers import ROUTERS, route, router_losses
from .routers import router_stats as _routing_stats

__all__ = ["Mixture", "ExpertSpec", "router_stats"]

#: Adapter name of each expert inside its family's layer view.
_EXPERT = "expert"
#: Base modules whose output is affine in their parameters (a weighted merge is exact).
_AFFINE = (nn.Linear, _ConvNd)


class ExpertSpec(NamedTuple):
    """How to run one expert: ``kind`` is ``"layer"`` (an adapter family's parts, run through
    ``layer_cls`` with ``settings``) or ``"delta"`` (a plain module adding ``m(x)``)."""

    kind: str
    layer_cls: Optional[type]
    settings: dict


def _describe(module: nn.Module) -> str:
    shapes = ", ".join(f"{n}{tuple(p.shape)}" for n, p in module.named_parameters())
    return f"{type(module).__name__}({shapes})"


def _signature(module: nn.Module):
    return type(module), [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def _input_width(base: nn.Module, router: str) -> int:
    width = getattr(base, "in_features", None)
    if width is None and isinstance(base, nn.LayerNorm):
        width = base.normalized_shape[-1]
    if not isinstance(width, int):
        raise TypeError(f"router={router!r} reads the input of the wrapped module, but the "
                        f"input width of a {type(base).__name__} is unknown (no in_features); "
                        f"target an nn.Linear or use router='global'")
    return width


def _expert_parts(i: int, expert: Any, base: nn.Module) -> tuple[nn.ModuleDict, ExpertSpec]:
    """``experts[i]`` as (its modules, how to run them); builds without touching ``base``."""
    if isinstance(expert, MixtureConfig) or isinstance(expert, Mixture):
        raise TypeError(f"experts[{i}] is a {type(expert).__name__}; a mixture's experts cannot "
                        f"be mixtures (list their experts in one mixture instead)")
    if isinstance(expert, AdapterConfig):
        cls = layer_class(expert)
        try:
            parts = cls.build(base, **expert.layer_options())
        except (ValueError, TypeError) as e:
            raise type(e)(f"experts[{i}] ({type(expert).__name__}): {e}") from None
        return nn.ModuleDict(parts.modules), ExpertSpec("layer", cls, dict(parts.settings))
    if isinstance(expert, AdapterLayer):
        if _signature(expert.base_layer) != _signature(base):
            raise ValueError(f"experts[{i}] wraps {_describe(expert.base_layer)}, but the "
                             f"mixture's base is {_describe(base)}; every expert must wrap a "
                             f"module of the base's type and shapes")
        if len(expert.active_adapters) != 1:
            raise ValueError(f"experts[{i}] ({type(expert).__name__}) has active adapters "
                             f"{expert.active_adapters}; an expert layer must have exactly one")
        if expert.merged:
            raise ValueError(f"experts[{i}] ({type(expert).__name__}) is merged (its base "
                             f"weights are changed); unmerge() it first")
        name = expert.active_adapters[0]
        modules = {attr: getattr(expert, attr)[name] for attr in expert.adapter_layer_names}
        settings = {attr: getattr(expert, attr)[name] for attr in expert.other_param_names}
        return nn.ModuleDict(modules), ExpertSpec("layer", type(expert), settings)
    if isinstance(expert, nn.Module):
        return nn.ModuleDict({"delta": expert}), ExpertSpec("delta", None, {})
    raise TypeError(f"experts[{i}] is a {type(expert).__name__}; give adapter configs (e.g. "
                    f"HammingConfig(...)), adapter layers wrapping the base, or nn.Modules "
                    f"returning an additive delta")


class Mixture(AdapterLayer):
    r"""A frozen module with a router-weighted mixture of adapters (module docstring).

    .. math:: y = f(x) + \sum_e \alpha_e(x) (E_e(x) - f(x))

    Args:
        base: the module every expert adapts (frozen).
        experts: a non-empty list of adapter configs (``HammingConfig(...)``,
            ``physics.PhysicsConfig(...)``: built on ``base``), adapter layers wrapping
            ``base`` (or a module of the same type and shapes; their one active adapter's
            modules are used, not copied), or plain modules ``m`` adding ``m(x)``.
        router: ``"global"`` (a learned vector; mergeable), ``"sample"`` or ``"token"``
            (a linear gate on the input; see :mod:`~qiadapters.adapters.mixture.routers`).
        top_k: keep the k largest weights per routing unit, renormalised; None: all.
        temperature: ``α = softmax(logits / temperature)``.
        balance, z_loss: weights of the load-balancing loss and the router z-loss
            (:meth:`aux_loss`).
        adapter_name: the name of this first mixture.

    After each forward, :meth:`aux_loss` holds the router losses (plus the experts' own aux
    losses) of that forward and :meth:`router_stats` its per-expert weights.

    Example::

        >>> mix = Mixture(nn.Linear(64, 64), [HammingConfig(target_modules=["x"], orders=(1,)),
        ...                                   HammingConfig(target_modules=["x"], blocks=2)],
        ...               router="token", top_k=1)
        >>> y = mix(torch.randn(2, 10, 64))           # == the base output at init
        >>> loss = task_loss(y) + mix.aux_loss()
    """

    adapter_layer_names = ("experts", "router")
    other_param_names = ("expert_specs", "mixture_options")

    def __init__(self, base: nn.Module, experts: Sequence[Any], router: str = "global",
                 top_k: Optional[int] = None, temperature: float = 1.0, balance: float = 0.01,
                 z_loss: float = 0.0, *, adapter_name: str = "default"):
        parts = self.build(base, experts=experts, router=router, top_k=top_k,
                           temperature=temperature, balance=balance, z_loss=z_loss)
        super().__init__(base)
        base.requires_grad_(False)
        ref = next(base.parameters(), None)
        if ref is not None:
            for module in parts.modules.values():
                module.to(device=ref.device)
        self.attach(adapter_name, parts)
        self.set_adapter(adapter_name)

    @classmethod
    def build(cls, base_layer: nn.Module, *, experts: Sequence[Any], router: str = "global",
              top_k: Optional[int] = None, temperature: float = 1.0, balance: float = 0.01,
              z_loss: float = 0.0) -> AdapterParts:
        if isinstance(experts, (str, bytes, nn.Module, AdapterConfig)) or \
                not isinstance(experts, Sequence):
            raise ValueError(f"experts={experts!r} must be a list of adapter configs, adapter "
                             f"layers or modules")
        options = check_options(len(experts), router, top_k, temperature, balance, z_loss)
        width = _input_width(base_layer, router) if ROUTERS[router].needs_input else None
        built = [_expert_parts(i, e, base_layer) for i, e in enumerate(experts)]
        modules = nn.ModuleList([m for m, _ in built])
        return AdapterParts(modules={"experts": modules,
                                     "router": ROUTERS[router](width, len(experts))},
                            settings={"expert_specs": [s for _, s in built],
                                      "mixture_options": options})

    # ------------------------------------------------------------ experts
    @property
    def _views(self) -> dict:
        # family layers around the shared base and each expert's modules (a cache, not state)
        return self.__dict__.setdefault("_view_cache", {})

    def expert_layer(self, adapter_name: str, index: int) -> AdapterLayer:
        """Expert ``index`` of mixture ``adapter_name`` as its family's layer around the
        shared base (its adapter is named ``"expert"``); for inspection (e.g.
        ``delta_matrix("expert")`` of a Hamming expert)."""
        parts = self.experts[adapter_name][index]
        spec: ExpertSpec = self.expert_specs[adapter_name][index]
        if spec.kind != "layer":
            raise TypeError(f"expert {index} of {adapter_name!r} is a plain module, not an "
                            f"adapter layer")
        cached = self._views.get((adapter_name, index))
        if cached is not None and cached[0] is parts and cached[1].base_layer is self.base_layer:
            view = cached[1]
        else:
            view = spec.layer_cls.wrap(self.base_layer)
            view.attach(_EXPERT, AdapterParts(modules=dict(parts.items()),
                                              settings=dict(spec.settings)))
            view.set_adapter(_EXPERT)
            self._views[(adapter_name, index)] = (parts, view)
        view.training = self.training
        return view

    def _expert_delta(self, name: str, index: int, x, fx, compute, args, kwargs):
        """``E_e(x) - f(x)`` in the ``compute`` dtype."""
        spec: ExpertSpec = self.expert_specs[name][index]
        if spec.kind == "delta":
            module = self.experts[name][index]["delta"]
            ref = next(module.parameters(), None)
            h = x.to(ref.dtype) if ref is not None and x.is_floating_point() else x
            return module(h).to(compute)
        view = self.expert_layer(name, index)
        return view.adapter_output(x, fx, [_EXPERT], *args, **kwargs).to(compute) - fx.to(compute)

    # ------------------------------------------------------------ forward
    def forward(self, x, *args, **kwargs):
        self._ran = {}  # a forward without the mixture leaves no router loss behind
        return super().forward(x, *args, **kwargs)

    def adapter_forward(self, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
        fx = self.base_layer(x, *args, **kwargs)
        if not torch.is_tensor(fx):
            raise TypeError(f"a mixture mixes tensor outputs; {type(self.base_layer).__name__} "
                            f"returned a {type(fx).__name__}")
        compute = torch.float64 if fx.dtype == torch.float64 else torch.float32
        out = fx.to(compute)
        ran = {}
        for name in adapter_names:  # several mixtures on one layer add their corrections
            out = out + self._mixture_delta(name, x, fx, compute, args, kwargs, ran)
        self._ran = ran
        return out.to(fx.dtype)

    def _mixture_delta(self, name, x, fx, compute, args, kwargs, ran):
        opts = self.mixture_options[name]
        routing = route(self.router[name](x), opts["temperature"], opts["top_k"])
        n = len(self.expert_specs[name])
        if opts["top_k"] is not None and opts["top_k"] < n:
            routed = routing.weights.reshape(-1, n).gt(0).any(dim=0)
            used = torch.nonzero(routed).flatten().tolist()
        else:
            used = list(range(n))
        delta = None
        for e in used:
            term = routing.weights[..., e:e + 1].to(compute) * self._expert_delta(
                name, e, x, fx, compute, args, kwargs)
            delta = term if delta is None else delta + term
        ran[name] = (routing, tuple(used))
        return delta

    # ------------------------------------------------------------ losses and statistics
    def aux_loss(self) -> torch.Tensor:
        """Router losses of the latest forward, ``L_bal + L_z`` per mixture (see
        :mod:`~qiadapters.adapters.mixture.routers`), plus the aux losses of the experts
        that ran (e.g. a physics expert's route regulariser); zero before any forward."""
        terms = []
        for name, (routing, used) in getattr(self, "_ran", {}).items():
            opts = self.mixture_options[name]
            terms.append(router_losses(routing, opts["balance"], opts["z_loss"]))
            for e in used:
                if self.expert_specs[name][e].kind == "layer":
                    terms.append(self.expert_layer(name, e).aux_loss())
                else:
                    own = getattr(self.experts[name][e]["delta"], "aux_loss", None)
                    if callable(own):
                        terms.append(own())
        if not terms:
            return super().aux_loss()
        return torch.stack([t.to(terms[0].device, terms[0].dtype) for t in terms]).sum()

    def router_stats(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per mixture adapter that ran in the latest forward: ``{"weight", "prob", "load"}``,
        each ``(E,)`` and detached -- the mean routed weight ``α_e``, the mean router
        probability ``P_e`` and the top-1 fraction ``f_e`` over the routing units."""
        return {name: _routing_stats(routing)
                for name, (routing, _) in getattr(self, "_ran", {}).items()}

    # ------------------------------------------------------------ merge
    @property
    def mergeable(self) -> bool:  # depends on the router and experts of the active mixtures
        return self.merge_blocker() is None

    def merge_blocker(self) -> Optional[str]:
        return self._blocker(self.active_adapters)

    def _blocker(self, names: list[str]) -> Optional[str]:
        for name in names:
            router = self.mixture_options[name]["router"]
            if router != "global":
                return (f"mixture {name!r} uses router={router!r}: its weights alpha(x) "
                        f"depend on the input, so sum_e alpha_e(x) W_e is no single weight; "
                        f"only router='global' merges")
            for e, spec in enumerate(self.expert_specs[name]):
                if spec.kind != "layer":
                    return (f"expert {e} of mixture {name!r} is a plain module (an additive "
                            f"delta), not a mergeable adapter")
                view = self.expert_layer(name, e)
                if not view.mergeable:
                    return (f"expert {e} of mixture {name!r} ({spec.layer_cls.__name__}) is "
                            f"not mergeable ({view.merge_blocker()})")
        if names and not isinstance(self.base_layer, _AFFINE):
            return (f"the wrapped {type(self.base_layer).__name__} is not affine in its "
                    f"parameters, so a weighted average of the experts' merged parameters "
                    f"is not their weighted output (nn.Linear and convolutions merge)")
        return None

    @staticmethod
    def _backup_name(param: str) -> str:
        return "_unmerged_" + param.replace(".", "_")

    @torch.no_grad()
    def _merge(self, adapter_names: list[str], safe_merge: bool) -> None:
        reason = self._blocker(adapter_names)
        if reason is not None:
            raise TypeError(f"Mixture adapters are not mergeable ({reason})")
        params = dict(self.base_layer.named_parameters())
        original = {n: p.detach().clone() for n, p in params.items()}
        compute = torch.float64 if any(p.dtype == torch.float64 for p in params.values()) \
            else torch.float32
        shift = {n: torch.zeros(p.shape, dtype=compute, device=p.device)
                 for n, p in params.items()}
        try:
            for name in adapter_names:
                opts = self.mixture_options[name]
                alpha = route(self.router[name](), opts["temperature"], opts["top_k"]).weights
                for e, a in enumerate(alpha.tolist()):
                    if a == 0.0:
                        continue
                    self.expert_layer(name, e)._merge([_EXPERT], safe_merge=False)
                    for n, p in params.items():
                        shift[n] += a * (p.to(compute) - original[n].to(compute))
                        p.copy_(original[n])
        finally:
            for n, p in params.items():
                p.copy_(original[n])
        merged = {n: original[n].to(compute) + shift[n] for n in params}
        if safe_merge and not all(torch.isfinite(m).all() for m in merged.values()):
            raise ValueError(f"merging mixtures {adapter_names} gives non-finite weights; the "
                             f"layer was left unmerged")
        for n, p in params.items():
            self.register_buffer(self._backup_name(n), original[n], persistent=False)
            p.copy_(merged[n].to(p.dtype))

    @torch.no_grad()
    def _unmerge(self, adapter_names: list[str]) -> None:
        for n, p in self.base_layer.named_parameters():
            key = self._backup_name(n)
            p.copy_(getattr(self, key))
            delattr(self, key)

    # ------------------------------------------------------------ bookkeeping
    def delete_adapter(self, adapter_name: str) -> None:
        super().delete_adapter(adapter_name)
        for key in [k for k in self._views if k[0] == adapter_name]:
            del self._views[key]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_view_cache", None)  # rebuilt on demand
        state.pop("_ran", None)         # the latest forward's graph
        return state

    def extra_repr(self) -> str:
        opts = {n: o["router"] + (f", top_k={o['top_k']}" if o["top_k"] else "")
                for n, o in self.mixture_options.items()}
        return f"routers={opts}, {super().extra_repr()}"


def router_stats(model: nn.Module) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """``{module name: Mixture.router_stats()}`` for every mixture layer in ``model`` that ran
    in the latest forward -- for logging, e.g. ``stats["base_model.fc1"]["default"]["weight"]``."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, Mixture):
            stats = module.router_stats()
            if stats:
                out[name] = stats
    return out
