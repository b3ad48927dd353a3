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
  problems from four gathers of the pairs' columns and rows (:class:`PairMinors`, saving only
  ``U`` for the backward), for large ones (many blocks, or large ``n``) written row pair by row
  pair straight into the output (:class:`PairMinorsByRow`, no intermediate of the output's
  size); which one is chosen per device by :func:`row_route`.
* ``3 <= k < n``: Laplace expansion along the first row of each row subset
  ``I = (a, I')``: ``det U_{I,J} = sum_j (-1)^j U[a, J_j] det U_{I', J - J_j}``, i.e. ``k``
  gathered products of ``U`` and the (k-1)-th compound (:func:`compound_laplace`): ``O(k)``
  passes over the output, no ``n^k`` intermediate.
* ``k = n``: ``det``.  :func:`compound_det` (batched ``torch.linalg.det`` of all gathered
  minors) is a second independent route for the tests.
* :func:`compound_by_minors`: the slow, obviously correct reference (a Python loop over
  minors), used by the tests.
"""
from __future__ import annotations

from itertools import combinations

import torch

from .. import checks
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
    along the last axis or advanced indexing (timings: ``benchmarks/notes/speed.md``, "Column
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

    Only ``U`` is saved: the backward gathers again, ``dX[a] += G * Y[b]``, ``dX[b] -= G * Y[a]``,
    ``dY[b] += G * X[a]``, ``dY[a] -= G * X[b]`` (scatter-adds over the rows), then scatters
    ``dX``, ``dY`` back to the columns of ``dU``; the four ``C(n,2) x C(n,2)`` gathers live only
    inside each pass.  Chosen over reading the minors off each row pair's ``n x n`` outer
    product, which was slower on CPU (``benchmarks/notes/speed.md``, "Measurements behind the
    code's constants").
    """

    @staticmethod
    def forward(ctx, U, first, second):
        ctx.save_for_backward(U, first, second)
        X, Y = take_columns(U, first), take_columns(U, second)
        out = X.index_select(-2, first) * Y.index_select(-2, second)
        return out.sub_(Y.index_select(-2, first) * X.index_select(-2, second))

    @staticmethod
    def backward(ctx, grad):
        U, first, second = ctx.saved_tensors
        X, Y = take_columns(U, first), take_columns(U, second)
        dX, dY = torch.zeros_like(X), torch.zeros_like(Y)
        dX.index_add_(-2, first, grad * Y.index_select(-2, second))
        dX.index_add_(-2, second, grad * Y.index_select(-2, first), alpha=-1)
        dY.index_add_(-2, second, grad * X.index_select(-2, first))
        dY.index_add_(-2, first, grad * X.index_select(-2, second), alpha=-1)
        dU = torch.zeros_like(U)
        dU.index_add_(-1, first, dX)
        dU.index_add_(-1, second, dY)
        return dU, None, None


def pair_minors(U: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """All 2x2 minors of ``U: (..., n, n)`` by :class:`PairMinors`: ``(..., C(n,2), C(n,2))``."""
    return PairMinors.apply(U, first, second)


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
    small blocks (:func:`row_route`).
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


#: On CPU, order-2 compounds of at least this many output entries (all blocks together) are
#: written row pair by row pair (:class:`PairMinorsByRow`): the crossover of the two routes'
#: forward + backward times on CPU lies between 33k entries (3 blocks at n = 15, where the
#: gathers of :class:`PairMinors` win) and 397k (36 blocks, where the row slabs win); timings
#: in ``benchmarks/notes/speed.md``, "Measurements behind the code's constants".
ROW_LOOP_MIN_ENTRIES = 150_000
#: On an accelerator, the most bytes the gathered operands of :class:`PairMinors` may take;
#: above it the row route is used (see :func:`row_route`).
VECTORISED_MAX_BYTES = 1 << 30


def row_route(U: torch.Tensor) -> bool:
    """Whether the second compound of ``U: (..., n, n)`` is written row pair by row pair
    (:class:`PairMinorsByRow`) rather than gathered (:class:`PairMinors`).  A choice on
    shapes and the device type only (no data, no sync).

    * CPU (and ``meta``): at least :data:`ROW_LOOP_MIN_ENTRIES` output entries, the
      crossover measured on CPU.
    * any other device (CUDA, ...): the gathers -- a fixed handful of kernels, where the
      row route launches ``2 (n - 1)`` in the forward and ``4 (n - 1)`` in the backward --
      unless their four ``(..., C(n,2), C(n,2))`` operands exceed :data:`VECTORISED_MAX_BYTES`.
    """
    n = U.shape[-1]
    m = n * (n - 1) // 2
    entries = (U.numel() // max(n * n, 1)) * m * m
    if U.device.type in ("cpu", "meta"):
        return entries >= ROW_LOOP_MIN_ENTRIES
    return 4 * entries * U.element_size() > VECTORISED_MAX_BYTES


def _check_square(U: torch.Tensor, arg: str = "U") -> int:
    if not isinstance(U, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor of shape (..., n, n), got {type(U).__name__}")
    if not U.is_floating_point():
        raise TypeError(f"{arg} has dtype {U.dtype}; it must be a floating dtype")
    if U.dim() < 2 or U.shape[-1] != U.shape[-2]:
        raise ValueError(f"{arg} has shape {tuple(U.shape)}; expected a (batch of) square "
                         f"matrices (..., n, n)")
    return U.shape[-1]


def pair_tables(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Order-2 route tables (builder): the pairs ``(a, b)``, ``a < b``, in lexicographic order
    as ``first: (C(n,2),)`` = the a's and ``second`` = the b's."""
    pairs = torch.tensor(hamming_basis(n, 2), dtype=torch.long).reshape(-1, 2)
    return pairs[:, 0].contiguous(), pairs[:, 1].contiguous()


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
    """Second compound: all 2x2 minors (:class:`PairMinors` / :class:`PairMinorsByRow`,
    chosen by :func:`row_route`).

    ``tables``: optional ``{2: pair tables}`` (default: from the cache)."""
    first, second = _route_tables(U, 2, tables)
    if kernels.use_kernels(U, dtypes=kernels.PAIR_DTYPES) and kernels.pair_minors_supported(U):
        return kernels.pair_minors(U, first, second)  # Triton, on a GPU (kernels/__init__.py)
    if row_route(U):
        return PairMinorsByRow.apply(U, first, second)
    return pair_minors(U, first, second)


def compound_laplace(U: torch.Tensor, k: int, lower: torch.Tensor | None = None,
                     tables=None) -> torch.Tensor:
    """k-th compound (k >= 3) by Laplace expansion along the first row of each row subset.

    ``lower`` may pass the (k-1)-th compound if already computed; ``tables`` the route tables
    ``{j: compound_tables(n, j)}`` for ``2 <= j <= k`` (default: from the cache).
    """
    first, rest, cols, minus = _route_tables(U, k, tables)
    if lower is None:
        lower = compound(U, k - 1, tables)
    minors = lower.index_select(-2, rest)           # (..., C(n,k), C(n,k-1)): rows I'
    lead = U.index_select(-2, first)                # (..., C(n,k), n): rows a
    out = take_columns(lead, cols[0]) * take_columns(minors, minus[0])
    for j in range(1, k):
        term = take_columns(lead, cols[j]) * take_columns(minors, minus[j])
        out = out - term if j % 2 else out + term
    return out


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
