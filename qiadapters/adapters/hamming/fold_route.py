r"""The fold route: a Hamming layer on a linear base trains through its adapted weight.

The activation route (the default) runs the base and applies ``D`` to its activations, a few
ops per layer each way.  The fold route builds the adapted weight instead, as merging does,

.. math:: W' = D^T W_0 \ (\text{side="output"}),\qquad W' = W_0 D^T \ (\text{side="input"})

(``D diag(s)`` with a learned scale; several adapters as their product, in the order
:meth:`HammingAdapter.fold <qiadapters.adapters.hamming.HammingAdapter.fold>` folds them) and
runs the base's own affine map with it, ``F.linear(x, W', b)``: exactly the activation
route's output in real arithmetic, the bias untouched.

**Batched.**  Inside one call of a model wrapped by :class:`~qiadapters.AdapterModel`, in
training with gradients on, the first fold-route layer to run folds the weights of every
fold-route layer of the model at once, group by group: layers whose weights have one shape,
dtype and device and whose adapters (in folding order) have one side, parametrization, block
layout, scale and sharing.  A group's weights are concatenated along the axis ``D`` acts on
(one ``cat``) and multiplied by its ``L r`` whole blocks (one ``bmm``); the blocks of every
group with the same parametrization, ``n``, orders and block size come from one stacked
build and assembly (as :mod:`.batched` builds them).  Each layer takes its ``W'`` as a view.
Per layer that leaves the linear itself: one op forward, two backward (the input's gradient,
which the base pays too, and ``W'``'s).  Outside
a model call, under ``torch.compile`` (which fuses the fold itself), under saved-tensor hooks
or in a distributed run (:func:`.batched.may_batch`), a layer folds its own weight.  In
inference (no gradient wanted) each layer keeps its ``W'`` until a parameter or the base
weight changes (the key of the block cache,
:meth:`Parametrization.cached_operands
<qiadapters.adapters.hamming.Parametrization.cached_operands>`, plus the base weight's).

**Precision.**  The fold runs in the adapter's dtype (float32; float64 for a float64 base)
with autocast off; ``W'`` is then cast to the base weight's dtype, and the linear runs as the
base would (under autocast, in the autocast dtype).

**What it costs.**  Arithmetic: ``b d_in d_out`` multiply-adds per layer and step for the
fold whatever the batch (the activation route: about ``b d`` per token).  Memory: the
backward keeps each layer's ``W'`` (its weight's size and dtype) where the activation route
keeps activations, and gathers the gradients of a group's ``W'`` before the blocks' gradient
(one more weight-sized tensor per layer for a while); a group's weights laid side by side are
not kept but laid out again in the backward (:class:`_FrozenProduct`).  In inference the kept
``W'`` is one more copy of each adapted weight: merge for serving.

**Where.**  Only a plain ``nn.Linear`` or transformers' ``Conv1D`` whose weight is a real
floating tensor (:func:`fold_blocker`); :func:`set_route` refuses anything else by name.
Mixture experts are applied to the mixture's base output (:meth:`HammingAdapter.adapter_output
<qiadapters.adapters.hamming.HammingAdapter.adapter_output>`) and mixed-adapter batches row
by row: both keep the activation route whatever the layer's route.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from ...circuits.block_layout import BlockLayout
from ...circuits.compound import compounds, held_compound_tables
from ...circuits.operands import assemble
from ...circuits.precision import without_autocast
from ...context import current_call
from ..base_modules import class_path, unwrap
from .batched import _Stack, _hamming_layers, _is_hamming_layer, may_batch
from .parametrizations import SkewParametrization, _count_optimizer_steps

__all__ = ["ROUTES", "set_route", "fold_blocker", "folded_weight", "fold_forward"]

#: The routes a Hamming layer trains by: ``"activation"`` (``D`` applied to the base's input
#: or output, the default) and ``"fold"`` (the base run with the adapted weight).
ROUTES = ("activation", "fold")
#: base kinds whose forward is ``x W^T + b`` (``nn.Linear``) or ``x W + b`` (``Conv1D``)
FOLD_KINDS = ("linear", "conv1d-transposed")
#: the key of the batched fold in the call's scratch space
KEY = "hamming.fold"


def fold_blocker(layer) -> Optional[str]:
    """Why ``layer`` (a Hamming layer) cannot take the fold route, or ``None``: its base must
    be a plain ``nn.Linear`` or transformers' ``Conv1D`` (not a convolution, a subclass with
    its own forward, or a quantized layer) with a real floating weight."""
    base = unwrap(layer.base_layer)
    if layer.kind.name not in FOLD_KINDS:
        return (f"its base is a {class_path(base)} (the fold route runs F.linear with the "
                f"adapted weight: torch.nn.Linear and transformers' Conv1D only)")
    weight = getattr(base, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.is_complex():
        return f"its weight is complex ({weight.dtype}); the fold route needs a real weight"
    return layer.kind.merge_blocker(base)


def set_route(module: nn.Module, route: str) -> None:
    """Set how every Hamming layer in ``module`` (a model, an :class:`~qiadapters.AdapterModel`
    or one layer) trains: ``"fold"`` (the module docstring) or ``"activation"`` (the default).

    Every layer is checked before any changes: a layer the fold route cannot run raises
    ``ValueError`` naming it and why.  The route is a way to compute, not part of an adapter:
    it is not saved, and outputs and gradients are the same either way (to round-off).
    """
    if route not in ROUTES:
        raise ValueError(f"route={route!r} is not valid; valid routes: "
                         f"{', '.join(map(repr, ROUTES))}")
    layers = [(name, m) for name, m in module.named_modules() if _is_hamming_layer(m)]
    if not layers:
        raise ValueError(f"set_route(route={route!r}) found no Hamming layer in the "
                         f"{class_path(module)} given")
    if route == "fold":
        for name, layer in layers:
            reason = fold_blocker(layer)
            if reason is not None:
                raise ValueError(f"route='fold' cannot run on the Hamming layer "
                                 f"{name or type(layer).__name__!r}: {reason}; leave it on "
                                 f"route='activation' (the default)")
    for _, layer in layers:
        layer.route = route


# ------------------------------------------------------------------ forward
def fold_forward(layer, x: torch.Tensor, adapter_names: list[str], *args, **kwargs):
    """The base's affine map with the adapted weight: ``F.linear(x, W', b)`` for an
    ``nn.Linear``, ``x W' + b`` for a ``Conv1D`` (as its own forward computes it)."""
    base = unwrap(layer.base_layer)
    if args or kwargs:
        raise TypeError(f"route='fold' runs {class_path(base)} as F.linear(x, W', b), which "
                        f"takes no other arguments; got {len(args)} positional and "
                        f"{sorted(kwargs)} keyword ones")
    W = folded_weight(layer, adapter_names)
    if layer.kind.name == "linear":
        return F.linear(x, W, base.bias)
    out = torch.addmm(base.bias, x.reshape(-1, x.shape[-1]), W)
    return out.view(*x.shape[:-1], W.shape[-1])


