r"""Parametrizations of a Hamming adapter's blocks: parameters -> orthogonal Hamming blocks.

Each parametrization is one small ``nn.Module`` holding the trainable parameters of the
``r`` blocks of a :class:`~qiadapters.circuits.block_layout.BlockLayout` and producing, in ONE
method :meth:`Parametrization.blocks`, the list of weight-k blocks
``[(r, C(n,k), C(n,k)) for k in orders]``.  Merging and the dense ``D`` go through that
method; the forward applies :meth:`Parametrization.operands`, which is the built blocks, or
for the compound parametrizations (Cayley, expm) a
:class:`~qiadapters.circuits.operands.Compounds` of the weight-1 blocks ``Q``, so that
:func:`~qiadapters.circuits.apply.apply_blocks` can apply an order mode-wise without
building its block when that is cheaper.

=============  ==========================================  ========================  ===========
name           weight-1 block ``Q``                        parameters (per block)     at init
=============  ==========================================  ========================  ===========
``cayley``     :math:`(I - S)(I + S)^{-1}`, S skew          ``n(n-1)/2``               ``S = 0``
``expm``       :math:`\exp(S)`, S skew                      ``n(n-1)/2``               ``S = 0``
``circuit``    :math:`V(a) V(b)^T`, V a RBS/FBS circuit     ``2 * n_params(layout)``   ``a = b``
=============  ==========================================  ========================  ===========

All start at ``D = I``.  ``share_blocks=True`` keeps one parameter set for all ``r`` blocks.
New parametrizations register in :data:`PARAMETRIZATIONS`.
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from ... import bounds
from ...circuits import Circuit
from ...circuits import cache
from ...circuits.apply import apply_blocks, dense
from ...circuits.block_layout import BlockLayout
from ...circuits.layouts import gate_count
from ...circuits.cache import TableBuffers
from ...circuits.compound import held_compound_tables, hold_compound_tables
from ...circuits.modewise import mode_tables
from ...circuits.operands import Compounds, Operands, plan_route, resolve
from ...circuits.precision import without_autocast
from ..layer import compute_dtype


#: Optimizer steps taken in this process (any ``torch.optim.Optimizer``) since the first
#: block cache was filled: part of the key of :meth:`Parametrization.cached_operands`, as
#: fused optimizers (``Adam(fused=True)``) write the parameters without bumping their version
#: counters.  The counting hook is installed by the first cache fill, not on import (steps
#: taken before any block is kept cannot make a kept block stale); torch has step hooks per
#: optimizer or for all of them, and which optimizers hold an adapter's parameters is not
#: known here.
_OPTIMIZER_STEPS = [0]
_STEP_HOOK: list = []


def _count_step(optimizer, args, kwargs) -> None:
    _OPTIMIZER_STEPS[0] += 1


def _count_optimizer_steps() -> None:
    """Install the step counter (once)."""
    if not _STEP_HOOK:
        _STEP_HOOK.append(register_optimizer_step_post_hook(_count_step))


class Parametrization(nn.Module):
    """Base class: the parameters of ``r`` Hamming blocks laid out by ``block_layout``.

    ``gate`` and ``layout`` name the circuit (used by circuit-based parametrizations; recorded
    by the others); ``share_blocks`` makes all ``r`` blocks share one parameter set.
    """

    name: ClassVar[str] = ""

    def __init__(self, block_layout: BlockLayout, *, gate: str = "rbs", layout: str = "pyramid",
                 share_blocks: bool = False, scale: bool = False):
        super().__init__()
        n, ks = block_layout.n, block_layout.orders
        gates = 2 * gate_count(layout, n) if self.name == "circuit" else 0
        by_gate = gate == "rbs" and layout == "butterfly"  # no compound identity: simulated
        bounds.check("orders", ks, bounds.hamming_table_entries(n, ks, gates, by_gate),
                     bounds.MAX_TABLE_ENTRIES,
                     f"the index tables of each block (n={n} qubits, block size "
                     f"{block_layout.block_size}) would hold", "qiadapters.bounds.MAX_TABLE_ENTRIES",
                     "use lower orders, or more blocks (a smaller n)")
        self.block_layout = block_layout
        self.gate = gate
        self.layout = layout
        self.share_blocks = bool(share_blocks)
        #: ``s: (d,)``, the learned per-feature scale beside the rotation (``D diag(s)``), or
        #: None.  The blocks, :meth:`forward` and :meth:`dense` are the rotation ``D`` alone;
        #: the adapter layer applies ``s`` (it is not part of any block).
        self.scale = nn.Parameter(torch.ones(block_layout.dim)) if scale else None

    @property
    def copies(self) -> int:
        """Number of independent parameter sets: 1 if shared, else ``r``."""
        return 1 if self.share_blocks else self.block_layout.blocks

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def block_params(cls, n: int, layout: str = "pyramid") -> int:
        """Parameters of one block on ``n`` qubits, in closed form (the table above): a built
        module's :attr:`n_params` is this times :attr:`copies` (plus ``d`` with a scale).
        Builds nothing."""
        raise NotImplementedError

    def blocks(self, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        """The Hamming blocks ``[(r, C(n,k), C(n,k)) for k in orders]``, computed in
        float64 if ``dtype`` is float64 and in float32 otherwise (fp16/bf16 included)."""
        raise NotImplementedError(f"{type(self).__name__} must implement blocks()")

    #: float64 stays float64; everything else is computed in float32 (the library's one rule).
    compute_dtype = staticmethod(compute_dtype)

    def _per_block(self, t: torch.Tensor) -> torch.Tensor:
        """Broadcast a shared ``(1, m, m)`` block to ``(r, m, m)``."""
        return t.expand(self.block_layout.blocks, *t.shape[1:]) if self.share_blocks else t

    def operands(self, dtype: torch.dtype | None = None):
        """What the forward applies (:func:`~qiadapters.circuits.apply.apply_blocks`):
        by default the built :meth:`blocks`; a parametrization that knows its weight-1 blocks
        returns :class:`~qiadapters.circuits.operands.Compounds` instead."""
        return self.blocks(dtype)

    def forward(self, x: torch.Tensor, transpose: bool = False, operands=None) -> torch.Tensor:
        """``x D`` (``x D^T`` if ``transpose``) for ``x: (..., d)``; the operands come from
        :meth:`cached_operands` (rebuilt in training, kept in inference) unless given (built
        together with other layers' by :mod:`~qiadapters.adapters.hamming.batched`)."""
        if operands is None:
            operands = self.cached_operands(x.dtype)
        return apply_blocks(x, operands, self.block_layout, transpose=transpose)

    def resolve(self, x: torch.Tensor, operands=None) -> Operands:
        """The routes that apply ``D`` to ``x`` (:func:`~qiadapters.circuits.operands.resolve`),
        to apply the same ``D`` to more inputs (``forward(y, operands=...)``)."""
        if operands is None:
            operands = self.cached_operands(x.dtype)
        return resolve(operands, self.block_layout, x.numel() // max(x.shape[-1], 1),
                       x.device.type)

    def apply_built(self, x: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """``x D`` (``x D^T``) with every block built (:meth:`blocks`, never cached), whatever
        the route the forward would take: what merging folds into weights."""
        return apply_blocks(x, self.blocks(x.dtype), self.block_layout, transpose=transpose)

    # ------------------------------------------------------------ inference cache
    def _stamp(self, dtype: torch.dtype) -> tuple:
        """What the blocks are a function of, besides the parameters' identity: the compute
        dtype, inference mode (its tensors cannot be saved for a later backward), the number
        of optimizer steps taken, and each parameter's in-place version counter, storage
        address, device, dtype and shape."""
        head = (self.compute_dtype(dtype), torch.is_inference_mode_enabled(), _OPTIMIZER_STEPS[0])
        return head + tuple((p._version, p.data_ptr(), p.device, p.dtype, p.shape)
                            for p in self.parameters())

    def _cacheable(self) -> bool:
        """Blocks may be kept only when no graph is wanted for them: eval mode, and gradients
        off or no parameter trainable; never inside a ``torch.compile`` trace (which builds
        them as part of its graph) nor for inference-tensor parameters (no version counter)."""
        if self.training or torch.compiler.is_compiling():
            return False
        params = list(self.parameters())
        if any(p.is_inference() for p in params):
            return False
        return not (torch.is_grad_enabled() and any(p.requires_grad for p in params))

    def cached_operands(self, dtype: torch.dtype | None = None):
        """:meth:`operands`, kept between calls in inference (see :meth:`_cacheable`), with
        every block built (:meth:`Compounds.with_blocks
        <qiadapters.circuits.operands.Compounds.with_blocks>`) and, where ``D`` is applied
        whole, assembled (:func:`~qiadapters.circuits.operands.resolve`), until a parameter
        changes.

        The key is the parameters themselves (``is``) and :meth:`_stamp`: an in-place write
        (``p.add_`` under ``no_grad``, ``load_state_dict``'s ``copy_``) bumps ``p._version``;
        any ``torch.optim`` step bumps a process-wide step count (fused optimizers write
        without bumping versions; counted from the first cache fill on); ``.to()`` /
        ``.half()`` / ``.double()`` give new storage and dtype; ``functional_call`` /
        ``load_state_dict(assign=True)`` new parameters.  Writes through ``p.data`` bypass
        the version counter: call :meth:`clear_block_cache` after them.  The cache is a plain
        attribute: never saved, pickled or deep-copied.
        """
        if not self._cacheable():
            return self.operands(dtype)
        _count_optimizer_steps()
        params, stamp = tuple(self.parameters()), self._stamp(dtype)
        hit = self.__dict__.get("_block_cache")
        if hit is not None and hit[1] == stamp and all(a is b for a, b in zip(hit[0], params)):
            return hit[2]
        built = self.operands(dtype)
        lay, device_type = self.block_layout, self._device_type()
        if isinstance(built, Compounds):
            built = built.with_blocks()
            route = plan_route(lay, 0, device_type, lay.orders)
        else:
            route = plan_route(lay, 0, device_type, modewise=[False] * len(lay.orders))
        if route.whole:  # kept assembled: no per-call assembly
            built = resolve(built, lay, 0, device_type, route)
        self.__dict__["_block_cache"] = (params, stamp, built)
        return built

    def _device_type(self) -> str:
        return next(self.parameters()).device.type

    def clear_block_cache(self) -> None:
        """Forget the blocks kept by :meth:`cached_operands` (rebuilt on the next call)."""
        self.__dict__.pop("_block_cache", None)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_block_cache", None)
        return state

    def dense(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The dense ``d x d`` matrix ``D`` (tests and inspection only)."""
        return dense(self.blocks(dtype), self.block_layout)

    def extra_repr(self) -> str:
        lay = self.block_layout
        return (f"parametrization={self.name!r}, n={lay.n}, orders={lay.orders}, "
                f"blocks={lay.blocks}, block_size={lay.block_size}, pad={lay.pad}, "
                f"tail={lay.tail}, dim={lay.dim}, layout={self.layout!r}, gate={self.gate!r}, "
                f"share_blocks={self.share_blocks}, params={self.n_params}")


#: A skew parametrization holds the dense map from its angles to ``vec(S)``
#: (:func:`skew_map`, ``n(n-1)/2 x n^2`` entries) while it has at most this many entries
#: (``n <= 16``), and builds ``S`` by scattering the angles above it.
SKEW_MAP_MAX_ENTRIES = 1 << 15


def skew_map(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``E: (n(n-1)/2, n^2)`` with ``vec(S) = w E`` for the skew ``S`` whose strict upper
    triangle, row by row, is ``w``: ``E[p, i n + j] = 1`` and ``E[p, j n + i] = -1`` for the
    ``p``-th pair ``i < j``."""
    rows, cols = torch.triu_indices(n, n, 1)
    E = torch.zeros(rows.numel(), n * n, dtype=dtype)
    p = torch.arange(rows.numel())
    E[p, rows * n + cols] = 1
    E[p, cols * n + rows] = -1
    return E


class SkewParametrization(Parametrization):
    """A skew-symmetric ``S`` per block from its strict upper triangle (zero init), mapped to
    an orthogonal ``Q`` by :meth:`orthogonal`; blocks are the compounds ``C_k(Q)``.

    Small blocks (:data:`SKEW_MAP_MAX_ENTRIES`) hold :func:`skew_map` and the identity as
    non-persistent buffers, so that ``S`` (and ``I + S``) is one matrix product of the angles
    (one kernel each way) instead of a scatter into zeros and a difference with its
    transpose."""

    def __init__(self, block_layout: BlockLayout, **options):
        super().__init__(block_layout, **options)
        n = block_layout.n
        self.weight = nn.Parameter(torch.zeros(self.copies, n * (n - 1) // 2))
        self.register_buffer("triu", torch.triu_indices(n, n, 1), persistent=False)
        if n * n * (n * (n - 1) // 2) <= SKEW_MAP_MAX_ENTRIES:
            dtype = self.weight.dtype
            self.register_buffer("skew_map", skew_map(n, dtype), persistent=False)
            self.register_buffer("eye", torch.eye(n, dtype=dtype), persistent=False)
        # the compound routes' index tables, held (not looked up) so that a first forward
        # inside torch.compile(fullgraph=True) finds them, on whatever device the adapter is
        self.compound_tables = TableBuffers()
        hold_compound_tables(self.compound_tables, n, block_layout.orders)
        for k in block_layout.orders:  # the mode-wise route's tables, held for the same reason
            if 2 <= k < n:
                self.compound_tables.hold(f"m{k}", cache.tables(mode_tables, n, k))

    @classmethod
    def block_params(cls, n, layout="pyramid"):
        return n * (n - 1) // 2

    def skew(self, dtype: torch.dtype, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``S: (c, n, n)`` with ``S[i, j] = weight[(i, j)]`` for ``i < j``, from ``weight:
        (c, n(n-1)/2)`` (default: this module's own, ``c = copies``)."""
        n = self.block_layout.n
        w = (self.weight if weight is None else weight).to(dtype)
        if hasattr(self, "skew_map"):
            with without_autocast(w):  # the angles exactly, not rounded to half precision
                return (w @ self.skew_map.to(dtype)).unflatten(-1, (n, n))
        upper = w.new_zeros(w.shape[0], n, n)
        rows = torch.arange(w.shape[0], device=w.device)[:, None]
        upper = upper.index_put((rows, self.triu[0], self.triu[1]), w)
        return upper - upper.transpose(-1, -2)

    def orthogonal(self, dtype: torch.dtype | None = None,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
        """The weight-1 blocks ``Q: (c, n, n)`` of ``weight`` (default: this module's own,
        ``c = copies``; another's stacked with it for a batched build)."""
        dtype = self.compute_dtype(dtype)
        return self.orthogonal_of_skew(self.skew(dtype, weight)).to(dtype)

    @staticmethod
    def orthogonal_of_skew(S: torch.Tensor) -> torch.Tensor:
        """The map skew ``S: (c, n, n)`` -> orthogonal ``Q: (c, n, n)``."""
        raise NotImplementedError("a skew parametrization must implement orthogonal_of_skew()")

    def operands(self, dtype: torch.dtype | None = None, Q: torch.Tensor | None = None,
                 built: tuple | None = None) -> Compounds:
        """The blocks ``C_k(Q)`` as :class:`~qiadapters.circuits.operands.Compounds` of
        ``Q: (copies, n, n)`` (built only for the orders the block route applies).  ``Q``
        and some orders' ``built`` blocks may come from a batched build."""
        lay, holder = self.block_layout, self.compound_tables
        modes = {int(g[1:]): holder.tables(g) for g in holder.groups if g[0] == "m"}
        if Q is None:
            Q = self.orthogonal(dtype)
        return Compounds(Q, lay.orders, lay.blocks, held_compound_tables(holder), modes, built)

    def blocks(self, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        return self.operands(dtype).build()


class Cayley(SkewParametrization):
    r"""Cayley transform (the paper's choice): :math:`Q = (I - S)(I + S)^{-1}`.

    ``I + S`` is always invertible for skew ``S`` (its eigenvalues are ``1 + i lambda``), so
    ``Q`` is orthogonal with ``det Q = 1`` for every parameter value; ``S = 0`` gives ``Q = I``
    and the map is a local diffeomorphism there (``dQ = -2 dS``), so every direction of
    ``so(n)`` has a gradient at the identity.  Parameters: ``r * n(n-1)/2``.
    """

    name = "cayley"

    def orthogonal(self, dtype: torch.dtype | None = None,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
        """With the small blocks' buffers, ``Q = 2 (I + S)^{-1} - I`` (the same ``Q``:
        ``I - S = 2I - (I + S)``), where ``(I + S)^{-1} = ((I - S)^{-1})^T``: ``I - S`` is one
        product-and-add of the angles, then a solve against ``2I`` (whose column-major
        result, transposed, is a row-major ``2 (I + S)^{-1}``) and a difference -- four
        kernels forward where building ``S`` and both factors takes eight; at ``S = 0`` it is
        ``I`` exactly."""
        if not hasattr(self, "skew_map"):
            return super().orthogonal(dtype, weight)
        dtype = self.compute_dtype(dtype)
        n = self.block_layout.n
        w = (self.weight if weight is None else weight).to(dtype)
        eye = self.eye.to(dtype)
        with without_autocast(w):
            minus = torch.addmm(eye.flatten(), w, self.skew_map.to(dtype), alpha=-1)
            minus = minus.unflatten(-1, (n, n))  # I - S = (I + S)^T
            X = torch.linalg.solve_ex(minus, (2 * eye).expand_as(minus), check_errors=False)[0]
            return X.mT - eye

    @staticmethod
    def orthogonal_of_skew(S: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
        # (I + S)^{-1} (I - S) equals (I - S)(I + S)^{-1}: the two factors commute.
        # I + S is never singular (eigenvalues 1 + i lambda): skip the per-call error check.
        return torch.linalg.solve_ex(eye + S, eye - S, check_errors=False)[0]


class Expm(SkewParametrization):
    r"""Matrix exponential: :math:`Q = \exp(S)`.

    The weight-k compound of :math:`\exp(S)` is the exponential of the fermionic hopping
    Hamiltonian :math:`H = \sum_{i<j} S_{ij} (a_i^\dagger a_j - a_j^\dagger a_i)` restricted
    to the weight-k sector, i.e. a continuous-time FBS circuit with hopping amplitudes ``S``.
    Surjective onto ``SO(n)``; parameters ``r * n(n-1)/2``; ``S = 0`` gives ``Q = I``.
    """

    name = "expm"

    @staticmethod
    def orthogonal_of_skew(S: torch.Tensor) -> torch.Tensor:
        # exp(S) in float64 whatever the compute dtype: at large |S| (aggressive learning
        # rates) the float32 series leaves Q orthogonal only to ~2e-5; the blocks are small
        return torch.linalg.matrix_exp(S.double())


class CircuitPair(Parametrization):
    r"""A layout's RBS/FBS circuit as a mirrored pair: :math:`U = V(a) V(b)^T`.

    The weight-k block is ``V_k(a) V_k(b)^T`` with ``V_k`` the circuit's exact weight-k block
    (:meth:`~qiadapters.Circuit.hamming_block`), so it is orthogonal for any gate and
    connectivity (and equals ``C_k(U)`` whenever the circuit is compound-exact: FBS gates, or
    nearest-neighbour RBS gates).

    Why a pair: at all-zero angles a single circuit ``V(theta)`` is at a singular point --
    only the ``n-1`` nearest-neighbour rotation directions have a gradient there.  Starting
    from random ``a = b`` gives ``U = I`` exactly while the tangent map is generic, so the
    training starts at the identity without the singularity.  Parameters:
    ``2 * r * n_params(layout)``.
    """

    name = "circuit"

    def __init__(self, block_layout: BlockLayout, **options):
        super().__init__(block_layout, **options)
        self.circuit = Circuit.from_layout(self.layout, block_layout.n, self.gate)
        init = (torch.rand(self.copies, self.circuit.n_params) * 2 - 1) * math.pi
        self.theta = nn.Parameter(init.clone())
        self.theta_mirror = nn.Parameter(init.clone())
        # Both halves of the pair in one batch.  A submodule of index buffers only
        # (non-persistent): it follows .to(device) and deepcopy and adds nothing to state_dict.
        self.op = self.circuit.compile(orders=block_layout.orders, blocks=2 * self.copies)

    @classmethod
    def block_params(cls, n, layout="pyramid"):
        return 2 * gate_count(layout, n)

    def blocks(self, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        theta = torch.cat([self.theta, self.theta_mirror]).to(self.compute_dtype(dtype))
        c = self.copies
        return [self._per_block(V[:c] @ V[c:].transpose(-1, -2))
                for V in self.op.hamming_blocks(theta)]


#: Registry of parametrizations by name.
PARAMETRIZATIONS: dict[str, type[Parametrization]] = {
    "cayley": Cayley,
    "expm": Expm,
    "circuit": CircuitPair,
}
