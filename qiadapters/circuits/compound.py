r"""Compound matrices.

The k-th compound of an ``n x n`` matrix ``U`` is the ``C(n,k) x C(n,k)`` matrix of its
k x k minors, rows and columns indexed by k-subsets in lexicographic order:

.. math:: C_k(U)_{I,J} = \det U_{I,J}.

``C_0(U) = [1]``, ``C_1(U) = U``, ``C_n(U) = [det U]``; Cauchy-Binet gives
``C_k(AB) = C_k(A) C_k(B)``, so the compound of an orthogonal matrix is orthogonal.  For a
circuit whose weight-k block obeys the compound identity (FBS gates, or nearest-neighbour RBS
gates) ``block_k = C_k(block_1)``.

Routes (all exact, all differentiable, batched over leading dims):

* ``k = 2``: every 2x2 minor ``U[a,c] U[b,d] - U[a,d] U[b,c]`` of the row pairs: for small
  problems from four gathers of the pairs' columns and rows (:class:`PairMinors`, keeping
  the four for the backward while they are small), for large ones (many blocks, or large
  ``n``) written row pair by row pair straight into the output (:class:`PairMinorsByRow`, no
  intermediate of the output's size), and on an accelerator from one gather of the
  flattened ``U`` (:class:`PairMinorsFlat`: the fewest kernel launches); which one is chosen
  per device by :func:`pair_route`.
* ``3 <= k < n``: Laplace expansion along the first row of each row subset
  ``I = (a, I')``: ``det U_{I,J} = sum_j (-1)^j U[a, J_j] det U_{I', J - J_j}``, i.e. ``k``
  gathered products of ``U`` and the (k-1)-th compound, all ``k`` at once in one autograd
  node (:class:`LaplaceStep`, :func:`compound_laplace`): ``O(k)`` passes over the output,
  no ``n^k`` intermediate.
* ``k = n``: ``det``.  :func:`compound_det` (batched ``torch.linalg.det`` of all gathered
  minors) is a second independent route for the tests.
* :func:`compound_by_minors`: the slow, obviously correct reference (a Python loop over
  minors), used by the tests.
"""
from __future__ import annotations

from itertools import combinations

import torch

from .. import bounds, checks
from . import cache, kernels
from .basis import basis_position, hamming_basis


#: Outputs of :func:`take_columns` from this many entries on gather through the flattened
#: last two axes; smaller ones use ``index_select`` on the last axis directly (building the
#: flat index costs more than it saves there).
FLAT_TAKE_MIN_ENTRIES = 32_768


