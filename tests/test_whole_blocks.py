"""The whole-block route of ``apply_blocks``: every order's block and the identity pad
assembled into one ``b x b`` block, one product.  Against the dense ``D`` (``torch.block_diag``
of the blocks) and the order-by-order route, over sizes, orders, pads, tails and directions."""
import os
import sys
from math import comb

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from qiadapters import HammingAdapter
from qiadapters.circuits import operands, route_cost
from qiadapters.circuits.blockdiag import BlockLayout, Operands, apply_blocks, assemble, dense
from qiadapters.circuits.compound import compound_by_minors
from qiadapters.testing import perturb

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import random_orthogonal  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 6), orders=st.sampled_from([(1,), (2,), (1, 2), (1, 2, 3), (2, 3)]),
       r=st.integers(1, 3), pad=st.integers(0, 3), tail=st.integers(0, 4),
       transpose=st.booleans(), seed=st.integers(0, 10))
def test_whole_blocks_equal_dense_map_and_order_route(n, orders, r, pad, tail, transpose, seed):
    orders = tuple(k for k in orders if k < n)
    U = random_orthogonal(r, n, seed)
    blocks = [torch.stack([compound_by_minors(u, k) for u in U]) for k in orders]
    active = sum(comb(n, k) for k in orders)
    lay = BlockLayout(n, orders, r, pad, r * (active + pad) + tail)
    W = assemble(blocks, lay)
    for i in range(r):  # the whole block is the blocks on the diagonal, then I_pad
        want = torch.block_diag(*[B[i] for B in blocks], torch.eye(pad, dtype=torch.float64))
        assert torch.equal(W[i], want)
    D = dense(blocks, lay)
    x = torch.randn(2, 3, lay.dim, dtype=torch.float64, requires_grad=True)
    whole = apply_blocks(x, Operands(blocks, W), lay, transpose)
    by_order = apply_blocks(x, Operands(blocks), lay, transpose)
    ref = x @ (D.T if transpose else D)
    torch.testing.assert_close(whole, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(by_order, ref, atol=1e-12, rtol=0)
    g = torch.randn_like(ref)
    (gx,) = torch.autograd.grad(whole, x, g)
    torch.testing.assert_close(gx, g @ (D if transpose else D.T), atol=1e-12, rtol=0)


def test_whole_block_gradient_reaches_the_order_blocks():
    lay = BlockLayout(4, (1, 2), 2, 1, 2 * (4 + 6 + 1) + 2)
    blocks = [torch.randn(2, m, m, dtype=torch.float64, requires_grad=True) for m in (4, 6)]
    x = torch.randn(3, lay.dim, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: apply_blocks(x, Operands([a, b], assemble([a, b], lay)), lay), blocks)


def test_route_rule_on_shapes():
    # extra multiply-adds per feature of the whole block, (b^2 - sum_k m_k^2) / b:
    # orders {1, 2}, n = 15 in blocks of 128: 40 -> whole; n = 7 in blocks of 32: 17 -> whole
    assert route_cost.use_whole(128, (15, 105))
    assert route_cost.use_whole(32, (7, 21))
    # orders {1, 2, 3}, n = 8 in blocks of 128: 97 -> by order; {1, 2}, n = 31 in 512: 88
    assert not route_cost.use_whole(128, (8, 28, 56))
    assert not route_cost.use_whole(512, (31, 465))
    assert route_cost.use_whole(10, (10,))
    # the boundary itself: exactly WHOLE_MAX_EXTRA extra per feature is whole, one more is not
    b = route_cost.WHOLE_MAX_EXTRA + 16  # b (b - 48) = 64 * 16 = 32^2
    m = 32
    assert m * m == b * b - route_cost.WHOLE_MAX_EXTRA * b
    assert route_cost.use_whole(b, (m,)) and not route_cost.use_whole(b, (m - 1,))


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("side", ["output", "input"])
def test_layer_output_is_the_dense_map_on_either_route(monkeypatch, whole, side):
    """``(f(x) - b) D + b`` (output side, computed as ``f(x) D + (b - b D)``) and ``f(x D)``
    against the dense ``D``, with a bias far larger than the activations."""
    monkeypatch.setattr(operands, "use_whole", lambda b, sizes: whole)
    torch.manual_seed(0)
    base = nn.Linear(30, 30).double()
    with torch.no_grad():
        base.bias.mul_(1e3)
    layer = perturb(HammingAdapter(base, orders=(1, 2), blocks=2, side=side), scale=0.5)
    D = layer.hamming["default"].dense(torch.float64)
    x = torch.randn(5, 30, dtype=torch.float64)
    W0, b = base.weight, base.bias
    want = (x @ W0.T) @ D + b if side == "output" else (x @ D) @ W0.T + b
    torch.testing.assert_close(layer(x), want, atol=1e-9, rtol=1e-12)


@pytest.mark.parametrize("whole", [True, False])
def test_identity_at_init_is_bit_exact_with_a_large_bias(monkeypatch, whole):
    monkeypatch.setattr(operands, "use_whole", lambda b, sizes: whole)
    torch.manual_seed(0)
    base = nn.Linear(48, 40)
    with torch.no_grad():
        base.bias.mul_(1e4)
    layer = HammingAdapter(base, orders=(1, 2), blocks=2)
    x = torch.randn(7, 48)
    assert torch.equal(layer(x), base(x))


@pytest.mark.parametrize("side", ["output", "input"])
def test_whole_route_compiles_fullgraph_forward_and_backward(monkeypatch, side):
    monkeypatch.setattr(operands, "use_whole", lambda b, sizes: True)
    torch.manual_seed(0)
    layer = perturb(HammingAdapter(nn.Linear(30, 30), orders=(1, 2), blocks=2, side=side))
    x = torch.randn(4, 30)
    eager = layer(x)
    (g_eager,) = torch.autograd.grad(eager.square().sum(), layer.hamming["default"].weight)
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    (g_out,) = torch.autograd.grad(out.square().sum(), layer.hamming["default"].weight)
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_out, g_eager, atol=1e-5, rtol=1e-4)


def test_whole_route_on_the_meta_device(monkeypatch):
    monkeypatch.setattr(operands, "use_whole", lambda b, sizes: True)
    layer = HammingAdapter(nn.Linear(30, 30), orders=(1, 2), blocks=2).to("meta")
    y = layer(torch.randn(4, 30, device="meta"))
    y.sum().backward()
    assert y.shape == (4, 30) and layer.hamming["default"].weight.grad.device.type == "meta"


def test_inference_cache_keeps_the_whole_blocks_assembled():
    torch.manual_seed(0)
    layer = perturb(HammingAdapter(nn.Linear(384, 384).double(), orders=(1, 2), blocks=3))
    rot = layer.hamming["default"]
    x = torch.randn(5, 384, dtype=torch.float64)
    train = layer(x)
    layer.eval()
    with torch.no_grad():
        first = layer(x)
        cached = rot.cached_operands(torch.float64)
        assert isinstance(cached, Operands) and cached.whole.shape == (3, 128, 128)
        assert rot.cached_operands(torch.float64) is cached  # kept, not assembled again
        torch.testing.assert_close(first, train, atol=1e-12, rtol=0)
        rot.weight.add_(0.1)  # a parameter change rebuilds
        assert rot.cached_operands(torch.float64) is not cached
