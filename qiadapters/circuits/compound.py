r"""Compound matrices.

The k-th compound of an ``n x n`` matrix ``U`` is the ``C(n,k) x C(n,k)`` matrix of its
k x k minors, rows and columns indexed by k-subsets in lexicographic order:

.. math:: C_k(U)_{I,J} = \det U_{I,J}.

``C_0(U) = [1]``, ``C_1(U) = U``, ``C_n(U) = [det U]``; Cauchy-Binet gives
``C_k(AB) = C_k(A) C_k(B)``, so the compound of an orthogonal matrix is orthogonal.  For a
circuit whose weight-k block obeys the compound identity (FBS gates, or nearest-neighbour RBS
gates) ``block_k = C_k(block_1)``.

Routes (all exact, all differentiable, batched over leading dims):

* ``k = 2``: :class:`PairMinors`, every 2x2 minor ``U[a,c] U[b,d] - U[a,d] U[b,c]`` read off
  the antisymmetric outer product of the row pair, with a backward that is one batched
  matmul.
* ``k = 3``: *antisymmetrised outer products*.  For each row subset ``I = (a, b[, c])``
  form ``T_I = U[a] ⊗ U[b] [⊗ U[c]]`` (``n^k`` entries) and read every minor as the signed sum
  ``det U_{I,J} = sum_sigma sgn(sigma) T_I[J_sigma]``.  The read is a gather with *unique*
  indices, so its backward is one scatter without accumulation (:class:`SignedGather`)
  instead of autograd's slow accumulate-scatter of fancy indexing.
  Cost ``O(C(n,k) n^k)`` time and memory, i.e. ``k!`` times the output.
* any other ``k``: batched ``torch.linalg.det`` of all gathered minors.
* :func:`compound_by_minors`: the slow, obviously correct reference (a Python loop over
  minors), used by the tests.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations, permutations

import torch

from .. import _checks
from .basis import hamming_basis


def _perm_sign(p) -> int:
    p, sign = list(p), 1
    for i in range(len(p)):
        while p[i] != i:
            j = p[i]
            p[i], p[j] = p[j], p[i]
            sign = -sign
    return sign


@lru_cache(maxsize=None)
def antisymmetric_index(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat positions in ``n^k`` of every permutation of every k-subset, and the signs.

    Returns ``index: (k! * C(n,k),)`` ordered permutation-major and ``sign: (k!,)``; all
    indices are distinct.
    """
    subsets = torch.tensor(hamming_basis(n, k), dtype=torch.long).reshape(-1, k)
    strides = torch.tensor([n ** (k - 1 - a) for a in range(k)], dtype=torch.long)
    perms = list(permutations(range(k)))
    index = torch.cat([(subsets[:, list(p)] * strides).sum(-1) for p in perms])
    sign = torch.tensor([_perm_sign(p) for p in perms], dtype=torch.float64)
    return index, sign


class SignedGather(torch.autograd.Function):
    """``out[..., j] = sum_s sign[s] * x[..., index[s * m + j]]`` for distinct ``index``.

    ``x: (..., N)``, ``index: (S * m,)`` distinct, ``sign: (S,)`` -> ``(..., m)``.  The
    backward scatters ``sign[s] * grad`` back without accumulation (indices are distinct).
    """

    @staticmethod
    def forward(ctx, x, index, sign):
        ctx.save_for_backward(index, sign)
        ctx.size = x.shape[-1]
        gathered = x.index_select(-1, index).unflatten(-1, (sign.numel(), -1))
        return torch.einsum("...sm,s->...m", gathered, sign)

    @staticmethod
    def backward(ctx, grad):
        index, sign = ctx.saved_tensors
        spread = (grad.unsqueeze(-2) * sign[:, None]).flatten(-2)
        out = grad.new_zeros(*grad.shape[:-1], ctx.size)
        return out.index_copy_(-1, index, spread), None, None


class PairMinors(torch.autograd.Function):
    """All 2x2 minors of row pairs: ``out[..., x, y] = A[x,c] B[x,d] - A[x,d] B[x,c]``.

    ``A, B: (..., m, n)`` (rows ``a_x`` and ``b_x`` of the matrix), ``upper: (C(n,2),)`` the
    flat positions ``c*n + d`` (``c < d``) of the column pairs -> ``(..., m, C(n,2))``.
    Forward: the antisymmetric outer product ``K_x = A_x B_x^T - B_x A_x^T`` read at ``upper``.
    Backward is one dense contraction: with ``G_x`` scattered into an antisymmetric ``n x n``
    matrix ``W_x``, ``dA_x = W_x B_x`` and ``dB_x = -W_x A_x`` (a single batched matmul).
    """

    @staticmethod
    def forward(ctx, A, B, upper, lower):
        ctx.save_for_backward(A, B, upper, lower)
        outer = A.unsqueeze(-1) * B.unsqueeze(-2)
        return (outer - outer.transpose(-1, -2)).flatten(-2).index_select(-1, upper)

    @staticmethod
    def backward(ctx, grad):
        A, B, upper, lower = ctx.saved_tensors
        n = A.shape[-1]
        W = grad.new_zeros(*grad.shape[:-1], n * n)
        W.index_copy_(-1, upper, grad)  # in place: no copy of the (..., m, n^2) buffer
        W.index_copy_(-1, lower, grad.neg())
        both = W.unflatten(-1, (n, n)) @ torch.stack([B, -A], -1)
        return both[..., 0], both[..., 1], None, None


