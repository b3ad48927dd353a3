r"""Building the blocks of every Hamming layer of a model at once.

In training a Hamming layer rebuilds its blocks on every call: the skew matrix ``S``, the
weight-1 block ``Q`` (a Cayley solve or a matrix exponential), the order-2 compound, and the
backward of each.  For the block sizes adapters use (``n = 15``: ``Q`` is 15 x 15) that is a
few dozen small ops per layer whose cost is per-op overhead (a kernel launch each on a GPU),
not arithmetic.  Layers of equal shape can share the ops: stacked along the batch axis,

.. math:: W = [W_1; W_2; \dots; W_L] \to S \to Q = [Q_1; \dots; Q_L] \to C_k(Q)
          = [C_k(Q_1); \dots; C_k(Q_L)],

every map of the build is per block, so one pass over ``W: (sum_l c_l, n(n-1)/2)`` gives
each layer exactly what its own build gives (``c_l`` = its parameter sets: ``r``, or 1 with
``share_blocks``), and the backward is as many ops again for the whole group.

**When.**  Inside a call of a model wrapped by :class:`~qiadapters.AdapterModel` (its forward
hooks open a scratch space per call, :func:`~qiadapters.context.current_call`), the
first Hamming layer to run builds, group by group, the blocks of every Hamming layer of the
model that may run in the same call: its active adapters that are not merged, with the layer
not disabled.  A group is the layers with the same parametrization (``cayley``, ``expm``),
``n``, orders, block size, route, device and compute dtype, the route planned for the first
layer's token count (:func:`~qiadapters.circuits.operands.plan_route`): the orders built are
those applied by their block (an order applied mode-wise is never built), and where ``D`` is
applied whole the whole blocks are assembled for the group at once.  Later layers pick their
share up.  A group of one layer builds as before.

Only where the result is the same as building layer by layer: in training mode, with
gradients on and the adapter's parameters trainable, plain tensors (not sharded, not
quantized); not inside ``torch.compile`` (which fuses the build itself), not under saved-tensor
hooks (``torch.utils.checkpoint`` without reentrancy, ``save_on_cpu``: a recomputation, run
outside the model's call, must build the same way), not in a ``torch.distributed`` run (a
rank's data-parallel wrapper watches which parameters get gradients).  A layer that did not
run gets no gradient (``None``), as when it builds its own.  The ``circuit`` parametrization
builds per layer (its blocks are not compounds of one ``Q``).
"""
from __future__ import annotations

import weakref
from collections import defaultdict
from typing import Optional

import torch

from ...circuits.compound import compounds, held_compound_tables
from ...circuits.operands import Operands, assemble, plan_route
from ...context import current_call
from ..layer import AdapterLayer
from .parametrizations import SkewParametrization

__all__ = ["batched_operands", "may_batch"]

#: the key of the batched operands in the call's scratch space
KEY = "hamming.batched"


class _Stack(torch.autograd.Function):
    """``torch.cat(weights)`` whose backward gives no gradient (``None``) to the weights of
    layers that never took their blocks (``taken``, filled in during the forward), as a layer
    that did not run has none when it builds its own blocks."""

    @staticmethod
    def forward(ctx, taken: set, members: tuple, *weights):
        ctx.taken, ctx.members = taken, members
        ctx.sizes = [w.shape[0] for w in weights]
        return torch.cat(weights)

    @staticmethod
    def backward(ctx, grad):
        parts = grad.split(ctx.sizes)
        return (None, None, *(g if id(m) in ctx.taken else None
                              for g, m in zip(parts, ctx.members)))


#: The innermost saved-tensor hooks in force, or None (``torch.utils.checkpoint`` and
#: ``save_on_cpu`` install them); a torch without this reader counts as having hooks.
_saved_tensor_hooks = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks",
                              lambda ignore_is_tracing: True)


def may_batch() -> bool:
    """Whether this moment allows a batched build (module docstring, **Only where**)."""
    if not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return False
    if _saved_tensor_hooks(False) is not None:
        return False
    return not (torch.distributed.is_available() and torch.distributed.is_initialized())


def _eligible(param) -> bool:
    weight = getattr(param, "weight", None)
    return (isinstance(param, SkewParametrization) and param.training and weight.requires_grad
            and type(weight.data) is torch.Tensor
            and tuple(weight.shape) == (param.copies, param.triu.shape[-1]))


#: Module registrations anywhere in the process (``add_module``, ``setattr`` of a module,
#: ``ModuleList.append``...) since the first list of layers was kept: part of the key of
#: :func:`_hamming_layers`' cache, so any change to a module tree refreshes it.  The counting
#: hook is installed by the first call of :func:`_hamming_layers`, not on import (a change
#: made before any list is kept cannot make one stale); torch's registration hooks are
#: process-wide only.
_REGISTRATIONS = [0]
_REGISTRATION_HOOK: list = []


