r"""Exact spectral solvers of the space-discretised heat, wave and Poisson equations.

All three act on grids ``u: (batch, L, C)`` or ``(batch, H, W, C)`` (channels independent) with
the second-difference Laplacian ``Δ`` of :mod:`physics.bases` (grid spacing 1).  Writing
``û = B u`` for the coefficients in the boundary's eigenbasis and ``λ`` for the eigenvalues
of ``-Δ``:

* heat ``u_t = κ Δu``:          ``û(t) = exp(-κ t λ) û_0``
* wave ``u_tt = c² Δu``:
  ``û(t) = cos(c t √λ) û_0 + sin(c t √λ) / (c √λ) v̂_0``,
  the second factor written as ``t sinc(c t √λ / π)`` so that its limit ``t`` at ``λ = 0``
  (or ``c = 0``) is exact and its gradients are finite.
* Poisson ``-Δu = f``:          ``û = f̂ / λ`` for ``λ > 0``; the ``λ = 0`` mode follows
  ``zero_mode`` (see :func:`poisson`).

These are exact in time: a finite-difference time stepper on the same stencil
(:mod:`physics.reference`) converges to them at its order as the step shrinks.

Coefficients (``kappa``, ``c``, ``t``, ``eps``) are Python numbers or tensors that broadcast
against the grid tensor, typically shape ``(C,)`` (one value per channel) or ``(batch, 1, C)``
in 1D / ``(batch, 1, 1, C)`` in 2D.  Gradients flow to every tensor argument.
"""
from __future__ import annotations

import math

import torch

from qiadapters import checks

from .bases import Boundary, eigenvalues, get_boundary, inverse_transform, transform

__all__ = ["heat", "wave", "poisson", "ZERO_MODES", "heat_multiplier", "wave_multipliers",
           "poisson_multiplier", "grid_eigenvalues"]

#: rules for the λ = 0 Poisson mode (Neumann and periodic have one; Dirichlet has none).
ZERO_MODES = {
    "zero_mean": "coefficient of the λ = 0 mode set to 0: the zero-mean solution of "
                 "-Δu = f - mean(f)",
    "screened": "solve (-Δ + eps) u = f instead: û = f̂ / (λ + eps) for every mode, eps > 0",
}


def grid_eigenvalues(u: torch.Tensor, boundary: str | Boundary) -> torch.Tensor:
    """``λ`` shaped ``(*grid, 1)`` for a grid tensor ``u: (batch, *grid, C)``."""
    if u.ndim not in (3, 4):
        raise ValueError(f"u.shape={tuple(u.shape)} is not a grid; valid: (batch, L, channels) "
                         f"or (batch, H, W, channels)")
    return eigenvalues(boundary, tuple(u.shape[1:-1]), dtype=u.dtype, device=u.device)[..., None]


def _as(x, like: torch.Tensor):
    """A tensor constant in ``like``'s dtype and device; a Python number stays a number (it
    broadcasts as a scalar: no host tensor is made and copied to the device per call)."""
    return x.to(dtype=like.dtype, device=like.device) if torch.is_tensor(x) else x


def heat_multiplier(lam: torch.Tensor, kappa, t) -> torch.Tensor:
    """``exp(-κ t λ)``: the heat propagator, diagonal in the eigenbasis."""
    return torch.exp(-(_as(kappa, lam) * _as(t, lam)) * lam)


