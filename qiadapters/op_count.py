"""Count the ATen ops a piece of PyTorch code dispatches: a device-free proxy for kernel launches.

On a GPU a small training step is bound by kernel launches, not arithmetic; launches can be
counted on a CPU, deterministically, by recording every ATen op the dispatcher runs::

    from qiadapters.op_count import OpCounter
    with OpCounter() as counter:
        with counter.phase("forward"):
            loss = model(**batch).loss
        with counter.phase("backward"):
            loss.backward()
    counter.total, counter.by_phase()          # launches, per phase

Every op counted is at least one kernel launch on CUDA (a ``_foreach_*`` op over many tensors
is one launch per chunk of tensors, a few for a whole model). What is **not** counted, and why
(:meth:`OpCounter.excluded` keeps a tally of each, so nothing is dropped silently):

* ops outside the ``aten`` namespace: ``prim::`` device/layout queries and ``profiler::``
  markers run on the host;
* views: ops whose schema returns an alias of an input that they do not write
  (``Tensor(a)``: ``view``, ``t``, ``transpose``, ``expand``, ``as_strided``, ``detach``,
  ``alias``, ``lift_fresh``, ...) only make new tensor metadata. In-place and ``out=`` ops
  (``Tensor(a!)``) write memory and are counted;
* :data:`METADATA_OPS`: shape/stride queries and ``_unsafe_view`` (a view whose schema does
  not say so), which read or make metadata only;
* :data:`ALLOCATION_OPS`: ``empty*``/``new_empty*``/``resize_`` allocate memory without a
  kernel (on CUDA the caching allocator serves them on the host);
* in a phase entered with ``host_scalars=True``, ops whose tensor arguments are all 0-dim
  (:meth:`OpCounter.phase`): PyTorch's optimizers keep their step counters as 0-dim CPU
  tensors even for CUDA parameters (``capturable=False``, the default), so those ops (the
  step increment, ``item()`` of each step for the bias corrections) run on the host of a
  CUDA machine. They are tallied apart in :attr:`OpCounter.host`.
"""
from __future__ import annotations

import contextlib
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

#: ops that read or make tensor metadata only (no alias annotation in their schema says so)
METADATA_OPS = frozenset({
    "aten::size", "aten::sym_size", "aten::stride", "aten::sym_stride", "aten::numel",
    "aten::sym_numel", "aten::dim", "aten::storage_offset", "aten::sym_storage_offset",
    "aten::is_contiguous", "aten::sym_is_contiguous", "aten::is_strides_like_format",
    "aten::is_non_overlapping_and_dense", "aten::is_same_size", "aten::_unsafe_view"})
#: ops that allocate memory and launch no kernel
ALLOCATION_OPS = frozenset({
    "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty",
    "aten::new_empty_strided", "aten::resize_"})


def is_view(func) -> bool:
    """Whether ``func``'s schema returns an alias of an input that it does not write."""
    return any(ret.alias_info is not None and not ret.alias_info.is_write
               for ret in func._schema.returns)


def exclusion(func) -> str | None:
    """Why the op ``func`` launches no kernel (``"not aten"``, ``"view"``, ``"metadata"``,
    ``"allocation"``), or ``None`` when it is counted."""
    name = func._schema.name
    if not name.startswith("aten::"):
        return "not aten"
    if is_view(func):
        return "view"
    if name in METADATA_OPS:
        return "metadata"
    if name in ALLOCATION_OPS:
        return "allocation"
    return None


class OpCounter(TorchDispatchMode):
    """Counts the ATen ops dispatched inside it that launch a kernel (see the module's
    docstring for the ops left out), by op name and by phase.

    * :attr:`ops`: ``Counter`` of ``(phase, op name)`` -> count (phase ``None`` outside any
      :meth:`phase`);
    * :attr:`excluded`: ``Counter`` of ``(reason, op name)`` -> count, the ops left out;
    * :attr:`host`: ``Counter`` of ``(phase, op name)``, the 0-dim ops of ``host_scalars``
      phases (left out of :attr:`ops`).
    """

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()
        self.excluded: Counter = Counter()
        self.host: Counter = Counter()
        self._phase: str | None = None
        self._host_scalars = False

    @contextlib.contextmanager
    def phase(self, name: str, host_scalars: bool = False):
        """Attribute the ops run inside to phase ``name``; with ``host_scalars``, ops whose
        tensor arguments are all 0-dim are tallied in :attr:`host` instead (an optimizer's
        step counters, which live on the host of a CUDA machine)."""
        outer = self._phase, self._host_scalars
        self._phase, self._host_scalars = name, host_scalars
        try:
            yield self
        finally:
            self._phase, self._host_scalars = outer

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reason = exclusion(func)
        name = func._schema.name
        if reason is not None:
            self.excluded[reason, name] += 1
        elif self._host_scalars and _all_scalar_tensors(args, kwargs):
            self.host[self._phase, name] += 1
        else:
            self.ops[self._phase, name] += 1
        return func(*args, **kwargs)

    @property
    def total(self) -> int:
        """The ops counted, all phases together."""
        return sum(self.ops.values())

    def by_phase(self) -> dict:
        """``{phase: ops counted}`` in the order the phases first ran."""
        out: dict = {}
        for (phase, _), n in self.ops.items():
            out[phase] = out.get(phase, 0) + n
        return out

    def by_op(self, phase: str | None = None) -> Counter:
        """``Counter`` of op name -> count (of one phase, or all)."""
        out: Counter = Counter()
        for (p, name), n in self.ops.items():
            if phase is None or p == phase:
                out[name] += n
        return out


def _all_scalar_tensors(args, kwargs) -> bool:
    tensors = [x for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
    return bool(tensors) and all(t.dim() == 0 for t in tensors)


def count_train_step(model: torch.nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
                     warmup: int = 1) -> OpCounter:
    """The ops of one training step of ``model`` on ``batch`` (``model(**batch).loss``),
    after ``warmup`` uncounted steps (the first step creates the optimizer's state): phases
    ``"forward"``, ``"backward"``, ``"optimizer"`` (``optimizer.step()``, its step counters
    as host scalars); ``zero_grad(set_to_none=True)`` runs no op."""
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")

    def step(counter=None):
        phase = counter.phase if counter is not None else (
            lambda *a, **k: contextlib.nullcontext())
        with phase("forward"):
            loss = model(**batch).loss
        with phase("backward"):
            loss.backward()
        with phase("optimizer", host_scalars=True):
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    with OpCounter() as counter:
        step(counter)
    return counter