def take_columns(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[..., idx]``: the columns ``idx`` of ``t: (..., rows, cols)`` -> ``(..., rows,
    len(idx))``.  From :data:`FLAT_TAKE_MIN_ENTRIES` output entries on, one ``index_select``
    over the flattened last two axes, which the CPU runs much faster than an ``index_select``
    along the last axis or advanced indexing (timings: ``benchmarks/speed/notes.md``, "Column
    gathers through the flattened matrix")."""
    rows, cols = t.shape[-2], t.shape[-1]
    lead = t.shape[:-2]
    if t.numel() // max(cols, 1) * idx.numel() < FLAT_TAKE_MIN_ENTRIES:
        return t.index_select(-1, idx)
    flat = (torch.arange(rows, device=idx.device)[:, None] * cols + idx).reshape(-1)
    return t.reshape(*lead, rows * cols).index_select(-1, flat).view(*lead, rows, idx.numel())


class PairMinors(torch.autograd.Function):
    """All 2x2 minors, ``out[..., x, y] = U[a,c] U[b,d] - U[a,d] U[b,c]`` for the pairs
    ``x = (a, b)``, ``y = (c, d)`` (``first`` / ``second``: the pairs' first and second
    elements, ``(C(n,2),)``), from gathers of ``U: (..., n, n)``: the columns ``X = U[:, c]``,
    ``Y = U[:, d]`` (``(..., n, C(n,2))``), then ``X[a] * Y[b] - Y[a] * X[b]``, one row gather
    each (gathering columns first keeps every large gather a copy of whole rows).

    The backward scatter-adds over the rows ``dX[a] += G * Y[b]``, ``dX[b] -= G * Y[a]``,
    ``dY[b] += G * X[a]``, ``dY[a] -= G * X[b]``, then scatters ``dX``, ``dY`` back to the
    columns of ``dU``.  The four gathered operands ``X[a], Y[b], Y[a], X[b]`` are saved from the
    forward while they take at most :data:`SAVED_OPERANDS_MAX_BYTES` (the backward then runs
    no gather: 13 ops instead of 19); larger ones, and a backward that builds a graph
    (``create_graph=True``: differentiable twice), gather them again from ``U``.  Chosen over
    reading the minors off each row pair's ``n x n`` outer product, which was slower on CPU
    (``benchmarks/speed/notes.md``, "Measurements behind the code's constants"), and over one
    ``(2 C(n,2))^2`` gather of all four operands as quadrants, which launches fewer ops but
    whose quadrant-strided products and scatters were slower on CPU.
    """

    @staticmethod
    def forward(ctx, U, first, second):
        Xa, Yb, Ya, Xb = PairMinors.operands(U, first, second)
        keep = 4 * Xa.numel() * Xa.element_size() <= SAVED_OPERANDS_MAX_BYTES
        ctx.save_for_backward(U, first, second, *((Xa, Yb, Ya, Xb) if keep else ()))
        return (Xa * Yb).sub_(Ya * Xb)

    @staticmethod
    def operands(U, first, second):
        """``X[a], Y[b], Y[a], X[b]``: ``(..., C(n,2), C(n,2))`` each."""
        X, Y = take_columns(U, first), take_columns(U, second)
        return (X.index_select(-2, first), Y.index_select(-2, second),
                Y.index_select(-2, first), X.index_select(-2, second))

    @staticmethod
    def backward(ctx, grad):
        U, first, second, *kept = ctx.saved_tensors
        if not kept or torch.is_grad_enabled():  # differentiable twice: gathered from U
            kept = PairMinors.operands(U, first, second)
        Xa, Yb, Ya, Xb = kept
        dX = U.new_zeros(*U.shape[:-1], first.shape[0])
        dY = torch.zeros_like(dX)
        dX.index_add_(-2, first, grad * Yb)
        dX.index_add_(-2, second, grad * Ya, alpha=-1)
        dY.index_add_(-2, second, grad * Xa)
        dY.index_add_(-2, first, grad * Xb, alpha=-1)
        dU = torch.zeros_like(U)
        dU.index_add_(-1, first, dX)
        dU.index_add_(-1, second, dY)
        return dU, None, None


def pair_minors(U: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """All 2x2 minors of ``U: (..., n, n)`` by :class:`PairMinors`: ``(..., C(n,2), C(n,2))``."""
    return PairMinors.apply(U, first, second)


class PairMinorsFlat(torch.autograd.Function):
    r"""The same minors as :class:`PairMinors` from one gather of the flattened ``U``: with
    ``flat`` (:func:`pair_tables`, ``(4 C(n,2)^2,)``) the positions of ``U[a,c]``,
    ``U[b,d]``, ``U[a,d]``, ``U[b,c]`` in ``U``'s ``n^2`` entries for every pair of pairs,

    .. math:: G = \mathrm{vec}(U)[\,\text{flat}\,] = (G_0, G_1, G_2, G_3), \qquad
              C_2(U) = G_0 G_1 - G_2 G_3

    (``G: (..., 4, m, m)``, ``m = C(n,2)``, products entrywise): a gather, a product and a
    fused multiply-subtract.  Backward, with ``dC`` the output's gradient: ``dG = (dC\,G_1,
    dC\,G_0, -dC\,G_3, -dC\,G_2)`` -- the quadrants of ``G`` swapped in pairs (one
    ``flip``) times ``dC`` (one product) -- scattered back to ``vec(U)`` by two
    ``index_add_`` into one zero buffer (the second with ``alpha=-1``): 3 ops forward and 5
    backward, against 9 and 13 for :class:`PairMinors`.  The route for accelerators, where a
    step of small blocks is bound by kernel launches; on a CPU its scatter of ``4 m^2``
    entries onto ``n^2`` runs serially and is slower than :class:`PairMinors`' row and
    column scatters (:func:`pair_route`).  ``G`` is saved while it takes at most
    :data:`SAVED_OPERANDS_MAX_BYTES` and gathered again above it, and in a backward that
    builds a graph (differentiable twice).
    """

    @staticmethod
    def forward(ctx, U, flat):
        G = PairMinorsFlat.gathered(U, flat)
        keep = G.numel() * G.element_size() <= SAVED_OPERANDS_MAX_BYTES
        ctx.save_for_backward(U, flat, *((G,) if keep else ()))
        return torch.addcmul(G[..., 0, :, :] * G[..., 1, :, :], G[..., 2, :, :],
                             G[..., 3, :, :], value=-1)

    @staticmethod
    def gathered(U, flat):
        """``G: (..., 4, m, m)`` of ``U: (..., n, n)``."""
        n = U.shape[-1]
        m = n * (n - 1) // 2
        return U.flatten(-2).index_select(-1, flat).unflatten(-1, (4, m, m))

    @staticmethod
    def backward(ctx, grad):
        U, flat, *kept = ctx.saved_tensors
        G = PairMinorsFlat.gathered(U, flat) if not kept or torch.is_grad_enabled() else kept[0]
        # (dC G1, dC G0 | dC G3, dC G2): the quadrants swapped within each half
        dG = (G.unflatten(-3, (2, 2)).flip(-3) * grad[..., None, None, :, :]).flatten(-4)
        half = dG.shape[-1] // 2
        dU = U.new_zeros(*U.shape[:-2], U.shape[-1] ** 2)
        dU.index_add_(-1, flat[:half], dG[..., :half])
        dU.index_add_(-1, flat[half:], dG[..., half:], alpha=-1)
        return dU.unflatten(-1, U.shape[-2:]), None


class PairMinorsByRow(torch.autograd.Function):
    """The same minors as :class:`PairMinors`, written row pair by row pair into the output.

    With the pairs' columns gathered, ``X = U[:, c]`` and ``Y = U[:, d]`` (``(..., n,
    C(n,2))``), the row pairs ``(a, b > a)`` are contiguous in lexicographic order, so the
    output's rows for the first row ``a`` are one slab, ``X[a] Y[a+1:] - Y[a] X[a+1:]``: two
    in-place products per ``a`` straight into the output, each reading rows of the small
    ``X``, ``Y``.  The backward runs over the same slabs (``dX[a] += sum_b G Y[b]``,
    ``dY[a+1:] += G X[a]`` and their mirror images), and only ``U`` is saved.  One
    pass over the output each way where :class:`PairMinors` makes a dozen, for ``O(n)`` kernel
    launches: on CPU the faster route for many blocks or large ``n``, the slower one for a few
    small blocks (:func:`pair_route`).
    """

    @staticmethod
    def forward(ctx, U, first, second):
        n = U.shape[-1]
        X, Y = take_columns(U, first), take_columns(U, second)
        ctx.save_for_backward(U, first, second)
        out = X.new_empty(*X.shape[:-2], X.shape[-1], X.shape[-1])
        start = 0
        for a in range(n - 1):  # rows (a, a+1) .. (a, n-1)
            slab = out[..., start:start + n - 1 - a, :]
            torch.mul(Y[..., a + 1:, :], X[..., a:a + 1, :], out=slab)
            slab.addcmul_(X[..., a + 1:, :], Y[..., a:a + 1, :], value=-1)
            start += n - 1 - a
        return out

    @staticmethod
    def backward(ctx, grad):
        U, first, second = ctx.saved_tensors  # X, Y gathered again: differentiable twice
        n = U.shape[-1]
        X, Y = take_columns(U, first), take_columns(U, second)
        dX, dY = torch.zeros_like(X), torch.zeros_like(Y)
        start = 0
        for a in range(n - 1):  # out_(a,b) = X_a Y_b - Y_a X_b, b > a
            g = grad[..., start:start + n - 1 - a, :]
            dX[..., a, :] += (g * Y[..., a + 1:, :]).sum(-2)
            dY[..., a, :] -= (g * X[..., a + 1:, :]).sum(-2)
            dY[..., a + 1:, :].addcmul_(g, X[..., a:a + 1, :])
            dX[..., a + 1:, :].addcmul_(g, Y[..., a:a + 1, :], value=-1)
            start += n - 1 - a
        dU = X.new_zeros(*X.shape[:-1], n)
        dU.index_add_(-1, first, dX)
        dU.index_add_(-1, second, dY)
        return dU, None, None


#: :class:`PairMinors` keeps its four gathered operands for the backward up to this many
#: bytes (all blocks together), and gathers them again in the backward above it: memory
#: against six gathers (bounded so that the accelerator route, which gathers up to
#: :data:`VECTORISED_MAX_BYTES`, does not keep a gigabyte between forward and backward).
SAVED_OPERANDS_MAX_BYTES = 1 << 26

#: On CPU, order-2 compounds of at least this many output entries (all blocks together) are
#: written row pair by row pair (:class:`PairMinorsByRow`): the crossover of the two routes'
#: forward + backward times on CPU lies between 33k entries (3 blocks at n = 15, where the
#: gathers of :class:`PairMinors` win) and 397k (36 blocks, where the row slabs win); timings
#: in ``benchmarks/speed/notes.md``, "Measurements behind the code's constants".
ROW_LOOP_MIN_ENTRIES = 150_000
#: On an accelerator, the most bytes the gathered operands of :class:`PairMinors` may take;
#: above it the row route is used (see :func:`pair_route`).
VECTORISED_MAX_BYTES = 1 << 30


def pair_route(U: torch.Tensor) -> str:
    """How the second compound of ``U: (..., n, n)`` is built: ``"rows"``
    (:class:`PairMinorsByRow`), ``"gathers"`` (:class:`PairMinors`) or ``"flat"``
    (:class:`PairMinorsFlat`).  A choice on shapes and the device type only (no data, no
    sync).

    * CPU (and ``meta``): the row route from :data:`ROW_LOOP_MIN_ENTRIES` output entries on
      (the crossover measured on CPU), the gathers below.
    * any other device (CUDA, ...): one flat gather -- 3 kernels forward and 5 backward,
      where the row route launches ``2 (n - 1)`` and ``4 (n - 1)`` -- for ``n <=``
      :data:`~qiadapters.bounds.FLAT_PAIR_MAX_N`, the gathers above; the row route when
      the four ``(..., C(n,2), C(n,2))`` operands would exceed
      :data:`VECTORISED_MAX_BYTES`.
    """
    n = U.shape[-1]
    m = n * (n - 1) // 2
    entries = (U.numel() // max(n * n, 1)) * m * m
    if U.device.type in ("cpu", "meta"):
        return "rows" if entries >= ROW_LOOP_MIN_ENTRIES else "gathers"
    if 4 * entries * U.element_size() > VECTORISED_MAX_BYTES:
        return "rows"
    return "flat" if n <= bounds.FLAT_PAIR_MAX_N else "gathers"


def _check_square(U: torch.Tensor, arg: str = "U") -> int:
    if not isinstance(U, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor of shape (..., n, n), got {type(U).__name__}")
    if not U.is_floating_point():
        raise TypeError(f"{arg} has dtype {U.dtype}; it must be a floating dtype")
    if U.dim() < 2 or U.shape[-1] != U.shape[-2]:
        raise ValueError(f"{arg} has shape {tuple(U.shape)}; expected a (batch of) square "
                         f"matrices (..., n, n)")
    return U.shape[-1]


def pair_tables(n: int) -> tuple[torch.Tensor, ...]:
    """Order-2 route tables (builder): the pairs ``(a, b)``, ``a < b``, in lexicographic order
    as ``first: (C(n,2),)`` = the a's and ``second`` = the b's; and while ``n <=``
    :data:`~qiadapters.bounds.FLAT_PAIR_MAX_N`, ``flat: (4 C(n,2)^2,)``: for the pairs
    ``x = (a, b)``, ``y = (c, d)`` the positions ``a n + c``, ``b n + d``, ``a n + d``,
    ``b n + c`` in ``U``'s flattened entries, four ``(x, y)``-major slabs
    (:class:`PairMinorsFlat`)."""
    pairs = torch.tensor(hamming_basis(n, 2), dtype=torch.long).reshape(-1, 2)
    first, second = pairs[:, 0].contiguous(), pairs[:, 1].contiguous()
    if n > bounds.FLAT_PAIR_MAX_N:
        return first, second
    a, b, c, d = first[:, None], second[:, None], first[None, :], second[None, :]
    flat = torch.stack([a * n + c, b * n + d, a * n + d, b * n + c]).reshape(-1)
    return first, second, flat


def subset_table(n: int, k: int) -> tuple[torch.Tensor]:
    """The k-subsets of ``range(n)`` in lexicographic order, ``(C(n,k), k)`` (builder)."""
    return (torch.tensor(hamming_basis(n, k), dtype=torch.long).reshape(-1, k),)


def laplace_tables(n: int, k: int) -> tuple[torch.Tensor, ...]:
    """Order-k Laplace route tables (builder), per k-subset ``I = (a, I')`` in order:
    ``first: (m,)`` = a, ``rest: (m,)`` the row of ``I'`` in the (k-1)-subsets, and per
    position ``j < k``: ``cols: (k, m)`` = ``I_j`` and ``minus: (k, m)`` the row of ``I - I_j``."""
    subsets, lower = hamming_basis(n, k), basis_position(n, k - 1)
    first = torch.tensor([s[0] for s in subsets], dtype=torch.long)
    rest = torch.tensor([lower[s[1:]] for s in subsets], dtype=torch.long)
    cols = torch.tensor([[s[j] for s in subsets] for j in range(k)], dtype=torch.long)
    minus = torch.tensor([[lower[s[:j] + s[j + 1:]] for s in subsets] for j in range(k)],
                         dtype=torch.long)
    return first, rest, cols, minus


def compound_tables(n: int, k: int, device=None) -> tuple[torch.Tensor, ...]:
    """The order-k route's index tables on ``device`` (``2 <= k < n``), from the one cache."""
    if k == 2:
        return cache.tables(pair_tables, n, device=device)
    return cache.tables(laplace_tables, n, k, device=device)


def hold_compound_tables(holder: "cache.TableBuffers", n: int, orders, device=None) -> None:
    """Register in ``holder`` the route tables the compounds of ``orders`` read (the Laplace
    route at order k reads every order below it, down to 2), as groups ``"c2"``, ``"c3"``..."""
    top = max([k for k in orders if 2 <= k < n], default=1)
    for k in range(2, top + 1):
        holder.hold(f"c{k}", compound_tables(n, k, device))


def held_compound_tables(holder: "cache.TableBuffers") -> dict[int, tuple[torch.Tensor, ...]]:
    """The ``tables`` argument of :func:`compounds` from a holder filled by
    :func:`hold_compound_tables`."""
    return {int(g[1:]): holder.tables(g) for g in holder.groups if g[0] == "c"}


def _route_tables(U: torch.Tensor, k: int, tables):
    """``tables[k]`` if the caller holds the tables (a compiled op's buffers), else the cache's."""
    return tables[k] if tables is not None else compound_tables(U.shape[-1], k, U.device)


def compound_pairs(U: torch.Tensor, tables=None) -> torch.Tensor:
    """Second compound: all 2x2 minors (:class:`PairMinors`, :class:`PairMinorsByRow` or
    :class:`PairMinorsFlat`, chosen by :func:`pair_route`).

    ``tables``: optional ``{2: pair tables}`` (default: from the cache)."""
    first, second, *flat = _route_tables(U, 2, tables)
    if kernels.use_kernels(U, dtypes=kernels.PAIR_DTYPES) and kernels.pair_minors_supported(U):
        return kernels.pair_minors(U, first, second)  # Triton, on a GPU (kernels/__init__.py)
    if kernels.use_cpu_kernel(U):
        return kernels.cpu_pair_minors(U, first, second)  # compiled, on CPU, where asked for
    route = pair_route(U)
    if route == "rows":
        return PairMinorsByRow.apply(U, first, second)
    if route == "flat":
        return PairMinorsFlat.apply(U, *flat)
    return pair_minors(U, first, second)


class LaplaceStep(torch.autograd.Function):
    r"""``C_k(U)`` from ``U: (..., n, n)`` and ``L = C_{k-1}(U): (..., C(n,k-1), C(n,k-1))``
    (``3 <= k < n``) by the Laplace expansion along the first row of each row subset
    ``I = (a, I')``, all ``k`` terms in one node:

    .. math:: C_k(U)_{I,J} = \sum_{j<k} A_{I,(j,J)} M_{I,(j,J)}, \qquad
              A_{I,(j,J)} = U_{a, J_j}, \quad M_{I,(j,J)} = (-1)^j L_{I', J \setminus J_j}.

    ``A`` and ``M`` (``(..., m, k m)``, ``m = C(n,k)``) are two gathers each from the tables
    of :func:`laplace_tables` (``first``, ``rest``: ``(m,)``; ``cols``, ``minus``: ``(k, m)``,
    read flattened as ``k m`` columns): the columns of the small ``U`` and ``L`` first, then
    whole rows.  The output is one product and one sum over ``j``.

    Backward, with ``G`` the output's gradient broadcast over ``j``: ``dA = G M``,
    ``dM = G A``, each scattered back by rows then columns (``index_add_``), the sign of
    ``M`` applied to ``dM``.  ``A`` and ``M`` are saved from the forward; a backward that
    builds a graph (``create_graph=True``) gathers them again from ``U`` and ``L``, so the
    step is differentiable twice.  About a third of the ops of ``k`` separate gathered
    products (one product, one sum and four gathers each way instead of ``k`` of each).
    """

    @staticmethod
    def forward(ctx, U, lower, first, rest, cols, minus):
        A, M = LaplaceStep.operands(U, lower, first, rest, cols, minus)
        ctx.save_for_backward(U, lower, first, rest, cols, minus, A, M)
        return (A * M).unflatten(-1, cols.shape).sum(-2)

    @staticmethod
    def operands(U, lower, first, rest, cols, minus):
        """``A``, ``M`` (class docstring): ``(..., C(n,k), k C(n,k))`` each."""
        A = U.index_select(-1, cols.reshape(-1)).index_select(-2, first)
        M = lower.index_select(-1, minus.reshape(-1)).index_select(-2, rest)
        M.unflatten(-1, cols.shape)[..., 1::2, :].neg_()  # (-1)^j
        return A, M

    @staticmethod
    def backward(ctx, grad):
        U, lower, first, rest, cols, minus, A, M = ctx.saved_tensors
        if torch.is_grad_enabled():  # a graph of the backward: A, M as functions of U, L
            A, M = LaplaceStep.operands(U, lower, first, rest, cols, minus)
        g = grad.unsqueeze(-2)  # (..., m, 1, m): the same for every j
        dU = dL = None
        if ctx.needs_input_grad[0]:
            dA = (M.unflatten(-1, cols.shape) * g).flatten(-2)
            dU = scatter_rows_columns(U, dA, first, cols.reshape(-1))
        if ctx.needs_input_grad[1]:
            dM = A.unflatten(-1, cols.shape) * g
            dM[..., 1::2, :].neg_()
            dL = scatter_rows_columns(lower, dM.flatten(-2), rest, minus.reshape(-1))
        return dU, dL, None, None, None, None


def scatter_rows_columns(t: torch.Tensor, src: torch.Tensor, rows: torch.Tensor,
                         cols: torch.Tensor) -> torch.Tensor:
    """The adjoint of ``t.index_select(-1, cols).index_select(-2, rows)``: ``src: (...,
    len(rows), len(cols))`` summed into zeros shaped like ``t: (..., p, q)`` at ``[rows[x],
    cols[y]]`` (rows first, into a ``(..., p, len(cols))`` buffer, then columns)."""
    by_rows = t.new_zeros(*src.shape[:-2], t.shape[-2], src.shape[-1]).index_add_(-2, rows, src)
    return t.new_zeros(*src.shape[:-2], *t.shape[-2:]).index_add_(-1, cols, by_rows)


def compound_laplace(U: torch.Tensor, k: int, lower: torch.Tensor | None = None,
                     tables=None) -> torch.Tensor:
    """k-th compound (k >= 3) by Laplace expansion along the first row of each row subset
    (:class:`LaplaceStep`).

    ``lower`` may pass the (k-1)-th compound if already computed; ``tables`` the route tables
    ``{j: compound_tables(n, j)}`` for ``2 <= j <= k`` (default: from the cache).
    """
    first, rest, cols, minus = _route_tables(U, k, tables)
    if lower is None:
        lower = compound(U, k - 1, tables)
    return LaplaceStep.apply(U, lower, first, rest, cols, minus)


def compound_det(U: torch.Tensor, k: int) -> torch.Tensor:
    """k-th compound by batched determinants of all gathered minors (any k >= 1)."""
    (subsets,) = cache.tables(subset_table, U.shape[-1], k, device=U.device)
    minors = U[..., subsets[:, None, :, None], subsets[None, :, None, :]]
    return torch.linalg.det(minors)


def compound(U: torch.Tensor, k: int, tables=None) -> torch.Tensor:
    """The k-th compound matrix of ``U: (..., n, n)`` -> ``(..., C(n,k), C(n,k))``.

    Any ``k`` in ``0..n``; exact and differentiable; dispatches to the cheapest route
    (see the module docstring).  ``tables``: optional ``{j: compound_tables(n, j)}`` for
    ``2 <= j <= k`` held by the caller (default: read from the cache).
    """
    n = _check_square(U)
    k = checks.integer("k", k, low=0, high=n)
    if k == 0:
        return U.new_ones(*U.shape[:-2], 1, 1)
    if k == 1:
        return U
    if k == n:
        return torch.linalg.det(U)[..., None, None]
    if k == 2:
        return compound_pairs(U, tables)
    return compound_laplace(U, k, tables=tables)


def compounds(U: torch.Tensor, orders, tables=None) -> list[torch.Tensor]:
    """``[compound(U, k) for k in orders]``, each order >= 3 reusing the one below it when
    that is computed anyway (orders (1, 2, 3) form the second compound once); ``tables`` as
    for :func:`compound`."""
    n = _check_square(U)
    ks = [checks.integer("orders", k, low=0, high=n) for k in orders]
    done: dict[int, torch.Tensor] = {}
    for k in sorted(set(ks)):
        if 3 <= k < n and k - 1 in done:
            done[k] = compound_laplace(U, k, lower=done[k - 1], tables=tables)
        else:
            done[k] = compound(U, k, tables)
    return [done[k] for k in ks]


def compound_by_minors(U: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: a Python loop over every pair of k-subsets, ``det`` of each minor.

    Slow and obviously correct; for tests only.  ``U: (n, n)`` (unbatched).
    """
    n = _check_square(U)
    subsets = list(combinations(range(n), k))
    out = U.new_empty(len(subsets), len(subsets))
    for a, rows in enumerate(subsets):
        for b, cols in enumerate(subsets):
            out[a, b] = torch.det(U[list(rows)][:, list(cols)]) if k else 1.0
    return out