def wave_multipliers(lam: torch.Tensor, c, t) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos(ωt), sin(ωt)/ω)`` with ``ω = c √λ``; the second is ``t`` where ``ω = 0``.

    ``sin(ωt)/ω = t · sinc(ωt/π)`` (``torch.sinc(x) = sin(πx)/(πx)``, 1 at 0) is smooth in
    ``c`` and ``t`` everywhere, so no NaN appears in values or gradients.  ``√λ`` carries no
    gradient (``λ`` is a constant of the grid).
    """
    c, t = _as(c, lam), _as(t, lam)
    phase = c * t * torch.sqrt(lam)
    return torch.cos(phase), t * torch.sinc(phase / math.pi)


def poisson_multiplier(lam: torch.Tensor, zero_mode: str = "zero_mean", eps=None) -> torch.Tensor:
    """``1/λ`` on ``λ > 0`` and the ``zero_mode`` rule elsewhere (never a division by zero)."""
    if zero_mode == "screened":
        return 1.0 / (lam + _as(eps, lam))
    positive = lam > 0
    return torch.where(positive, 1.0 / torch.where(positive, lam, torch.ones_like(lam)),
                       torch.zeros_like(lam))


def heat(u0: torch.Tensor, kappa, t, boundary: str | Boundary = "neumann") -> torch.Tensor:
    r"""Solve ``u_t = κ Δu`` exactly in time: ``u(t) = B^T exp(-κ t λ) B u_0``.

    Args:
        u0: ``(batch, L, C)`` or ``(batch, H, W, C)`` initial state.
        kappa: diffusivity, broadcast over channels (e.g. ``(C,)``); ``κ >= 0`` for a decaying
            solution (not checked: any real value is the exact propagator).
        t: time, broadcast like ``kappa``.
        boundary: a key of :data:`physics.BOUNDARIES`.
    """
    bnd = get_boundary(boundary)
    lam = grid_eigenvalues(u0, bnd)
    return inverse_transform(heat_multiplier(lam, kappa, t) * transform(u0, bnd), bnd)


def wave(u0: torch.Tensor, v0: torch.Tensor, c, t,
         boundary: str | Boundary = "neumann") -> torch.Tensor:
    r"""Solve ``u_tt = c² Δu`` with ``u(0) = u_0``, ``u_t(0) = v_0`` exactly in time.

    ``û(t) = cos(c t √λ) û_0 + sin(c t √λ)/(c √λ) v̂_0``, with the limit ``t v̂_0`` at
    ``c √λ = 0`` (see :func:`wave_multipliers`).  Shapes and broadcasting as :func:`heat`.
    """
    bnd = get_boundary(boundary)
    if v0.shape != u0.shape:
        raise ValueError(f"v0.shape={tuple(v0.shape)} must equal u0.shape={tuple(u0.shape)}")
    lam = grid_eigenvalues(u0, bnd)
    cos_term, sin_term = wave_multipliers(lam, c, t)
    return inverse_transform(cos_term * transform(u0, bnd) + sin_term * transform(v0, bnd), bnd)


def poisson(f: torch.Tensor, boundary: str | Boundary = "neumann", zero_mode: str = "zero_mean",
            eps=None) -> torch.Tensor:
    r"""Solve ``-Δu = f`` spectrally: ``û = f̂ / λ`` on the modes with ``λ > 0``.

    The ``λ = 0`` mode (the constant, under Neumann and periodic boundaries) follows
    ``zero_mode``:

    * ``"zero_mean"`` (default): its coefficient is set to 0.  The result is the unique
      zero-mean solution of ``-Δu = f - mean(f)`` (the mean of ``f`` is the part that no
      ``u`` can produce).  Under Dirichlet there is no zero mode and this is the plain solve.
    * ``"screened"``: solve the screened equation ``(-Δ + eps) u = f`` instead,
      ``û = f̂ / (λ + eps)`` for *every* mode; requires ``eps > 0`` (a number, or a tensor
      broadcast over channels, which then receives gradients).

    Args:
        f: ``(batch, L, C)`` or ``(batch, H, W, C)`` source.
    """
    bnd = get_boundary(boundary)
    checks.choice("zero_mode", zero_mode, ZERO_MODES)
    if zero_mode == "screened":
        if eps is None:
            raise ValueError("eps=None is not valid with zero_mode='screened'; valid: eps > 0")
        if not torch.is_tensor(eps) and not eps > 0:
            raise ValueError(f"eps={eps!r} is not valid; valid: eps > 0")
    lam = grid_eigenvalues(f, bnd)
    return inverse_transform(poisson_multiplier(lam, zero_mode, eps) * transform(f, bnd), bnd)
