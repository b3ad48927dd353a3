"""The skew parametrizations' blocks against independent references: ``S`` written entry by
entry from the angles, the Cayley transform as ``(I + S)^{-1} (I - S)`` by an explicit
inverse, ``exp(S)`` by scipy; both routes of building ``S`` (the dense map of small blocks,
the scatter of large ones) and their gradients."""
import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qiadapters.adapters.hamming import parametrizations
from qiadapters.adapters.hamming.parametrizations import (SKEW_MAP_MAX_ENTRIES, Cayley, Expm,
                                                          skew_map)
from qiadapters.circuits.block_layout import BlockLayout


def _param(cls, n, copies, seed, dtype=torch.float64):
    layout = BlockLayout(n=n, orders=(1,), blocks=copies, pad=0, dim=copies * n)
    p = cls(layout).to(dtype)
    with torch.no_grad():
        p.weight.copy_(torch.randn(p.weight.shape, generator=torch.Generator().manual_seed(seed)))
    return p


def _skew_by_hand(w: np.ndarray, n: int) -> np.ndarray:
    """``S[c, i, j] = w[c, p] = -S[c, j, i]`` for the ``p``-th pair ``i < j`` (row by row)."""
    S = np.zeros((w.shape[0], n, n))
    for c in range(w.shape[0]):
        p = 0
        for i in range(n):
            for j in range(i + 1, n):
                S[c, i, j], S[c, j, i] = w[c, p], -w[c, p]
                p += 1
    return S


def _holds_map(n: int) -> bool:
    return n * n * (n * (n - 1) // 2) <= SKEW_MAP_MAX_ENTRIES


@settings(max_examples=25, deadline=None)
@given(n=st.sampled_from([2, 3, 5, 7, 10, 16, 17, 20]), copies=st.integers(1, 8),
       seed=st.integers(0, 2 ** 16))
def test_cayley_blocks_equal_the_explicit_inverse(n, copies, seed):
    """Q = (I + S)^{-1} (I - S) for S built by hand, to 1e-12, orthogonal with det 1, on both
    routes (n <= 16 holds the dense map; copies == n checks the solve's right-hand side is
    not read as a batch of vectors)."""
    p = _param(Cayley, n, copies, seed)
    assert hasattr(p, "skew_map") == _holds_map(n)
    S = _skew_by_hand(p.weight.detach().numpy(), n)
    eye = np.eye(n)
    want = np.stack([np.linalg.inv(eye + s) @ (eye - s) for s in S])
    Q = p.orthogonal(torch.float64).detach()
    np.testing.assert_allclose(Q.numpy(), want, atol=1e-12, rtol=0)
    np.testing.assert_allclose(p.skew(torch.float64).detach().numpy(), S, atol=0, rtol=0)
    torch.testing.assert_close(Q @ Q.mT, torch.eye(n, dtype=Q.dtype).expand_as(Q),
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(Q), torch.ones(copies, dtype=Q.dtype))


@pytest.mark.parametrize("n", [4, 7, 20])
def test_expm_blocks_equal_scipy(n):
    p = _param(Expm, n, 3, seed=n)
    S = _skew_by_hand(p.weight.detach().numpy(), n)
    want = np.stack([scipy.linalg.expm(s) for s in S])
    np.testing.assert_allclose(p.orthogonal(torch.float64).detach().numpy(), want,
                               atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls", [Cayley, Expm])
def test_dense_map_and_scatter_routes_agree_with_gradients(cls, monkeypatch):
    """The same module built with and without the dense map: equal blocks and equal angle
    gradients (float64, 1e-12); gradcheck on the dense-map route."""
    n, copies = 6, 3
    fast = _param(cls, n, copies, seed=1)
    monkeypatch.setattr(parametrizations, "SKEW_MAP_MAX_ENTRIES", 0)
    slow = _param(cls, n, copies, seed=1)
    assert hasattr(fast, "skew_map") and not hasattr(slow, "skew_map")
    G = torch.randn(copies, n, n, dtype=torch.float64)
    outs = [(m.orthogonal(torch.float64) * G).sum() for m in (fast, slow)]
    grads = [torch.autograd.grad(o, m.weight)[0] for o, m in zip(outs, (fast, slow))]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-12, rtol=0)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-12, rtol=0)
    w = fast.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: fast.orthogonal(torch.float64, v), (w,))


def test_identity_at_zero_exactly_and_buffers_not_saved():
    """At zero angles Q is I bit for bit (float32), and the dense map and identity are
    non-persistent buffers: never in the state_dict, following .to(dtype)."""
    layout = BlockLayout(n=7, orders=(1, 2), blocks=4, pad=4, dim=128)
    p = Cayley(layout)
    assert torch.equal(p.orthogonal(torch.float32), torch.eye(7).expand(4, 7, 7))
    assert set(p.state_dict()) == {"weight"}
    assert p.skew_map.shape == (21, 49) and p.double().skew_map.dtype == torch.float64
    assert torch.equal(skew_map(3), torch.tensor([[0., 1, 0, -1, 0, 0, 0, 0, 0],
                                                  [0, 0, 1, 0, 0, 0, -1, 0, 0],
                                                  [0, 0, 0, 0, 0, 1, 0, -1, 0]]))


def test_blocks_under_autocast_keep_the_angles_exact():
    """Under CPU autocast (bfloat16) the build stays in float32: the same Q as without."""
    p = _param(Cayley, 7, 2, seed=3, dtype=torch.float32)
    want = p.orthogonal(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = p.orthogonal(torch.float32)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=0, rtol=0)
