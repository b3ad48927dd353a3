"""Spectral heat / wave / Poisson solvers against the finite-difference references (float64)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import physics

BOUNDARIES = sorted(physics.BOUNDARIES)
SHAPES = [(12,), (5, 4)]
FAST = settings(max_examples=20, deadline=None)
F64 = torch.float64


def _rand(*shape, seed=0):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _order(errors, steps):
    """Least-squares slope of log(error) against log(dt) = -log(steps)."""
    return np.polyfit(-np.log(steps), np.log(errors), 1)[0]


# -- convergence of the time steppers to the exact spectral solution ----------------------

@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_heat_steppers_converge_at_their_order(boundary, shape):
    u0 = _rand(2, *shape, 3)
    kappa = torch.tensor([0.3, 1.0, 0.7], dtype=F64)
    t = torch.tensor([1.0, 0.5, 1.5], dtype=F64)
    exact = physics.heat(u0, kappa, t, boundary).numpy()
    steps = np.array([40, 80, 160, 320])
    euler = [np.abs(physics.heat_euler(u0, kappa, t, s, boundary) - exact).max() for s in steps]
    cn = [np.abs(physics.heat_crank_nicolson(u0, kappa, t, s, boundary) - exact).max()
          for s in steps]
    assert _order(euler, steps) == pytest.approx(1.0, abs=0.06)
    assert _order(cn, steps) == pytest.approx(2.0, abs=0.06)
    assert cn[-1] < 1e-4


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_wave_leapfrog_converges_at_second_order(boundary, shape):
    u0, v0 = _rand(2, *shape, 2, seed=1), _rand(2, *shape, 2, seed=2)
    c = torch.tensor([0.5, 0.9], dtype=F64)
    t = torch.tensor([2.0, 1.0], dtype=F64)
    exact = physics.wave(u0, v0, c, t, boundary).numpy()
    steps = np.array([40, 80, 160, 320])
    errors = [np.abs(physics.wave_leapfrog(u0, v0, c, t, s, boundary) - exact).max()
              for s in steps]
    assert _order(errors, steps) == pytest.approx(2.0, abs=0.06)


@FAST
@given(boundary=st.sampled_from(BOUNDARIES),
       shape=st.sampled_from([(1,), (2,), (9,), (3, 3), (2, 5)]),
       zero_mode=st.sampled_from(sorted(physics.ZERO_MODES)), seed=st.integers(0, 2**16))
def test_poisson_matches_the_sparse_direct_solve_to_round_off(boundary, shape, zero_mode, seed):
    f = _rand(2, *shape, 2, seed=seed)
    eps = 0.25 if zero_mode == "screened" else None
    ours = physics.poisson(f, boundary, zero_mode, eps).numpy()
    ref = physics.poisson_sparse(f, boundary, zero_mode, eps)
    np.testing.assert_allclose(ours, ref, atol=1e-11 * (1 + np.abs(ref).max()), rtol=0)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_poisson_solution_satisfies_the_stencil(boundary):
    f = _rand(1, 4, 5, 2)
    u = physics.poisson(f, boundary).numpy()
    lap = physics.laplacian_matrix((4, 5), boundary)
    cols_u = u.reshape(20, 2)
    cols_f = f.numpy().reshape(20, 2)
    if boundary != "dirichlet":  # zero-mean rule: -Δu = f - mean(f) and mean(u) = 0
        cols_f = cols_f - cols_f.mean(axis=0)
        np.testing.assert_allclose(cols_u.mean(axis=0), 0, atol=1e-13)
    np.testing.assert_allclose(-(lap @ cols_u), cols_f, atol=1e-12)


# -- analytic single modes ----------------------------------------------------------------

def test_cosine_mode_decays_at_its_eigenvalue_rate():
    n, m, kappa, t = 16, 3, 0.7, 2.5
    x = torch.arange(n, dtype=F64)
    mode = torch.cos(math.pi * m * (x + 0.5) / n)[None, :, None]
    lam = 4 * math.sin(math.pi * m / (2 * n)) ** 2
    out = physics.heat(mode, kappa, t, "neumann")
    torch.testing.assert_close(out, math.exp(-kappa * lam * t) * mode)
    omega = 1.3 * math.sqrt(lam)
    torch.testing.assert_close(physics.wave(mode, torch.zeros_like(mode), 1.3, t, "neumann"),
                               math.cos(omega * t) * mode)
    torch.testing.assert_close(physics.wave(torch.zeros_like(mode), mode, 1.3, t, "neumann"),
                               math.sin(omega * t) / omega * mode)
    torch.testing.assert_close(physics.poisson(lam * mode, "neumann"), mode)


def test_2d_sine_mode_under_dirichlet():
    h, w, (p, q) = 5, 7, (2, 3)
    i = torch.arange(1, h + 1, dtype=F64)[:, None]
    j = torch.arange(1, w + 1, dtype=F64)[None, :]
    mode = (torch.sin(math.pi * p * i / (h + 1)) * torch.sin(math.pi * q * j / (w + 1)))
    mode = mode[None, :, :, None]
    lam = (4 * math.sin(math.pi * p / (2 * (h + 1))) ** 2
           + 4 * math.sin(math.pi * q / (2 * (w + 1))) ** 2)
    torch.testing.assert_close(physics.heat(mode, 0.4, 1.5, "dirichlet"),
                               math.exp(-0.4 * 1.5 * lam) * mode)
    torch.testing.assert_close(physics.poisson(mode, "dirichlet"), mode / lam)


def test_constant_under_neumann_zero_mode_rules():
    f = torch.ones(1, 6, 1, dtype=F64)
    torch.testing.assert_close(physics.poisson(f, "neumann"), torch.zeros_like(f))
    torch.testing.assert_close(physics.poisson(f, "neumann", "screened", 0.5), f / 0.5)
    # wave of a constant velocity: u(t) = u0 + t v0 (the λ = 0 limit)
    torch.testing.assert_close(physics.wave(f, 2 * f, 0.8, 3.0, "neumann"), f + 6.0 * f)


# -- invariants ---------------------------------------------------------------------------

@FAST
@given(boundary=st.sampled_from(["neumann", "periodic"]), shape=st.sampled_from([(8,), (3, 4)]),
       kappa=st.floats(0.0, 3.0), t=st.floats(0.0, 5.0), seed=st.integers(0, 2**16))
def test_heat_conserves_the_mean_and_obeys_the_maximum_principle(boundary, shape, kappa, t, seed):
    u0 = _rand(2, *shape, 3, seed=seed)
    u = physics.heat(u0, kappa, t, boundary)
    dims = tuple(range(1, u0.ndim - 1))
    torch.testing.assert_close(u.mean(dims), u0.mean(dims))
    assert (u.amax(dims) <= u0.amax(dims) + 1e-12).all()
    assert (u.amin(dims) >= u0.amin(dims) - 1e-12).all()


@FAST
@given(shape=st.sampled_from([(8,), (3, 4)]), kappa=st.floats(0.0, 3.0), t=st.floats(0.0, 5.0),
       seed=st.integers(0, 2**16))
def test_dirichlet_heat_maximum_principle_with_zero_walls(shape, kappa, t, seed):
    u0 = _rand(2, *shape, 2, seed=seed)
    u = physics.heat(u0, kappa, t, "dirichlet")
    dims = tuple(range(1, u0.ndim - 1))
    assert (u.amax(dims) <= u0.amax(dims).clamp_min(0) + 1e-12).all()
    assert (u.amin(dims) >= u0.amin(dims).clamp_max(0) - 1e-12).all()


# torch's forward-mode AD loads its decompositions through the deprecated torch.jit.script.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@FAST
@given(boundary=st.sampled_from(BOUNDARIES), shape=st.sampled_from([(10,), (3, 4)]),
       c=st.floats(0.1, 2.0), t=st.floats(0.0, 10.0), seed=st.integers(0, 2**16))
def test_wave_conserves_the_discrete_energy(boundary, shape, c, t, seed):
    """E = ½|u_t|² + ½ c² uᵀ(-Δ)u, with u_t taken by forward-mode AD in t."""
    u0, v0 = _rand(1, *shape, 2, seed=seed), _rand(1, *shape, 2, seed=seed + 1)
    neg_lap = torch.from_numpy(-physics.laplacian_matrix(shape, boundary).toarray())

    def energy(u, v):
        u, v = u.reshape(-1, 2), v.reshape(-1, 2)
        return 0.5 * (v * v).sum(0) + 0.5 * c**2 * (u * (neg_lap @ u)).sum(0)

    tt = torch.tensor(t, dtype=F64)
    u, v = torch.func.jvp(lambda s: physics.wave(u0, v0, c, s, boundary), (tt,),
                          (torch.ones_like(tt),))
    torch.testing.assert_close(energy(u, v), energy(u0, v0))


# -- gradients ----------------------------------------------------------------------------

@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_gradcheck_heat_wave_poisson(boundary, shape):
    u0 = _rand(1, *shape, 2).requires_grad_()
    v0 = _rand(1, *shape, 2, seed=3).requires_grad_()
    kappa = torch.tensor([0.4, 1.2], dtype=F64, requires_grad=True)
    c = torch.tensor([0.7, 1.1], dtype=F64, requires_grad=True)
    t = torch.tensor([0.9, 1.6], dtype=F64, requires_grad=True)
    eps = torch.tensor([0.3, 0.8], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: physics.heat(*a, boundary), (u0, kappa, t))
    assert torch.autograd.gradcheck(lambda *a: physics.wave(*a, boundary), (u0, v0, c, t))
    assert torch.autograd.gradcheck(lambda f: physics.poisson(f, boundary), (u0,))
    assert torch.autograd.gradcheck(
        lambda f, e: physics.poisson(f, boundary, "screened", e), (u0, eps))


def test_wave_gradients_are_finite_at_zero_eigenvalue_and_zero_speed():
    u0, v0 = _rand(2, 6, 2), _rand(2, 6, 2, seed=1)
    for c0 in (0.0, 1.0):
        c = torch.tensor([c0, 0.5], dtype=F64, requires_grad=True)
        t = torch.tensor([1.0, 0.0], dtype=F64, requires_grad=True)
        out = physics.wave(u0, v0, c, t, "neumann")
        out.square().sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(c.grad).all()
        assert torch.isfinite(t.grad).all()
    assert torch.autograd.gradcheck(
        lambda c: physics.wave(u0, v0, c, 1.0, "neumann"),
        (torch.tensor([1e-9, 0.5], dtype=F64, requires_grad=True),))


def test_per_sample_coefficients_broadcast():
    u0 = _rand(3, 6, 2)
    kappa = torch.tensor([0.1, 0.5, 1.0], dtype=F64)[:, None, None]
    out = physics.heat(u0, kappa, 1.0, "neumann")
    for b in range(3):
        torch.testing.assert_close(out[b:b + 1], physics.heat(u0[b:b + 1], kappa[b].item(), 1.0))


def test_solver_argument_errors():
    u = torch.zeros(1, 4, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"zero_mode='mean'.*zero_mean.*screened"):
        physics.poisson(u, zero_mode="mean")
    with pytest.raises(ValueError, match="eps"):
        physics.poisson(u, zero_mode="screened")
    with pytest.raises(ValueError, match="eps=0"):
        physics.poisson(u, zero_mode="screened", eps=0)
    with pytest.raises(ValueError, match=r"boundary='free'.*neumann"):
        physics.heat(u, 1.0, 1.0, boundary="free")
    with pytest.raises(ValueError, match="v0.shape"):
        physics.wave(u, torch.zeros(1, 5, 1, dtype=F64), 1.0, 1.0)
    with pytest.raises(ValueError, match="steps=0"):
        physics.heat_euler(u, 1.0, 1.0, steps=0)
