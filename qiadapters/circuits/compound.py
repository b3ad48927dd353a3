r"""Compound matrices.

The k-th compound of an ``n x n`` matrix ``U`` is the ``C(n,k) x C(n,k)`` matrix of its
k x k minors, rows and columns indexed by k-subsets in lexicographic order:

.. math:: C_k(U)_{I,J} = \det U_{I,J}.

``C_0(U) = [1]``, ``C_1(U) = U``, ``C_n(U) = [det U]``; Cauchy-Binet gives
``C_k(AB) = C_k(A) C_k(B)``, so the compound of an orthogonal matrix is orthogonal.  For a
circuit whose weight-k block obeys the compound identity (FBS gates, or nearest-neighbour RBS
gates) ``block_k = C_k(block_1)``.

Routes (all exact, all differentiable, batched over leading dims):

* ``k in (2, 3)``: *antisymmetrised outer products*.  For each row subset ``I = (a, b[, c])``
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
        return out.index_copy(-1, index, spread), None, None


def _check_square(U: torch.Tensor, arg: str = "U") -> int:
    if not isinstance(U, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor of shape (..., n, n), got {type(U).__name__}")
    if not U.is_floating_point():
        raise TypeError(f"{arg} has dtype {U.dtype}; it must be a floating dtype")
    if U.dim() < 2 or U.shape[-1] != U.shape[-2]:
        raise ValueError(f"{arg} has shape {tuple(U.shape)}; expected a (batch of) square "
                         f"matrices (..., n, n)")
    return U.shape[-1]


def compound_outer(U: torch.Tensor, k: int) -> torch.Tensor:
    """k-th compound by antisymmetrised outer products of gathered rows (fast for k = 2, 3)."""
    n = U.shape[-1]
    rows = torch.tensor(hamming_basis(n, k), dtype=torch.long, device=U.device).reshape(-1, k)
    index, sign = antisymmetric_index(n, k)
    outer = U.index_select(-2, rows[:, 0])
    for a in range(1, k):  # T_I = U[I_0] ⊗ U[I_1] ⊗ ... flattened to n^k
        outer = (outer.unsqueeze(-1) * U.index_select(-2, rows[:, a]).unsqueeze(-2)).flatten(-2)
    return SignedGather.apply(outer, index.to(U.device), sign.to(device=U.device, dtype=U.dtype))


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
