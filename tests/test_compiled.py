"""Compiled circuits: every route equal to the exact simulation, forward and backward."""
import pytest
import torch

import qiadapters as qa
from qiadapters.circuits.blockdiag import dense
from qiadapters.circuits.compiled import product_tree

CASES = [("pyramid", "rbs", 6), ("pyramid", "fbs", 5), ("brick", "rbs", 7), ("x", "fbs", 6),
         ("x", "rbs", 5), ("butterfly", "rbs", 8), ("butterfly", "fbs", 8), ("butterfly", "rbs", 4)]
ORDERS = (0, 1, 2, 3)


def setup(layout, gate, n, dtype=torch.float64, blocks=3, orders=ORDERS, seed=0):
    c = qa.Circuit.from_layout(layout, n, gate=gate)
    op = c.compile(orders=orders, blocks=blocks, dtype=dtype)
    theta = torch.randn(blocks, c.n_params, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    return c, op, theta


@pytest.mark.parametrize("layout,gate,n", CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_blocks_equal_exact_simulation(layout, gate, n, dtype, tol):
    c, op, theta = setup(layout, gate, n, dtype)
    assert op.compound_route == c.compound_exact
    for block, k in zip(op(theta), op.orders):
        ref = c.hamming_block(theta.double(), k).to(dtype)
        torch.testing.assert_close(block, ref, atol=tol, rtol=0)


@pytest.mark.parametrize("layout,gate,n", CASES)
def test_gradients_equal_exact_simulation(layout, gate, n):
    c, op, theta = setup(layout, gate, n)
    weights = [torch.randn_like(b) for b in op(theta)]
    t1 = theta.clone().requires_grad_()
    sum((b * w).sum() for b, w in zip(op(t1), weights)).backward()
    t2 = theta.clone().requires_grad_()
    sum((c.hamming_block(t2, k) * w).sum() for k, w in zip(op.orders, weights)).backward()
    torch.testing.assert_close(t1.grad, t2.grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("layout,gate,n", CASES)
@pytest.mark.parametrize("route", ["blocks", "gates"])
@pytest.mark.parametrize("transpose", [False, True])
def test_apply_routes_equal_dense_map(layout, gate, n, route, transpose):
    c, op, theta = setup(layout, gate, n, orders=(1, 2))
    pad, tail = 2, 5
    dim = op.blocks * (sum(op.layout_for(10_000).sizes) + pad) + tail
    layout_ = op.layout_for(dim, pad)
    D = dense([c.hamming_block(theta, k) for k in op.orders], layout_)
    x = torch.randn(4, 3, dim, dtype=torch.float64).requires_grad_()
    out = op.apply(theta, x, pad=pad, route=route, transpose=transpose)
    torch.testing.assert_close(out, x @ (D.T if transpose else D), atol=1e-12, rtol=0)
    g = torch.randn_like(out)
    (gx,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(gx, g @ (D if transpose else D.T), atol=1e-12, rtol=0)


def test_from_matrices_equals_compound_and_circuit():
    c, op, theta = setup("pyramid", "rbs", 6, orders=(1, 2, 3))
    U = op.weight1(theta)
    torch.testing.assert_close(U, c.hamming_block(theta, 1), atol=1e-13, rtol=0)
    for b, k in zip(op.from_matrices(U), op.orders):
        torch.testing.assert_close(b, c.hamming_block(theta, k), atol=1e-12, rtol=0)


@pytest.mark.parametrize("layout,gate,n", [("pyramid", "rbs", 4), ("butterfly", "rbs", 4),
                                           ("x", "fbs", 4)])
def test_gradcheck(layout, gate, n):
    c, op, theta = setup(layout, gate, n, blocks=2, orders=(1, 2, 3))
    theta.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: tuple(op(t)), (theta,))
    x = torch.randn(3, op.layout_for(100).active * 2 + 1, dtype=torch.float64, requires_grad=True)
    for route in ("blocks", "gates"):
        assert torch.autograd.gradcheck(lambda t, v: op.apply(t, v, route=route), (theta, x))


@pytest.mark.parametrize("k", [2, 3])
def test_fast_compound_gradcheck_batched(k):
    Q = torch.randn(2, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: qa.compound(q, k), (Q,))


def test_product_tree_order():
    mats = torch.randn(5, 3, 3, dtype=torch.float64)
    want = mats[4] @ mats[3] @ mats[2] @ mats[1] @ mats[0]
    torch.testing.assert_close(product_tree(mats), want)


def test_torch_compile_matches_eager():
    c, op, theta = setup("pyramid", "rbs", 5, dtype=torch.float32, orders=(1, 2))
    x = torch.randn(6, op.layout_for(100).active * 3, dtype=torch.float32)
    compiled = torch.compile(lambda t, v: op.apply(t, v, route="blocks"), backend="aot_eager",
                             fullgraph=False)
    torch.testing.assert_close(compiled(theta, x), op.apply(theta, x, route="blocks"),
                               atol=1e-5, rtol=0)
    Q = torch.linalg.qr(torch.randn(3, 5, 5))[0]
    comp = torch.compile(lambda q: qa.compound(q, 2), backend="aot_eager")
    torch.testing.assert_close(comp(Q), qa.compound(Q, 2), atol=1e-6, rtol=0)


def test_route_cost_model_prefers_blocks_for_many_tokens_and_gates_for_few():
    op = qa.Circuit.pyramid(12).compile(orders=(1, 2), blocks=3)
    assert op.choose_route(4096) == "blocks"
    big = qa.Circuit.brick(40, depth=2).compile(orders=(1, 2), blocks=1)
    assert big.choose_route(1) == "gates"


def test_compiled_op_has_no_parameters_and_moves_with_to():
    op = qa.Circuit.butterfly(4).compile(orders=(1, 2), blocks=2)
    assert list(op.parameters()) == [] and len(list(op.buffers())) > 0
    assert op.state_dict() == {} or all(not v.is_floating_point() for v in op.state_dict().values())


@pytest.mark.parametrize("call,exc,match", [
    (lambda op: op(torch.zeros(2, 5)), ValueError, r"expected \(blocks, n_params\) = \(3, 6\)"),
    (lambda op: op(torch.zeros(3, 6, dtype=torch.float64)), TypeError, "compiled for"),
    (lambda op: op.apply(torch.zeros(3, 6), torch.zeros(2, 30), route="magic"), ValueError,
     "route='magic'"),
    (lambda op: op.apply(torch.zeros(3, 6), torch.zeros(2, 10)), ValueError, "dim=10"),
    (lambda op: op.from_matrices(torch.zeros(3, 3, 3)), ValueError, r"\(3, 4, 4\)"),
])
def test_bad_input(call, exc, match):
    op = qa.Circuit.pyramid(4).compile(orders=(1, 2), blocks=3)
    with pytest.raises(exc, match=match):
        call(op)


@pytest.mark.parametrize("kwargs,match", [({"orders": (1, 5)}, "orders=5"),
                                          ({"blocks": 0}, "blocks=0"),
                                          ({"orders": (1, 1)}, "duplicates")])
def test_bad_compile_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        qa.Circuit.pyramid(4).compile(**kwargs)
