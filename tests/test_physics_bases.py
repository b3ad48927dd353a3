"""Spectral bases, stencil eigenvalues and token grids (float64)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import physics
from physics import bases, grids

BOUNDARIES = sorted(physics.BOUNDARIES)
FAST = settings(max_examples=25, deadline=None)


@FAST
@given(boundary=st.sampled_from(BOUNDARIES), n=st.integers(1, 24))
def test_basis_is_orthonormal_and_diagonalises_the_stencil(boundary, n):
    b = physics.basis(boundary, n).numpy()
    np.testing.assert_allclose(b @ b.T, np.eye(n), atol=1e-13)
    np.testing.assert_allclose(b.T @ b, np.eye(n), atol=1e-13)
    neg_lap = -physics.laplacian_matrix(n, boundary).toarray()
    lam = physics.eigenvalues(boundary, n).numpy()
    np.testing.assert_allclose(b @ neg_lap @ b.T, np.diag(lam), atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_eigenvalue_formulas(n):
    m = np.arange(n)
    np.testing.assert_allclose(physics.eigenvalues("neumann", n).numpy(),
                               4 * np.sin(np.pi * m / (2 * n)) ** 2, atol=1e-15)
    np.testing.assert_allclose(physics.eigenvalues("dirichlet", n).numpy(),
                               4 * np.sin(np.pi * (m + 1) / (2 * (n + 1))) ** 2, atol=1e-15)
    # periodic: the same multiset as 4 sin^2(pi m / N), m = 0..N-1
    np.testing.assert_allclose(np.sort(physics.eigenvalues("periodic", n).numpy()),
                               np.sort(4 * np.sin(np.pi * m / n) ** 2), atol=1e-14)
    assert physics.eigenvalues("neumann", n)[0] == 0.0


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_2d_eigenvalues_are_sums_over_axes_and_match_the_5_point_stencil(boundary):
    h, w = 4, 6
    lam = physics.eigenvalues(boundary, (h, w))
    assert lam.shape == (h, w)
    expected = physics.eigenvalues(boundary, h)[:, None] + physics.eigenvalues(boundary, w)
    torch.testing.assert_close(lam, expected)
    kron = np.kron(physics.basis(boundary, h).numpy(), physics.basis(boundary, w).numpy())
    neg_lap = -physics.laplacian_matrix((h, w), boundary).toarray()
    np.testing.assert_allclose(kron @ neg_lap @ kron.T, np.diag(lam.reshape(-1).numpy()),
                               atol=1e-12)


@FAST
@given(boundary=st.sampled_from(BOUNDARIES), shape=st.sampled_from([(5,), (1,), (3, 4), (1, 6)]),
       channels=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_transform_is_invertible_and_preserves_norm(boundary, shape, channels, seed):
    u = torch.randn(2, *shape, channels, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    u_hat = physics.transform(u, boundary)
    assert u_hat.shape == u.shape
    torch.testing.assert_close(physics.inverse_transform(u_hat, boundary), u)
    torch.testing.assert_close(u_hat.square().sum(), u.square().sum())


def test_2d_transform_equals_the_kronecker_basis():
    u = torch.randn(3, 4, 5, 2, dtype=torch.float64)
    kron = torch.kron(physics.basis("neumann", 4), physics.basis("neumann", 5))
    expected = torch.einsum("mn,bnc->bmc", kron, u.reshape(3, 20, 2)).reshape(u.shape)
    torch.testing.assert_close(physics.transform(u, "neumann"), expected)


def test_dct_ii_matches_scipy():
    from scipy.fft import dct, dst

    u = np.random.default_rng(0).standard_normal((2, 9, 3))
    ours = physics.transform(torch.from_numpy(u), "neumann").numpy()
    np.testing.assert_allclose(ours, dct(u, type=2, norm="ortho", axis=1), atol=1e-13)
    ours = physics.transform(torch.from_numpy(u), "dirichlet").numpy()
    np.testing.assert_allclose(ours, dst(u, type=1, norm="ortho", axis=1), atol=1e-13)


def test_bases_are_cached_per_size_dtype_and_device():
    a = physics.basis("neumann", 11, dtype=torch.float32)
    assert physics.basis("neumann", 11, dtype=torch.float32) is a
    b = physics.basis("neumann", 11, dtype=torch.float64)
    assert b is not a and b.dtype == torch.float64
    assert physics.basis("neumann", 12).shape == (12, 12)


def test_unknown_boundary_lists_the_valid_keys():
    with pytest.raises(ValueError, match=r"boundary='robin'.*neumann.*dirichlet.*periodic"):
        physics.transform(torch.zeros(1, 3, 1), "robin")
    with pytest.raises(ValueError, match="boundary='robin'"):
        physics.laplacian_matrix(3, "robin")


def test_non_grid_tensors_are_rejected():
    with pytest.raises(ValueError, match="u.shape"):
        physics.transform(torch.zeros(3, 4), "neumann")


# -- token grids --------------------------------------------------------------------------

@pytest.mark.parametrize("tokens,grid,extra,expected", [
    (197, "auto", 1, (14, 14)), (196, "auto", 0, (14, 14)), (128, "auto", 0, (128,)),
    (16, "sequence", 0, (16,)), (1, "auto", 0, (1,)), (2, "auto", 1, (1,)),
    (13, (3, 4), 1, (3, 4)), (7, (7,), 0, (7,)),
])
def test_infer_grid(tokens, grid, extra, expected):
    assert physics.infer_grid(tokens, grid, extra) == expected


def test_to_grid_and_back_round_trips_with_extra_tokens():
    x = torch.randn(2, 2 + 12, 5)
    extra, u = physics.to_grid(x, (3, 4), extra_tokens=2)
    assert extra.shape == (2, 2, 5) and u.shape == (2, 3, 4, 5)
    # row-major: token e + i*W + j sits at (i, j)
    torch.testing.assert_close(u[:, 1, 2], x[:, 2 + 1 * 4 + 2])
    torch.testing.assert_close(physics.from_grid(extra, u), x)
    extra, u = physics.to_grid(x[:, 2:], "sequence")
    torch.testing.assert_close(physics.from_grid(extra, u), x[:, 2:])


@pytest.mark.parametrize("kwargs,match", [
    (dict(tokens=10, grid=(3, 4)), r"tokens=10.*grid=\(3, 4\)"),
    (dict(tokens=1, grid="auto", extra_tokens=1), "extra_tokens=1"),
    (dict(tokens=4, grid=(0, 4)), "grid=0"),
    (dict(tokens=4, grid=(-2,)), "grid=-2"),
    (dict(tokens=4, grid="square"), r"grid='square'.*auto.*sequence"),
    (dict(tokens=8, grid=(2, 2, 2)), "grid="),
])
def test_grid_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        grids.infer_grid(**kwargs)


def test_auto_grid_rule_is_square_only():
    for n in range(2, 60):
        shape = physics.infer_grid(n, "auto")
        s = math.isqrt(n)
        assert shape == ((s, s) if s * s == n else (n,))
    assert bases.get_boundary("periodic") is physics.BOUNDARIES["periodic"]



@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_large_2d_grid_round_trips(boundary):
    u = torch.randn(1, 40, 33, 2, dtype=torch.float64)
    u_hat = physics.transform(u, boundary)
    torch.testing.assert_close(physics.inverse_transform(u_hat, boundary), u)
    torch.testing.assert_close(u_hat.square().sum(), u.square().sum())
