r"""Compound matrices applied mode by mode, without building them.

The k-th compound ``C_k(U)`` of an ``n x n`` matrix is ``U`` acting on the antisymmetric
k-tensors (:mod:`.compound`, rows and columns the k-subsets of ``range(n)`` in lexicographic
order).  In the row-vector convention, for ``x`` indexed by k-subsets ``I``:

.. math:: (x\, C_k(U))_J = \sum_I x_I \det U_{I,J}
          = \sum_{\sigma \in S_k} \operatorname{sgn}\sigma\; M_{J_\sigma},\qquad
          M = X \times_1 U \times_2 U \cdots \times_k U,

where ``X`` is the ``n^k`` tensor holding ``x_I`` at the sorted positions ``I`` (zero
elsewhere), ``(X \times_j U)[.., c_j, ..] = sum_a X[.., a, ..] U[a, c_j]`` contracts mode
``j`` with ``U``, and ``J_sigma`` is ``J`` with its entries permuted by ``sigma``.  (Expand
``M_{J_sigma}`` and the sum over ``sigma`` is Leibniz's formula for ``det U_{I,J}``.)  For
``k = 2``: ``y_{cd} = (U^T X U)_{cd} - (U^T X U)_{dc}``, i.e. the upper triangle of
``U^T Omega(x) U`` with ``Omega(x) = X - X^T`` antisymmetric.  The transpose is the compound
of the transpose: ``x C_k(U)^T = x C_k(U^T)``.

Cost per token and block: ``k n^{k+1}`` multiply-adds (the k mode products) against
``C(n,k)^2`` for a built block, and nothing to build: for ``k = 2`` that is ``2 n^3`` against
``n^2 (n-1)^2 / 4`` (fewer from ``n = 10`` on).  :mod:`.route_cost` decides per order.

Layout, chosen so that every mode product is one large GEMM (no transposes): per block ``i``
the tensor ``X`` of the ``T`` tokens is stored as ``(a_1, ..., a_{k-1}, t, a_k)``.  The last
mode is ``(n^{k-1} T, n) @ U``; mode ``j < k`` is ``U^T @ (n, rest)`` batched over the modes
before it.  ``X`` is written by one ``index_copy`` and each ``M_{J_sigma}`` read by one
``index_select``, at flat positions ``high * (T n) + t n + low + i n^k T`` whose token-free
parts ``high, low`` are the tables of :func:`mode_tables`.
"""
from __future__ import annotations

from itertools import permutations

import torch

from .basis import hamming_basis


def permutation_signs(k: int) -> tuple[int, ...]:
    """``sgn(sigma)`` for ``sigma`` in ``itertools.permutations(range(k))`` order."""
    signs = []
    for perm in permutations(range(k)):
        inversions = sum(perm[a] > perm[b] for a in range(k) for b in range(a + 1, k))
        signs.append(-1 if inversions % 2 else 1)
    return tuple(signs)


def mode_tables(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-free parts of the flat positions of :func:`apply_compound` (builder, ``k >= 2``).

    For each ``sigma`` (``itertools.permutations(range(k))`` order) and each k-subset ``J``
    (lexicographic): ``high[sigma, J] = sum_{j<k-1} J_sigma(j) n^{k-2-j}`` (the modes before
    the token axis, in units of ``T n``) and ``low[sigma, J] = J_sigma(k-1)``; both
    ``(k!, C(n,k))``.  Row 0 (the identity) is where ``X`` is written."""
    subsets = hamming_basis(n, k)
    high, low = [], []
    for perm in permutations(range(k)):
        high.append([sum(s[perm[j]] * n ** (k - 2 - j) for j in range(k - 1)) for s in subsets])
        low.append([s[perm[k - 1]] for s in subsets])
    return (torch.tensor(high, dtype=torch.long).reshape(-1, len(subsets)),
            torch.tensor(low, dtype=torch.long).reshape(-1, len(subsets)))


def _positions(high: torch.Tensor, low: torch.Tensor, tokens: int, r: int, n: int,
               k: int) -> torch.Tensor:
    """Flat positions ``(k!, T, r, C(n,k))`` in the ``(r, n^{k-1}, T, n)`` buffer."""
    t = torch.arange(tokens, device=high.device) * n
    i = torch.arange(r, device=high.device) * (n ** k * tokens)
    start = (high * (tokens * n) + low)[:, None, None, :]
    return start + t[None, :, None, None] + i[None, None, :, None]


def apply_compound(x: torch.Tensor, U: torch.Tensor, k: int, tables, transpose: bool = False
                   ) -> torch.Tensor:
    """``x C_k(U)`` (``x C_k(U)^T`` if ``transpose``) per block, ``C_k(U)`` never formed.

    ``x: (..., r, C(n,k))``, ``U: (r, n, n)`` (or ``(1, n, n)``, shared by the ``r`` blocks),
    ``tables = mode_tables(n, k)`` (on ``x``'s device), ``k >= 2`` -> ``(..., r, C(n,k))``.
    Differentiable in ``x`` and ``U`` (autograd through one ``index_copy``, ``k`` GEMMs and
    ``k!`` ``index_select``); see the module docstring for the math and the layout.
    """
    high, low = tables
    r, m = x.shape[-2:]
    n = U.shape[-1]
    lead = x.shape[:-2]
    tokens = 1
    for size in lead:
        tokens *= size
    xf = x.reshape(tokens, r, m)
    U = U.to(x.dtype).expand(r, n, n)
    if transpose:
        U = U.transpose(-1, -2)
    pos = _positions(high, low, tokens, r, n, k)
    size = r * n ** k * tokens
    X = xf.new_zeros(size).index_copy(0, pos[0].reshape(-1), xf.reshape(-1))
    M = X.view(r, -1, n) @ U                                   # last mode: one GEMM
    Ut = U.transpose(-1, -2)
    for j in range(k - 2, -1, -1):                             # mode j: U^T @ (n, rest)
        M = (Ut.view(r, *([1] * j), n, n) @ M.view(r, *([n] * j), n, -1))
    M = M.reshape(-1)
    y = None
    for sign, p in zip(permutation_signs(k), pos):
        term = M.index_select(0, p.reshape(-1))
        y = term if y is None else (y + term if sign > 0 else y - term)
    return y.view(*lead, r, m)