def _count_registration(module, name, submodule):
    _REGISTRATIONS[0] += 1


def _count_registrations() -> None:
    """Install the registration counter (once)."""
    if not _REGISTRATION_HOOK:
        _REGISTRATION_HOOK.append(
            torch.nn.modules.module.register_module_module_registration_hook(_count_registration))


def _is_hamming_layer(module: torch.nn.Module) -> bool:
    """A Hamming layer: an adapter layer whose adapters are held as ``hamming`` (the family's
    one ``adapter_layer_names`` entry; this module is below the layer class)."""
    return isinstance(module, AdapterLayer) and "hamming" in module.adapter_layer_names


def _hamming_layers(model: torch.nn.Module) -> list:
    """The Hamming layers in ``model.modules()``, kept on the model between calls until a
    module is registered anywhere (a walk over every module of a transformer costs about a
    millisecond per call).  Keyed by the model's identity too, so a copy (``deepcopy``,
    pickle) walks its own tree.  A layer removed with ``del`` stays listed until the next
    registration: it builds blocks that nothing takes (no gradient reaches it)."""
    _count_registrations()
    key = (_REGISTRATIONS[0], id(model))
    hit = model.__dict__.get("_hamming_layers_cache")
    if hit is not None and hit[0] == key:
        layers = [ref() for ref in hit[1]]
        if all(layer is not None for layer in layers):
            return layers
    layers = [m for m in model.modules() if _is_hamming_layer(m)]
    model.__dict__["_hamming_layers_cache"] = (key, [weakref.ref(m) for m in layers])
    return layers


def _members(model: torch.nn.Module) -> list:
    """``(parametrization, compute dtype)`` of every Hamming adapter that may run in a call
    of ``model``: active, not merged, layer not disabled, eligible for a batched build."""
    out = []
    for layer in _hamming_layers(model):
        # a fold-route layer builds its blocks with its weight's fold (fold_route.py)
        if layer.disable_adapters or getattr(layer, "route", "activation") == "fold":
            continue
        for name in layer.active_adapters:
            param = layer.hamming[name] if name in layer.hamming else None
            if name not in layer.merged_adapters and param is not None and _eligible(param):
                out.append((param, layer.adapter_dtype))
    return out


def _build(model: torch.nn.Module, tokens: int) -> tuple[dict, set]:
    """The batched operands of ``model``'s Hamming adapters, ``{id(parametrization):
    Compounds or Operands}`` (:class:`~qiadapters.circuits.operands.Operands` with the whole
    blocks where those are applied), and the set the layers that take theirs are recorded in."""
    groups = defaultdict(list)
    for param, dtype in _members(model):
        lay, device = param.block_layout, param.weight.device
        route = plan_route(lay, tokens, device.type)
        key = (type(param), lay.n, lay.orders, lay.block_size, route, device, dtype)
        groups[key].append(param)
    operands, taken = {}, set()
    for (_, _, orders, _, route, _, dtype), members in groups.items():
        if len(members) < 2:
            continue
        build = tuple(k for k, mode in zip(orders, route.modewise) if not mode)
        lead, sizes = members[0], [p.copies for p in members]
        Q = lead.orthogonal(dtype, _Stack.apply(taken, tuple(members),
                                                *(p.weight for p in members)))
        blocks = compounds(Q, build, held_compound_tables(lead.compound_tables)) if build else []
        whole = None
        if route.whole:
            whole = assemble(blocks, lead.block_layout).split(sizes)
        per_order = {k: B.split(sizes) for k, B in zip(build, blocks)}
        for i, (p, Q_i) in enumerate(zip(members, Q.split(sizes))):
            r = p.block_layout.blocks
            built = [per_order[k][i].expand(r, -1, -1) if k in per_order else None
                     for k in orders]
            if whole is None:
                operands[id(p)] = p.operands(dtype, Q_i, tuple(built))
            else:  # the orders' blocks are not kept: only the whole ones are applied
                operands[id(p)] = Operands([], whole[i].expand(r, -1, -1))
    return operands, taken


def batched_operands(param, x: torch.Tensor) -> Optional[object]:
    """The operands of ``param`` (a layer's parametrization) from the batched build of the
    running model call, building it if this is the first layer to ask; ``None`` when the
    layer should build its own (no call running, not allowed now, not a member)."""
    call = current_call()
    if call is None or not may_batch():
        return None
    batch = call.get(KEY)
    if batch is None:
        if not _eligible(param):  # later, a layer that is not a member finds nothing
            return None
        batch = call[KEY] = _build(call["model"], x.numel() // max(x.shape[-1], 1))
    operands, taken = batch
    found = operands.get(id(param))
    if found is not None:
        taken.add(id(param))
    return found