def _sequence(layer, adapter_names) -> list[str]:
    """The adapters in folding order (:meth:`HammingAdapter.fold`): output-side ones in the
    order added, then the input-side ones last-added first."""
    after = [a for a in adapter_names if layer.side[a] == "output"]
    before = [a for a in adapter_names if layer.side[a] == "input"]
    return after + before[::-1]


def folded_weight(layer, adapter_names: list[str]) -> torch.Tensor:
    """``W'`` of ``layer`` for its active adapters ``adapter_names``, in the base weight's
    dtype: from the model call's batched fold when there is one, kept in inference, else
    folded here."""
    base = unwrap(layer.base_layer)
    reason = fold_blocker(layer)  # the base may have been swapped since set_route
    if reason is not None:
        raise ValueError(f"route='fold' cannot run on this {type(layer).__name__}: {reason}; "
                         f"call set_route(model, 'activation')")
    call = current_call()
    if call is not None and layer.training and may_batch():
        batch = call.get(KEY)
        if batch is None:
            batch = call[KEY] = _build(call["model"])
        folded, taken = batch
        hit = folded.get(id(layer))
        if hit is not None and hit[0] == tuple(adapter_names):
            taken.update(hit[1])
            return hit[2]
    rots = [layer.hamming[a] for a in adapter_names]
    W0 = base.weight
    if not (all(r._cacheable() for r in rots)
            and not (torch.is_grad_enabled() and W0.requires_grad)):
        return _fold_one(layer, adapter_names, W0)
    _count_optimizer_steps()
    key = (tuple(adapter_names), tuple(layer.side[a] for a in adapter_names),
           tuple(r._stamp(layer.adapter_dtype) for r in rots),
           (W0._version, W0.data_ptr(), W0.dtype, W0.device, W0.shape))
    params = tuple(p for r in rots for p in r.parameters()) + (W0,)
    hit = layer.__dict__.get("_fold_cache")
    if hit is not None and hit[1] == key and all(a is b for a, b in zip(hit[0], params)):
        return hit[2]
    W = _fold_one(layer, adapter_names, W0)
    layer.__dict__["_fold_cache"] = (params, key, W)
    return W


