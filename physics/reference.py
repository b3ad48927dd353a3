r"""Independent finite-difference references on the same stencil, built with ``scipy.sparse``.

Nothing here uses the spectral bases: the Laplacian is assembled as an explicit sparse matrix
from its ghost-point rule, time is stepped, and Poisson is a sparse direct solve.  These are
what the spectral solvers of :mod:`physics.solvers` are tested and benchmarked against.

* :func:`laplacian_matrix` — ``Δ`` (negative semi-definite) on a 1D or 2D grid, row-major.
* :func:`heat_euler` — explicit Euler, ``u ← u + τ κ Δu``; first order; stable for
  ``τ κ λ_max <= 2`` (``λ_max < 4`` per axis).
* :func:`heat_crank_nicolson` — ``(I - τκΔ/2) u' = (I + τκΔ/2) u``; second order,
  unconditionally stable.
* :func:`wave_leapfrog` — ``u^{k+1} = 2u^k - u^{k-1} + τ² c² Δu^k`` started with the Taylor
  step ``u^1 = u^0 + τ v^0 + τ² c² Δu^0 / 2``; second order; stable for ``c τ √λ_max < 2``.
* :func:`poisson_sparse` — ``spsolve`` of ``-Δu = f`` (zero-mean rule through a bordered system
  ``[[-Δ, 1], [1ᵀ, 0]]``) or of ``(-Δ + eps) u = f``.

Inputs are arrays (NumPy or torch) shaped ``(batch, L, C)`` or ``(batch, H, W, C)``;
coefficients are scalars or per-channel arrays ``(C,)``.  Each channel is stepped with its own
``τ_c = t_c / steps``.  Outputs are float64 NumPy arrays of the input's shape.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from qiadapters import checks

from .bases import BOUNDARIES

__all__ = ["laplacian_matrix", "heat_euler", "heat_crank_nicolson", "wave_leapfrog",
           "poisson_sparse"]


def _laplacian_1d(n: int, boundary: str) -> sp.csr_matrix:
    main = -2.0 * np.ones(n)
    off = np.ones(n - 1)
    lap = sp.diags([off, main, off], [-1, 0, 1], shape=(n, n), format="lil")
    if boundary == "neumann":  # ghost u_{-1} = u_0, u_N = u_{N-1}
        lap[0, 0] += 1.0
        lap[n - 1, n - 1] += 1.0
    elif boundary == "periodic":  # ghost u_{-1} = u_{N-1}, u_N = u_0
        lap[0, n - 1] += 1.0
        lap[n - 1, 0] += 1.0
    return lap.tocsr()


def laplacian_matrix(shape: int | Sequence[int], boundary: str = "neumann") -> sp.csr_matrix:
    """Sparse ``Δ`` on a grid of ``shape`` (``N`` or ``(H, W)``), unknowns in row-major order.

    2D is the Kronecker sum ``Δ_H ⊗ I_W + I_H ⊗ Δ_W`` (the 5-point stencil).
    """
    checks.choice("boundary", boundary, BOUNDARIES)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if len(shape) not in (1, 2):
        raise ValueError(f"shape={shape!r} is not valid; valid: (L,) or (H, W)")
    for i, s in enumerate(shape):
        checks.integer(f"shape[{i}]", s, low=1)
    if len(shape) == 1:
        return _laplacian_1d(shape[0], boundary)
    h, w = shape
    return (sp.kron(_laplacian_1d(h, boundary), sp.identity(w))
            + sp.kron(sp.identity(h), _laplacian_1d(w, boundary))).tocsr()


def _columns(u) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """``(batch, *grid, C)`` -> ``(prod(grid), batch, C)`` float64 and the two shapes."""
    arr = np.asarray(u.detach().cpu() if hasattr(u, "detach") else u, dtype=np.float64)
    if arr.ndim not in (3, 4):
        raise ValueError(f"u.shape={arr.shape} is not a grid; valid: (batch, L, C) or "
                         f"(batch, H, W, C)")
    grid = arr.shape[1:-1]
    cols = np.moveaxis(arr.reshape(arr.shape[0], -1, arr.shape[-1]), 1, 0)
    return np.ascontiguousarray(cols), arr.shape, grid


def _back(cols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.moveaxis(cols, 0, 1).reshape(shape)


def _per_channel(x, channels: int) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    return np.broadcast_to(arr, (channels,)).copy()


def _steps(steps: int) -> int:
    return checks.integer("steps", steps, low=1)


def heat_euler(u0, kappa, t, steps: int, boundary: str = "neumann") -> np.ndarray:
    """Explicit Euler for ``u_t = κ Δu`` with ``steps`` steps of ``τ = t / steps``."""
    cols, shape, grid = _columns(u0)
    lap = laplacian_matrix(grid, boundary)
    a = _per_channel(kappa, shape[-1]) * _per_channel(t, shape[-1]) / _steps(steps)
    u = cols.reshape(cols.shape[0], -1)
    scale = np.tile(a, shape[0])  # columns are (batch, C) flattened, C fastest
    for _ in range(steps):
        u = u + (lap @ u) * scale
    return _back(u.reshape(cols.shape), shape)


def heat_crank_nicolson(u0, kappa, t, steps: int, boundary: str = "neumann") -> np.ndarray:
    """Crank–Nicolson for ``u_t = κ Δu``: one sparse LU per channel, ``steps`` solves each."""
    cols, shape, grid = _columns(u0)
    lap = laplacian_matrix(grid, boundary).tocsc()
    eye = sp.identity(lap.shape[0], format="csc")
    a = _per_channel(kappa, shape[-1]) * _per_channel(t, shape[-1]) / _steps(steps)
    out = np.empty_like(cols)
    for c in range(shape[-1]):
        lu = spla.splu((eye - 0.5 * a[c] * lap).tocsc())
        rhs_op = (eye + 0.5 * a[c] * lap).tocsr()
        u = cols[:, :, c]
        for _ in range(steps):
            u = lu.solve(rhs_op @ u)
        out[:, :, c] = u
    return _back(out, shape)


def wave_leapfrog(u0, v0, c, t, steps: int, boundary: str = "neumann") -> np.ndarray:
    """Leapfrog (central differences in time) for ``u_tt = c² Δu``, ``u(0)=u0, u_t(0)=v0``."""
    cols, shape, grid = _columns(u0)
    vcols, vshape, _ = _columns(v0)
    if vshape != shape:
        raise ValueError(f"v0.shape={vshape} must equal u0.shape={shape}")
    lap = laplacian_matrix(grid, boundary)
    channels = shape[-1]
    tau = _per_channel(t, channels) / _steps(steps)
    a = np.tile((_per_channel(c, channels) * tau) ** 2, shape[0])  # (c τ)² per column
    tau_cols = np.tile(tau, shape[0])
    prev = cols.reshape(cols.shape[0], -1)
    cur = prev + tau_cols * vcols.reshape(prev.shape) + 0.5 * a * (lap @ prev)
    for _ in range(steps - 1):
        prev, cur = cur, 2.0 * cur - prev + a * (lap @ cur)
    return _back(cur.reshape(cols.shape), shape)


def poisson_sparse(f, boundary: str = "neumann", zero_mode: str = "zero_mean",
                   eps: float | None = None) -> np.ndarray:
    """Sparse direct solve of ``-Δu = f`` with the same ``zero_mode`` rule as
    :func:`physics.poisson`.

    ``"zero_mean"`` under Neumann/periodic (``-Δ`` singular, null space = constants) solves the
    bordered system ``[[-Δ, 1], [1ᵀ, 0]] [u; μ] = [f; 0]``: then ``μ = mean(f)`` and ``u`` is
    the zero-mean solution of ``-Δu = f - mean(f)``.  ``"screened"`` solves
    ``(-Δ + eps) u = f`` (``eps`` a positive scalar).
    """
    from .solvers import ZERO_MODES  # registry only; no spectral code is used

    checks.choice("zero_mode", zero_mode, ZERO_MODES)
    cols, shape, grid = _columns(f)
    a = -laplacian_matrix(grid, boundary)
    n = a.shape[0]
    rhs = cols.reshape(n, -1)
    if zero_mode == "screened":
        if eps is None or not float(eps) > 0:
            raise ValueError(f"eps={eps!r} is not valid with zero_mode='screened'; valid: eps > 0")
        sol = spla.spsolve((a + float(eps) * sp.identity(n)).tocsc(), rhs)
    elif boundary == "dirichlet":
        sol = spla.spsolve(a.tocsc(), rhs)
    else:
        ones = sp.csr_matrix(np.ones((n, 1)))
        bordered = sp.bmat([[a, ones], [ones.T, None]], format="csc")
        sol = spla.spsolve(bordered, np.vstack([rhs, np.zeros((1, rhs.shape[1]))]))[:n]
    return _back(np.asarray(sol).reshape(cols.shape), shape)
