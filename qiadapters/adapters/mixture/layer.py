r"""The mixture layer: one frozen module, several adapters (experts), a router.

For a wrapped module ``f`` and experts ``e = 1..E`` with adapted outputs ``E_e(x)``:

.. math:: y = f(x) + \sum_e \alpha_e(x) \big(E_e(x) - f(x)\big), \qquad \sum_e \alpha_e = 1

``f(x)`` is computed once.  An expert's adapted output comes from its family's
:meth:`~qiadapters.adapters.layer.AdapterLayer.adapter_output` given ``f(x)``:

* output-side Hamming: ``E(x) = (f(x) - b) D + b`` -- only ``D`` is applied (cheap);
* input-side Hamming: ``E(x) = f(x D)`` -- a second call of ``f`` per such expert;
* any family without a cheaper rule (e.g. physics, unless it overrides ``adapter_output``):
  its ``adapter_forward``, i.e. one more call of ``f``;
* a plain ``nn.Module`` expert ``m`` (standalone :class:`Mixture` only) is an additive
  adapter: ``E(x) = f(x) + m(x)`` (e.g. a :class:`physics.PhysicsAdapter`).

**Top-k is dense** (sync-free): every expert runs in every forward and its delta is scaled
by its routed weight, which is exactly 0 for an expert outside the top k, so
``α_e (E_e(x) - f(x))`` adds an exact ``±0`` and the sum equals the sum over the routed
experts alone, bit for bit (for finite expert outputs: ``0 · inf`` would be NaN).  Nothing
reads the routing on the host: no device sync, one graph under
``torch.compile(fullgraph=True)`` and CUDA graphs, and every expert parameter receives a
gradient (zero for an unrouted expert) in every step, so DDP needs no
``find_unused_parameters``.  ``top_k`` is therefore a routing choice (sparse, renormalised
weights), not a saving: the work is that of ``E`` experts.  (Skipping unrouted experts would
need the weights on the host -- a sync on an accelerator and a graph break everywhere -- and
on CPU would pay off only for a global router, whose mixture is mergeable: for inference,
``merge()`` it and run no expert at all.)  Mixing is done in float32 (float64 for a float64
base) and cast back to the base output's dtype.

Experts are real submodules: each is its family's layer (its one adapter named
``"expert"``) around a :class:`~qiadapters.adapters.layer.SharedBase` that stands for the
mixture's base, so they follow ``.to()``, ``train()`` / ``eval()`` and ``state_dict`` with the
mixture, and the base weights are held (and saved) once.

Merging (``router="global"`` over mergeable experts, on an ``nn.Linear`` or convolution)
goes through the experts' public :meth:`~qiadapters.adapters.layer.AdapterLayer.fold`: every
expert's merged parameters ``θ_e = fold_e(θ_0)`` give ``θ = θ_0 + Σ_e α_e (θ_e - θ_0)``;
since these modules are affine in their parameters, ``f_θ(x) = Σ_e α_e f_{θ_e}(x)`` exactly.  For output-side Hamming experts that is
``W = (Σ_e α_e D_e)^T W_0``.  ``Σ_e α_e D_e`` is not orthogonal (and may be singular), so
unmerging does not invert it: the original parameters are kept in non-persistent buffers
while merged and copied back bit for bit.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from ...deprecation import renamed_keyword
from ..base_modules import input_width
from ..config import AdapterConfig
from ..layer import AdapterLayer, AdapterParts, SharedBase, compute_dtype, is_linear
from ..mixed_batch import row_groups
from ..registry import layer_class
from .config import MixtureConfig, check_options
from .routers import ROUTERS, Routing, route, routed_experts, router_losses
from .routers import router_stats as _routing_stats

__all__ = ["Mixture", "router_stats", "EXPERT"]

#: Adapter name of each expert inside its family's layer.
EXPERT = "expert"
def _affine(module: nn.Module) -> bool:
    """Whether ``module``'s output is affine in its parameters (a weighted merge is exact)."""
    return is_linear(module) or isinstance(module, _ConvNd)