def _fold_one(layer, adapter_names, W0: torch.Tensor) -> torch.Tensor:
    """One layer's ``W'``: :meth:`HammingAdapter.fold` in the adapter dtype, autocast off."""
    with without_autocast(W0):
        W = layer.fold({"weight": W0.to(layer.adapter_dtype)}, list(adapter_names))["weight"]
    return W.to(W0.dtype)


# ------------------------------------------------------------------ the batched fold
def _signature(layer, names) -> tuple:
    """What a layer's fold must share with the others of its group."""
    W = unwrap(layer.base_layer).weight
    seq = tuple((layer.side[a], type(layer.hamming[a]), layer.hamming[a].block_layout,
                 layer.hamming[a].scale is not None, layer.hamming[a].share_blocks,
                 layer.hamming[a].copies)
                for a in _sequence(layer, names))
    return (layer.kind.name, layer.kind.weight_axes, tuple(W.shape), W.dtype, W.device,
            layer.adapter_dtype, seq)


def _members(model: nn.Module) -> dict:
    """``{signature: [(layer, adapter names)]}`` of the fold-route Hamming layers of
    ``model`` that may fold in a call: in training, not disabled, some adapter pending."""
    groups = defaultdict(list)
    for layer in _hamming_layers(model):
        if getattr(layer, "route", "activation") != "fold" or layer.disable_adapters \
                or not layer.training or fold_blocker(layer) is not None:
            continue
        names = [a for a in layer.active_adapters
                 if a not in layer.merged_adapters and a in layer.hamming]
        if names:
            groups[_signature(layer, names)].append((layer, tuple(names)))
    return groups


def _skew_stackable(rot) -> bool:
    return isinstance(rot, SkewParametrization) and type(rot.weight.data) is torch.Tensor


