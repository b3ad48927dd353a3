r"""Causal (prefix) operators: each position sees the operator solved on its own prefix.

A heat / wave / Poisson operator on a grid of ``N`` tokens couples every token with every
other one.  In a causal model token ``t`` may only see tokens ``0..t``.  The causal variant
used here is exact and has one definition for every prior and boundary:

    **output at t = (the operator solved on the grid of the first t+1 tokens, applied to
    them) at its last point t.**

That is what the bidirectional operator gives on a sequence that ends at ``t``: the boundary
condition closes the grid at the current token (Neumann: zero flux through the end, Dirichlet:
``u = 0`` one cell beyond it, periodic: the prefix wraps onto itself), nothing beyond ``t``
exists.  It is neither the lower-triangular part of the length-``N`` operator (whose entries
change with ``N``, so appending a token would change earlier outputs) nor a one-sided
free-space kernel (which has no boundary).  Consequences, all tested:

* changing tokens after ``t`` never changes the output at ``t`` (any ``N``), and outputs at
  ``t`` do not depend on how many tokens follow (training on a full sequence gives the same
  outputs as re-running every prefix, as in decoding without a cache);
* on the last token it equals the bidirectional operator on the whole sequence.

With the prefix operator ``K_n = B_nᵀ diag(m(λ^{(n)})) B_n`` (``B_n``, ``λ^{(n)}`` the basis
and eigenvalues of :mod:`physics.bases` on ``n`` points) the causal kernel is the lower
triangular ``C[t, s] = K_{t+1}[t, s]`` (``s <= t``), per channel:

.. code-block:: text

    C[t, s, c] = Σ_m  B_{t+1}[m, t] B_{t+1}[m, s] · m_c(λ^{(t+1)}_m)        (m, s <= t)

The constant table ``T[t, m, s] = B_{t+1}[m, t] B_{t+1}[m, s]`` and the eigenvalue table
``Λ[t, m] = λ^{(t+1)}_m`` are built once per ``(boundary, N, dtype, device)`` (cached like the
bases; zero beyond ``m = t``).  Cost: ``T`` holds ``N³`` numbers (``N = 128``: 2.1 M, 8 MB in
float32; ``N = 512``: 0.5 GB), building ``C`` from the multipliers is one batched GEMM of
``N³ C`` multiply-adds, and applying it ``batch · N² · C``.  This is meant for adapter-sized
channel counts and sequences of a few hundred tokens.

Only 1D grids have a causal variant: a prefix of a row-major 2D grid is not a grid.
"""
from __future__ import annotations

from typing import Callable

import torch

from qiadapters import checks

from .bases import Boundary, cached, get_boundary

__all__ = ["prefix_tables", "causal_kernel", "causal_apply", "causal_solve"]


def _build_tables(bnd: Boundary, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    table = torch.zeros(n, n, n, dtype=torch.float64, device=device)
    lam = torch.zeros(n, n, dtype=torch.float64, device=device)
    for k in range(1, n + 1):
        b = bnd.basis_matrix(k, device)
        table[k - 1, :k, :k] = b[:, k - 1:k] * b
        lam[k - 1, :k] = bnd.eigenvalue_vector(k, device)
    return table, lam


def prefix_tables(boundary: str | Boundary, n: int, *, dtype=torch.float64,
                  device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(T: (n, n, n), Λ: (n, n))``: ``T[t, m, s] = B_{t+1}[m, t] B_{t+1}[m, s]`` and
    ``Λ[t, m] = λ^{(t+1)}_m`` for ``m, s <= t``, zero elsewhere (module docstring).  Cached;
    shared by all callers: do not modify in place."""
    checks.integer("n", n, low=1)
    return cached("prefix", get_boundary(boundary), int(n), dtype, device, _build_tables)


def causal_kernel(multiplier: Callable[[torch.Tensor], torch.Tensor], n: int,
                  boundary: str | Boundary = "neumann", *, dtype=torch.float64,
                  device="cpu") -> torch.Tensor:
    """The causal kernel ``C: (n, n, channels)``, lower triangular in its first two axes.

    ``multiplier(λ: (modes,)) -> (modes, channels)`` is the operator's spectral multiplier
    (e.g. :meth:`physics.Prior.multiplier`); it is evaluated on every prefix's eigenvalues.
    """
    table, lam = prefix_tables(boundary, n, dtype=dtype, device=device)
    mult = multiplier(lam.reshape(-1))
    mult = mult.reshape(n, n, -1)                                    # (t, m, channels)
    return torch.bmm(table.transpose(1, 2), mult)                     # (t, s, channels)


def causal_apply(kernel: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``y[b, t, c] = Σ_{s <= t} C[t, s, c] u[b, s, c]`` for ``u: (batch, n, C)``."""
    return torch.einsum("tsc,bsc->btc", kernel, u)


def causal_solve(u: torch.Tensor, multiplier: Callable[[torch.Tensor], torch.Tensor],
                 boundary: str | Boundary = "neumann") -> torch.Tensor:
    """Apply the causal operator of ``multiplier`` to ``u: (batch, n, C)`` (a 1D grid).

    E.g. causal heat: ``causal_solve(u, lambda lam: heat_multiplier(lam[:, None], κ, t))``.
    """
    if u.ndim != 3:
        raise ValueError(f"u.shape={tuple(u.shape)} is not valid; valid: (batch, L, channels) "
                         f"(causal operators act on 1D grids only)")
    kernel = causal_kernel(multiplier, u.shape[1], boundary, dtype=u.dtype, device=u.device)
    return causal_apply(kernel.expand(-1, -1, u.shape[-1]) if kernel.shape[-1] == 1 else kernel,
                        u)