def _describe(module: nn.Module) -> str:
    shapes = ", ".join(f"{n}{tuple(p.shape)}" for n, p in module.named_parameters())
    return f"{type(module).__name__}({shapes})"


def _signature(module: nn.Module):
    return type(module), [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def _input_width(base: nn.Module, router: str) -> int:
    """The width of the input a router reads: :func:`input_width` of the module itself (not
    of a module inside it), else its ``in_features``; TypeError if there is none."""
    width = input_width(base, inside=False)
    if width is None:
        width = getattr(base, "in_features", None)
    if not isinstance(width, int):
        raise TypeError(f"router={router!r} reads the input of the wrapped module, but the "
                        f"input width of a {type(base).__name__} is unknown (no in_features); "
                        f"target an nn.Linear or use router='global'")
    return width


def _expert(i: int, expert: Any, base: nn.Module) -> nn.Module:
    """``experts[i]`` as a submodule: its family's layer around a :class:`SharedBase` of
    ``base`` (an adapter config or layer), or a plain module adding ``m(x)``.  Builds without
    touching ``base``."""
    if isinstance(expert, MixtureConfig) or isinstance(expert, Mixture):
        raise TypeError(f"experts[{i}] is a {type(expert).__name__}; a mixture's experts cannot "
                        f"be mixtures (list their experts in one mixture instead)")
    if isinstance(expert, AdapterConfig):
        cls = layer_class(expert)
        try:
            parts = cls.build(base, **expert.layer_options())
        except (ValueError, TypeError) as e:
            raise type(e)(f"experts[{i}] ({type(expert).__name__}): {e}") from None
        return cls(SharedBase(base), adapter_name=EXPERT, parts=parts)
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
        parts = AdapterParts(
            modules={attr: getattr(expert, attr)[name] for attr in expert.adapter_layer_names},
            settings={attr: getattr(expert, attr)[name] for attr in expert.other_param_names})
        return type(expert)(SharedBase(base), adapter_name=EXPERT, parts=parts)
    if isinstance(expert, nn.Module):
        return expert
    raise TypeError(f"experts[{i}] is a {type(expert).__name__}; give adapter configs (e.g. "
                    f"HammingConfig(...)), adapter layers wrapping the base, or nn.Modules "
                    f"returning an additive delta")


class Mixture(AdapterLayer):
    r"""A frozen module with a router-weighted mixture of adapters (module docstring).

    .. math:: y = f(x) + \sum_e \alpha_e(x) (E_e(x) - f(x))

    Args:
        base_layer: the module every expert adapts (frozen); ``base=`` is its deprecated
            name (until qiadapters 0.5).
        experts: a non-empty list of adapter configs (``HammingConfig(...)``,
            ``physics.PhysicsConfig(...)``: built on ``base_layer``), adapter layers wrapping
            ``base_layer`` (or a module of the same type and shapes; their one active adapter's
            modules are used, not copied), or plain modules ``m`` adding ``m(x)``.
        router: ``"global"`` (a learned vector; mergeable), ``"sample"`` or ``"token"``
            (a linear gate on the input; see :mod:`~qiadapters.adapters.mixture.routers`).
        top_k: keep the k largest weights per routing unit, renormalised; None: all.
        temperature: ``α = softmax(logits / temperature)``.
        balance, z_loss: weights of the load-balancing loss and the router z-loss
            (:meth:`aux_loss`).
        adapter_name: the name of this first mixture.
        parts: parts built earlier by :meth:`build` (then ``experts`` and the options are
            not used; this is how the model machinery constructs the layer).

    After each forward, :meth:`aux_loss` holds the router losses (plus the experts' own aux
    losses) of that forward and :meth:`router_stats` its per-expert weights.

    Example::

        >>> mix = Mixture(nn.Linear(64, 64), [HammingConfig(orders=(1,)),
        ...                                   HammingConfig(blocks=2)],
        ...               router="token", top_k=1)
        >>> y = mix(torch.randn(2, 10, 64))           # == the base output at init
        >>> loss = task_loss(y) + mix.aux_loss()
    """

    adapter_layer_names = ("experts", "router")
    other_param_names = ("mixture_options",)
    fold_invertible = False  # sum_e alpha_e D_e is not orthogonal: merge keeps the original

    @renamed_keyword("base", "base_layer")
    def __init__(self, base_layer: nn.Module, experts: Optional[Sequence[Any]] = None,
                 router: str = "global", top_k: Optional[int] = None, temperature: float = 1.0,
                 balance: float = 0.01, z_loss: float = 0.0, *,
                 adapter_name: Optional[str] = "default", parts: Optional[AdapterParts] = None):
        options = {} if parts is not None or adapter_name is None else dict(
            experts=experts, router=router, top_k=top_k, temperature=temperature,
            balance=balance, z_loss=z_loss)
        super().__init__(base_layer, adapter_name, parts=parts, **options)
        #: per mixture adapter that ran in the latest forward: its routing
        self._ran: dict[str, Routing] = {}

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
        modules = nn.ModuleList([_expert(i, e, base_layer) for i, e in enumerate(experts)])
        return AdapterParts(modules={"experts": modules,
                                     "router": ROUTERS[router](width, len(experts))},
                            settings={"mixture_options": options})

    # ------------------------------------------------------------ experts
    def expert_layer(self, adapter_name: str, index: int) -> AdapterLayer:
        """Expert ``index`` of mixture ``adapter_name``: its family's layer around the shared
        base, its adapter named ``"expert"`` (e.g. ``delta_matrix("expert")`` of a Hamming
        expert); calling it gives that expert's adapted output alone."""
        expert = self.experts[adapter_name][index]
        if not isinstance(expert, AdapterLayer):
            raise TypeError(f"expert {index} of {adapter_name!r} is a plain module, not an "
                            f"adapter layer")
        return expert

    def _expert_delta(self, expert: nn.Module, x, fx, dtype, args, kwargs) -> torch.Tensor:
        """``E_e(x) - f(x)`` in ``dtype``."""
        if not isinstance(expert, AdapterLayer):  # a plain module adding m(x)
            ref = next(expert.parameters(), None)
            h = x.to(ref.dtype) if ref is not None and x.is_floating_point() else x
            return expert(h).to(dtype)
        return expert.adapter_output(x, fx, [EXPERT], *args, **kwargs).to(dtype) - fx.to(dtype)

    # ------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        self._ran = {}  # a forward without the mixture leaves no router loss behind
        return super().forward(*args, **kwargs)

    def adapter_forward(self, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
        fx = self.base_layer(x, *args, **kwargs)
        if not torch.is_tensor(fx):
            raise TypeError(f"a mixture mixes tensor outputs; {type(self.base_layer).__name__} "
                            f"returned a {type(fx).__name__}")
        dtype = compute_dtype(fx.dtype)
        out = fx.to(dtype)
        ran = {}
        for name in adapter_names:  # several mixtures on one layer add their corrections
            out = out + self._mixture_delta(name, x, fx, dtype, args, kwargs, ran)
        self._ran = ran
        return out.to(fx.dtype)

    def mixed_forward(self, x: torch.Tensor, rows, *args, **kwargs):
        """A mixed-adapter batch (:mod:`~qiadapters.adapters.mixed_batch`): ``f(x)`` once,
        then each mixture's correction on its rows.  Experts may call ``f`` again on their
        rows, so a call with more arguments than the input is refused."""
        if args or kwargs:
            raise TypeError(f"a Mixture around {type(self.base_layer).__name__} called with "
                            f"more arguments than its input cannot serve mixed-adapter "
                            f"batches (its experts would call it on some rows only)")
        fx = self.base_layer(x)
        dtype = compute_dtype(fx.dtype)
        out, ran = fx.to(dtype), {}
        for name, idx in row_groups(rows, self.adapter_names, x.device):
            delta = self._mixture_delta(name, x[idx], fx[idx], dtype, (), {}, ran)
            out = out.index_add(0, idx, delta)
        self._ran = ran
        return out.to(fx.dtype)

    def _mixture_delta(self, name, x, fx, dtype, args, kwargs, ran):
        """``Σ_e α_e (E_e(x) - f(x))`` in ``dtype`` over every expert of mixture ``name``
        (dense top-k: see the module docstring); ``α: (..., E)`` broadcasts over the features."""
        opts = self.mixture_options[name]
        routing = route(self.router[name](x), opts["temperature"], opts["top_k"])
        weights = routing.weights.to(dtype)
        delta = None
        for e, expert in enumerate(self.experts[name]):
            term = weights[..., e:e + 1] * self._expert_delta(expert, x, fx, dtype, args, kwargs)
            delta = term if delta is None else delta + term
        ran[name] = routing
        return delta

    # ------------------------------------------------------------ losses and statistics
    def aux_loss(self) -> torch.Tensor:
        """Router losses of the latest forward, ``L_bal + L_z`` per mixture (see
        :mod:`~qiadapters.adapters.mixture.routers`), plus the aux losses of the routed experts
        (weight > 0 for some unit; e.g. a physics expert's route regulariser), each times the
        0/1 tensor ``routed_e`` rather than selected on the host; zero before any forward."""
        terms = []
        for name, routing in self._ran.items():
            opts = self.mixture_options[name]
            terms.append(router_losses(routing, opts["balance"], opts["z_loss"]))
            routed = routed_experts(routing)
            for e, expert in enumerate(self.experts[name]):
                own = getattr(expert, "aux_loss", None)
                if callable(own):
                    term = own()
                    terms.append(term * routed[e].to(term.dtype))
        if not terms:
            return super().aux_loss()
        return torch.stack([t.to(terms[0].device, terms[0].dtype) for t in terms]).sum()

    def router_stats(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per mixture adapter that ran in the latest forward: ``{"weight", "prob", "load"}``,
        each ``(E,)`` and detached -- the mean routed weight ``α_e``, the mean router
        probability ``P_e`` and the top-1 fraction ``f_e`` over the routing units."""
        return {name: _routing_stats(routing) for name, routing in self._ran.items()}

    # ------------------------------------------------------------ merge
    def merge_blocker(self, adapter_names: Optional[Sequence[str]] = None) -> Optional[str]:
        names = self.active_adapters if adapter_names is None else list(adapter_names)
        for name in names:
            router = self.mixture_options[name]["router"]
            if router != "global":
                return (f"mixture {name!r} uses router={router!r}: its weights alpha(x) "
                        f"depend on the input, so sum_e alpha_e(x) W_e is no single weight; "
                        f"only router='global' merges")
            for e, expert in enumerate(self.experts[name]):
                if not isinstance(expert, AdapterLayer):
                    return (f"expert {e} of mixture {name!r} is a plain module (an additive "
                            f"delta), not a mergeable adapter")
                reason = expert.merge_blocker([EXPERT])
                if reason is not None:
                    return (f"expert {e} of mixture {name!r} ({type(expert).__name__}) is "
                            f"not mergeable ({reason})")
        if names and not _affine(self.base_layer):
            return (f"the wrapped {type(self.base_layer).__name__} is not affine in its "
                    f"parameters, so a weighted average of the experts' merged parameters "
                    f"is not their weighted output (nn.Linear and convolutions merge)")
        return None

    def fold(self, weights: dict[str, torch.Tensor], adapter_names: list[str],
             inverse: bool = False) -> dict[str, torch.Tensor]:
        """``θ_0 + Σ_m Σ_e α_{m,e} (fold_e(θ_0) - θ_0)`` over the named mixtures ``m``."""
        if inverse:
            raise TypeError("a mixture's merge is not invertible (sum_e alpha_e D_e is not "
                            "orthogonal); unmerge() restores the kept original weights")
        out = dict(weights)
        for name in adapter_names:
            opts = self.mixture_options[name]
            alpha = route(self.router[name](), opts["temperature"], opts["top_k"]).weights
            for e, a in enumerate(alpha.tolist()):
                if a == 0.0:
                    continue
                folded = self.experts[name][e].fold(weights, [EXPERT])
                for key, value in folded.items():
                    if value is not weights[key]:
                        out[key] = out[key] + a * (value - weights[key])
        return out

    # ------------------------------------------------------------ bookkeeping
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_ran"] = {}  # the latest forward's graph is not part of the layer
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