def _whole_blocks(requests: list, taken: set) -> list:
    """The whole blocks (every order's block and the identity pad,
    :func:`~qiadapters.circuits.operands.assemble`) of each request ``(adapters, dtype)``
    (one adapter of each layer of a group), stacked: ``(L r, b, b)``.  Requests whose
    parametrization, ``n``, orders, block size, dtype and device agree are built by one
    stacked build and one assembly (Cayley, expm: whatever their layers' weight shapes), the
    others adapter by adapter and concatenated; a layer that never takes its weight gets no
    gradient (``None``)."""
    out: list = [None] * len(requests)
    builds = defaultdict(list)
    for i, (rots, dtype) in enumerate(requests):
        lead, lay = rots[0], rots[0].block_layout
        if all(_skew_stackable(r) for r in rots):
            key = (type(lead), lay.n, lay.orders, lay.block_size, dtype, lead.weight.device)
            builds[key].append(i)
            continue
        per_layer = [r.blocks(dtype) for r in rots]
        blocks = [_Stack.apply(taken, tuple(rots), *(b[k] for b in per_layer))
                  for k in range(len(lay.orders))]
        out[i] = assemble(blocks, lay)
    for (_, _, orders, _, dtype, _), which in builds.items():
        rots = [r for i in which for r in requests[i][0]]
        lead = rots[0]
        Q = lead.orthogonal(dtype, _Stack.apply(taken, tuple(rots), *(r.weight for r in rots)))
        blocks = compounds(Q, orders, held_compound_tables(lead.compound_tables))
        whole = assemble(blocks, lead.block_layout)
        parts = whole.split([len(requests[i][0]) * requests[i][0][0].copies for i in which])
        for i, part in zip(which, parts):
            group = requests[i][0]
            L, r = len(group), group[0].block_layout.blocks
            if group[0].copies != r:  # shared: one parameter set per layer, r blocks each
                part = part.unsqueeze(1).expand(L, r, *part.shape[1:]).flatten(0, 1)
            out[i] = part
    return out


def _build(model: nn.Module) -> tuple[dict, set]:
    """Every group's ``W'``: ``{id(layer): (adapter names, ids of its adapters, W')}``, and
    the set in which the layers that take theirs record their adapters.

    A group's weights are laid side by side along the axis ``D`` acts on: ``X: (L, d, e)``
    (``torch.cat`` along that axis, ``e`` the other width) when it is the weight's first axis
    (an ``nn.Linear``'s output side: each layer's ``W'`` is then a contiguous slice), else
    ``X: (e, L, d)``; an adapter on the other axis lays them out again."""
    folded, taken = {}, set()
    groups = [(sig, members) for sig, members in _members(model).items() if len(members) > 1]
    seqs = [[_sequence(layer, names) for layer, names in members] for _, members in groups]
    requests, where = [], {}
    for g, ((sig, members), seq) in enumerate(zip(groups, seqs)):
        for j in range(len(sig[-1])):
            where[g, j] = len(requests)
            requests.append(([layer.hamming[s[j]] for (layer, _), s in zip(members, seq)],
                             sig[5]))
    whole = _whole_blocks(requests, taken)
    for g, ((signature, members), seq) in enumerate(zip(groups, seqs)):
        _, (out_axis, in_axis), _, w_dtype, _, dtype, specs = signature
        weights = [unwrap(layer.base_layer).weight for layer, _ in members]
        L = len(members)
        with without_autocast(weights[0]):
            X, axis = None, None
            for j, (side, _, lay, has_scale, _, _) in enumerate(specs):
                want = out_axis if side == "output" else in_axis
                if X is None and not has_scale and not any(w.requires_grad for w in weights):
                    spec = (want, L, lay.blocks, lay.block_size, lay.tail, side == "input",
                            dtype)
                    X, axis = _FrozenProduct.apply(spec, whole[where[g, j]], *weights), want
                    continue
                if want != axis:
                    if X is not None:
                        weights = X.unbind(axis)
                    X, axis = torch.cat(weights, want).to(dtype).unflatten(want, (L, -1)), want
                rots = requests[where[g, j]][0]
                X = _apply(X, axis, rots, whole[where[g, j]], lay, side == "input", has_scale,
                           dtype, taken)
            X = X.to(w_dtype)
        for (layer, names), s, W in zip(members, seq, X.unbind(axis)):
            folded[id(layer)] = (names, tuple(id(layer.hamming[a]) for a in s), W)
    return folded, taken


