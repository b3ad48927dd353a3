"""Physics-prior adapters: heat, wave and Poisson operators on token grids.

Layers, lowest first: :mod:`physics.bases` (orthonormal DCT-II / DST-I / real-Fourier bases
and the stencil eigenvalues, cached), :mod:`physics.grids` (tokens <-> grids),
:mod:`physics.solvers` (exact spectral heat / wave / Poisson), :mod:`physics.reference`
(finite-difference and sparse-direct references on the same stencil, scipy.sparse; imported on
first use, so ``import physics`` does not load scipy),
:mod:`physics.priors` and :mod:`physics.routers` (registries), :mod:`physics.adapter`
(:class:`PhysicsAdapter`).  See ``docs/physics.md``.
"""
from .adapter import PhysicsAdapter
from .bases import (BOUNDARIES, Boundary, Dirichlet, Neumann, Periodic, basis, eigenvalues,
                    inverse_transform, transform)
from .grids import from_grid, infer_grid, to_grid
from .priors import PRIORS, HeatPrior, PoissonPrior, Prior, WavePrior
from .routers import ROUTERS, route_loss
from .solvers import ZERO_MODES, heat, poisson, wave

__all__ = ["PhysicsAdapter", "BOUNDARIES", "Boundary", "Neumann", "Dirichlet", "Periodic",
           "basis", "eigenvalues", "transform", "inverse_transform", "infer_grid", "to_grid",
           "from_grid", "PRIORS", "Prior", "HeatPrior", "WavePrior", "PoissonPrior", "ROUTERS",
           "route_loss", "ZERO_MODES", "heat", "wave", "poisson"]
from qiadapters.adapters.registry import register

from .causal import causal_kernel, causal_solve
from .layer import PhysicsConfig, PhysicsLayer, causal_reason, token_mask

register(PhysicsConfig, PhysicsLayer)
__all__ += ["PhysicsConfig", "PhysicsLayer", "causal_reason", "token_mask", "causal_kernel",
            "causal_solve"]

#: The reference solvers: ``physics.heat_euler`` etc. import :mod:`physics.reference` (and
#: scipy.sparse) on first use.  Documented there, so not in ``__all__``.
_REFERENCE = ("laplacian_matrix", "heat_euler", "heat_crank_nicolson", "wave_leapfrog",
              "poisson_sparse")


def __getattr__(name: str):
    if name in _REFERENCE:
        from . import reference
        return getattr(reference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_REFERENCE))