class PairMinorsByColumn(torch.autograd.Function):
    """The same minors as :class:`PairMinors`, written column block by column block.

    Pairs ``(c, d)`` with ``d > c`` are contiguous in lexicographic order, so the output's
    slice for the first column ``c`` is ``A[:, c] B[:, c+1:] - B[:, c] A[:, c+1:]``: ``n - 1``
    in-place products straight into the output, and a backward of the same shape.  No
    ``n^2``-wide intermediate: for large ``n`` (where that buffer is many times the output
    and its allocation dominates) this is several times faster; for small ``n`` the
    ``O(n)`` kernel launches make it slower (:data:`COLUMN_LOOP_MIN_N`).
    """

    @staticmethod
    def forward(ctx, A, B):
        ctx.save_for_backward(A, B)
        n = A.shape[-1]
        out = A.new_empty(*A.shape[:-1], n * (n - 1) // 2)
        offset = 0
        for c in range(n - 1):
            piece = out[..., offset:offset + n - 1 - c]
            torch.mul(B[..., c + 1:], A[..., c:c + 1], out=piece)
            piece.addcmul_(A[..., c + 1:], B[..., c:c + 1], value=-1)
            offset += n - 1 - c
        return out

    @staticmethod
    def backward(ctx, grad):
        A, B = ctx.saved_tensors
        n = A.shape[-1]
        dA, dB = torch.zeros_like(A), torch.zeros_like(B)
        offset = 0
        for c in range(n - 1):  # out_(c,d) = A_c B_d - A_d B_c
            g = grad[..., offset:offset + n - 1 - c]
            dA[..., c] += (g * B[..., c + 1:]).sum(-1)
            dB[..., c] -= (g * A[..., c + 1:]).sum(-1)
            dA[..., c + 1:].addcmul_(g, B[..., c:c + 1], value=-1)
            dB[..., c + 1:].addcmul_(g, A[..., c:c + 1])
            offset += n - 1 - c
        return dA, dB


#: From this ``n`` on, order-2 compounds use :class:`PairMinorsByColumn` (measured crossover
#: on CPU: the vectorised form is ~2x faster at n = 8..16, the column form 1.6x at n = 22,
#: 2.6x at n = 44 and 5x at n = 64, forward + backward).
COLUMN_LOOP_MIN_N = 20


def _check_square(U: torch.Tensor, arg: str = "U") -> int:
    if not isinstance(U, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor of shape (..., n, n), got {type(U).__name__}")
    if not U.is_floating_point():
        raise TypeError(f"{arg} has dtype {U.dtype}; it must be a floating dtype")
    if U.dim() < 2 or U.shape[-1] != U.shape[-2]:
        raise ValueError(f"{arg} has shape {tuple(U.shape)}; expected a (batch of) square "
                         f"matrices (..., n, n)")
    return U.shape[-1]


_OUTER_TABLES: dict = {}


@torch.compiler.disable
def _build_outer_tables(n: int, k: int, device: torch.device):
    rows = torch.tensor(hamming_basis(n, k), dtype=torch.long).reshape(-1, k)
    if k == 2:
        extra = (rows[:, 0] * n + rows[:, 1], rows[:, 1] * n + rows[:, 0])
    else:
        extra = antisymmetric_index(n, k)
    _OUTER_TABLES[(n, k, str(device))] = tuple(t.to(device) for t in (rows, *extra))


def _outer_tables(n: int, k: int, device: torch.device):
    """Row subsets ``(C(n,k), k)`` and, for k = 2, the upper/lower flat column positions;
    for k >= 3 the antisymmetric gather index and signs.  Built once per ``(n, k, device)``
    outside any ``torch.compile`` trace and cached in a plain dict (read as constants)."""
    key = (n, k, str(device))
    if key not in _OUTER_TABLES:
        _build_outer_tables(n, k, device)
    return _OUTER_TABLES[key]


def compound_outer(U: torch.Tensor, k: int) -> torch.Tensor:
    """k-th compound by antisymmetrised outer products of gathered rows (fast for k = 2, 3)."""
    n = U.shape[-1]
    if k == 2:
        rows, upper, lower = _outer_tables(n, 2, U.device)
        A, B = U.index_select(-2, rows[:, 0]), U.index_select(-2, rows[:, 1])
        if n >= COLUMN_LOOP_MIN_N:
            return PairMinorsByColumn.apply(A, B)
        return PairMinors.apply(A, B, upper, lower)
    rows, index, sign = _outer_tables(n, k, U.device)
    outer = U.index_select(-2, rows[:, 0])
    for a in range(1, k):  # T_I = U[I_0] ⊗ U[I_1] ⊗ ... flattened to n^k
        outer = (outer.unsqueeze(-1) * U.index_select(-2, rows[:, a]).unsqueeze(-2)).flatten(-2)
    return SignedGather.apply(outer, index, sign.to(U.dtype))


def compound_det(U: torch.Tensor, k: int) -> torch.Tensor:
    """k-th compound by batched determinants of all gathered minors (any k >= 1)."""
    n = U.shape[-1]
    subsets = torch.tensor(hamming_basis(n, k), dtype=torch.long, device=U.device)
    minors = U[..., subsets[:, None, :, None], subsets[None, :, None, :]]
    return torch.linalg.det(minors)


def compound(U: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th compound matrix of ``U: (..., n, n)`` -> ``(..., C(n,k), C(n,k))``.

    Any ``k`` in ``0..n``; exact and differentiable; dispatches to the cheapest route
    (see the module docstring).
    """
    n = _check_square(U)
    k = _checks.integer("k", k, low=0, high=n)
    if k == 0:
        return U.new_ones(*U.shape[:-2], 1, 1)
    if k == 1:
        return U
    if k == n:
        return torch.linalg.det(U)[..., None, None]
    if k <= 3:
        return compound_outer(U, k)
    return compound_det(U, k)


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