def _apply(X: torch.Tensor, axis: int, rots: list, whole: torch.Tensor, lay: BlockLayout,
           transpose: bool, has_scale: bool, dtype: torch.dtype, taken: set) -> torch.Tensor:
    """Every layer's weight ``W_l`` with its map ``M_l = D_l diag(s_l)`` folded along its
    features (``W_l^T <- W_l^T M_l``, or ``M_l^T`` if ``transpose``), for ``X: (L, d, e)``
    (``axis`` 0) or ``(e, L, d)`` (``axis`` 1): the ``L r`` whole blocks ``whole: (L r, b, b)``
    applied by one ``bmm``; each layer's tail passes through."""
    L = len(rots)
    r, b = lay.blocks, lay.block_size
    scale = None
    if has_scale:
        scale = _Stack.apply(taken, tuple(rots), *(p.scale for p in rots)).to(dtype).view(L, -1)
        scale = scale[:, :, None] if axis == 0 else scale
        if transpose:  # x M^T = (x diag(s)) D^T
            X = X * scale
    out = _product(X, whole, (axis, L, r, b, lay.tail, transpose, dtype))
    if has_scale and not transpose:  # x M = (x D) diag(s)
        out = out * scale
    return out


def _laid_out(weights, spec) -> torch.Tensor:
    """The weights side by side along the axis ``D`` acts on, in the adapter dtype:
    ``(L, d, e)`` (axis 0) or ``(e, L, d)`` (axis 1)."""
    axis, L, dtype = spec[0], spec[1], spec[-1]
    return torch.cat(weights, axis).to(dtype).unflatten(axis, (L, -1))


def _uses_transposed(spec) -> bool:
    """Whether the product multiplies by ``B^T`` (else ``B``): ``M^T`` on the rows (axis 0)
    or ``M^T`` on the columns (axis 1, ``transpose``)."""
    return (spec[0] == 0) != spec[5]


def _product(X: torch.Tensor, whole: torch.Tensor, spec) -> torch.Tensor:
    """:func:`_apply` without the scale: ``spec = (axis, L, r, b, tail, transpose, dtype)``."""
    axis, L, r, b, tail, _, dtype = spec
    B = whole.to(dtype)
    A = B.transpose(-1, -2) if _uses_transposed(spec) else B
    if axis == 0:  # features in rows: (x M)^T = M^T x^T, block by block A W_blk
        e = X.shape[-1]
        head = torch.bmm(A, X[:, : r * b].reshape(L * r, b, e)).view(L, r * b, e)
        return torch.cat([head, X[:, r * b:]], 1) if tail else head
    e = X.shape[0]  # features in columns: W_blk A, the blocks along the batch
    head = torch.bmm(X[..., : r * b].reshape(e, L * r, b).transpose(0, 1), A)
    head = head.transpose(0, 1).reshape(e, L, r * b)
    return torch.cat([head, X[..., r * b:]], -1) if tail else head


class _FrozenProduct(torch.autograd.Function):
    """:func:`_product` of frozen weights laid side by side (:func:`_laid_out`), keeping the
    weights themselves for the backward, not their copy in the adapter dtype (which the
    backward lays out again: one ``cat`` per group instead of a copy of the group's weights
    held from the forward to the backward)."""

    @staticmethod
    def forward(ctx, spec, whole, *weights):
        ctx.spec = spec
        ctx.save_for_backward(whole, *weights)
        return _product(_laid_out(weights, spec), whole, spec)

    @staticmethod
    def backward(ctx, grad):
        whole, *weights = ctx.saved_tensors
        axis, L, r, b, _, _, dtype = spec = ctx.spec
        X = _laid_out(weights, spec)
        if axis == 0:  # out = A X_blk: dA = g X_blk^T
            e = X.shape[-1]
            dA = torch.bmm(grad[:, : r * b].reshape(L * r, b, e),
                           X[:, : r * b].reshape(L * r, b, e).transpose(-1, -2))
        else:          # out = X_blk A: dA = X_blk^T g
            e = X.shape[0]
            dA = torch.bmm(X[..., : r * b].reshape(e, L * r, b).permute(1, 2, 0),
                           grad[..., : r * b].reshape(e, L * r, b).transpose(0, 1))
        dB = dA.transpose(-1, -2) if _uses_transposed(spec) else dA
        return (None, dB.to(whole.dtype), *(None for _ in weights))
