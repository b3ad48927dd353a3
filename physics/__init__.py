"""Physics-prior adapters: heat, wave and Poisson operators on token grids.

Layers, lowest first: :mod:`physics.bases` (orthonormal DCT-II / DST-I / real-Fourier bases
and the stencil eigenvalues, cached), :mod:`physics.grids` (tokens <-> grids),
:mod:`physics.solvers` (exact spectral heat / wave / Poisson), :mod:`physics.reference`
(finite-difference and sparse-direct references on the same stencil, scipy.sparse),
:mod:`physics.priors` and :mod:`physics.routers` (registries), :mod:`physics.adapter`
(:class:`PhysicsAdapter`).  See ``docs/physics.md``.
"""
from .adapter import PhysicsAdapter
from .bases import (BOUNDARIES, Boundary, Dirichlet, Neumann, Periodic, basis, eigenvalues,
                    inverse_transform, transform)
from .grids import from_grid, infer_grid, to_grid
from .priors import PRIORS, HeatPrior, PoissonPrior, Prior, WavePrior
from .reference import (heat_crank_nicolson, heat_euler, laplacian_matrix, poisson_sparse,
                        wave_leapfrog)
from .routers import ROUTERS, route_loss
from .solvers import ZERO_MODES, heat, poisson, wave

__all__ = ["PhysicsAdapter", "BOUNDARIES", "Boundary", "Neumann", "Dirichlet", "Periodic",
           "basis", "eigenvalues", "transform", "inverse_transform", "infer_grid", "to_grid",
           "from_grid", "PRIORS", "Prior", "HeatPrior", "WavePrior", "PoissonPrior", "ROUTERS",
           "route_loss", "ZERO_MODES", "heat", "wave", "poisson", "laplacian_matrix",
           "heat_euler", "heat_crank_nicolson", "wave_leapfrog", "poisson_sparse"]
from .causal import causal_kernel, causal_solve
from .layer import PhysicsConfig, PhysicsLayer, causal_reason, token_mask  # registers the family
__all__ += ["PhysicsConfig", "PhysicsLayer", "causal_reason", "token_mask", "causal_kernel",
            "causal_solve"]
