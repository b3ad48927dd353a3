"""Compiled circuits: every route equal to the exact simulation, forward and backward."""
import copy
from math import comb

import pytest
import torch

import qiadapters as qa
from qiadapters.circuits import cache
from qiadapters.circuits.blockdiag import BlockLayout, apply_blocks, dense
from qiadapters.circuits.compiled import product_tree
from qiadapters.circuits.compound import compound_tables, compounds
from qiadapters.circuits.tables import weight1_tables

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
@pytest.mark.parametrize("transpose", [False, True])
def test_apply_blocks_equals_dense_map(layout, gate, n, transpose):
    c, op, theta = setup(layout, gate, n, orders=(1, 2))
    pad, tail = 2, 5
    dim = op.blocks * (sum(comb(n, k) for k in op.orders) + pad) + tail
    layout_ = BlockLayout(n, op.orders, op.blocks, pad, dim)
    D = dense([c.hamming_block(theta, k) for k in op.orders], layout_)
    x = torch.randn(4, 3, dim, dtype=torch.float64).requires_grad_()
    out = apply_blocks(x, op(theta), layout_, transpose=transpose)
    torch.testing.assert_close(out, x @ (D.T if transpose else D), atol=1e-12, rtol=0)
    g = torch.randn_like(out)
    (gx,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(gx, g @ (D if transpose else D.T), atol=1e-12, rtol=0)


def test_weight1_and_compounds_equal_circuit():
    """The weight-1 route, and the compounds of U (the route of the Cayley / expm adapters)."""
    c, op, theta = setup("pyramid", "rbs", 6, orders=(1, 2, 3))
    U = op.weight1(theta)
    torch.testing.assert_close(U, c.hamming_block(theta, 1), atol=1e-13, rtol=0)
    for b, k in zip(compounds(U, op.orders), op.orders):
        torch.testing.assert_close(b, c.hamming_block(theta, k), atol=1e-12, rtol=0)


@pytest.mark.parametrize("layout,gate,n", [("pyramid", "rbs", 4), ("butterfly", "rbs", 4),
                                           ("x", "fbs", 4)])
def test_gradcheck(layout, gate, n):
    c, op, theta = setup(layout, gate, n, blocks=2, orders=(1, 2, 3))
    theta.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: tuple(op(t)), (theta,))
    lay = BlockLayout(n, op.orders, op.blocks, 0, 2 * sum(comb(n, k) for k in op.orders) + 1)
    x = torch.randn(3, lay.dim, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, v: apply_blocks(v, op(t), lay), (theta, x))


@pytest.mark.parametrize("k", [2, 3])
def test_fast_compound_gradcheck_batched(k):
    Q = torch.randn(2, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: qa.compound(q, k), (Q,))


def test_product_tree_order():
    mats = torch.randn(5, 3, 3, dtype=torch.float64)
    want = mats[4] @ mats[3] @ mats[2] @ mats[1] @ mats[0]
    torch.testing.assert_close(product_tree(mats), want)


@pytest.mark.parametrize("layout,gate", [("pyramid", "rbs"), ("butterfly", "rbs")])
def test_torch_compile_fullgraph_matches_eager(layout, gate):
    """Compound and simulation routes trace as one graph, from a cold table cache."""
    c, op, theta = setup(layout, gate, 4, dtype=torch.float32, orders=(1, 2, 3))
    lay = BlockLayout(4, op.orders, op.blocks, 1, 3 * (1 + sum(comb(4, k) for k in op.orders)))
    x = torch.randn(6, lay.dim, dtype=torch.float32)
    cache.clear()
    compiled = torch.compile(lambda t, v: apply_blocks(v, op(t), lay), backend="aot_eager",
                             fullgraph=True)
    torch.testing.assert_close(compiled(theta, x), apply_blocks(x, op(theta), lay),
                               atol=1e-5, rtol=0)
    Q = torch.linalg.qr(torch.randn(3, 5, 5))[0]
    comp = torch.compile(lambda q: qa.compound(q, 2), backend="aot_eager")
    torch.testing.assert_close(comp(Q), qa.compound(Q, 2), atol=1e-6, rtol=0)


def test_compiled_op_tables_come_from_the_one_cache_and_move_with_to():
    c = qa.Circuit.butterfly(4)
    op = c.compile(orders=(1, 2), blocks=2)
    assert list(op.parameters()) == [] and len(list(op.buffers())) > 0
    assert op.state_dict() == {}
    assert op.tables("w1") == cache.tables(weight1_tables, c)  # the very same tensors
    fbs = qa.Circuit.pyramid(5, gate="fbs").compile(orders=(1, 3))
    assert fbs.tables("c3") == compound_tables(5, 3)
    assert fbs.tables("c2") == compound_tables(5, 2)  # the Laplace route reads order 2
    moved = copy.deepcopy(op).to("meta")
    assert {b.device.type for b in moved.buffers()} == {"meta"}
    assert {b.device.type for b in op.buffers()} == {"cpu"}
    with pytest.raises(ValueError, match=r"move it with \.to\(device\)"):
        moved(torch.zeros(2, c.n_params))


def test_mixed_gate_kinds_schedule_only_commuting_gates_together():
    """An RBS gate straddling an FBS gate's span changes the parity that FBS gate reads:
    the two do not commute although their wires are disjoint."""
    from qiadapters import pennylane as qpl
    from qiadapters.circuits.gates import FBS, RBS

    c = qa.Circuit(5, [RBS((2, 4), 0), RBS((2, 4), 1), FBS((0, 3), 2)])
    assert c.depth == 3
    theta = torch.randn(1, 3, dtype=torch.float64)
    op = c.compile(orders=(1, 2, 3), dtype=torch.float64)
    for block, k in zip(op(theta), op.orders):
        ref = qpl.hamming_block(c, theta[0], k)
        torch.testing.assert_close(c.hamming_block(theta[0], k), ref, atol=1e-12, rtol=0)
        torch.testing.assert_close(block[0], ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("call,exc,match", [
    (lambda op: op(torch.zeros(2, 5)), ValueError, r"expected \(blocks, n_params\) = \(3, 6\)"),
    (lambda op: op(torch.zeros(3, 6, dtype=torch.float64)), TypeError, "compiled for"),
    (lambda op: BlockLayout(4, op.orders, 3, 0, 10), ValueError, "dim=10"),
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


def test_the_table_cache_is_bounded_and_held_tables_survive_eviction(monkeypatch):
    cache.clear()
    monkeypatch.setattr(cache, "CACHE_SIZE", 3)
    op = qa.Circuit.pyramid(5).compile(orders=(1, 2, 3), blocks=2, dtype=torch.float64)
    theta = torch.randn(2, op.circuit.n_params, dtype=torch.float64)
    before = op(theta)
    for n in range(6, 12):  # other sizes push the op's entries out
        compound_tables(n, 2)
        assert len(cache._TABLES) <= 3
    for got, want in zip(op(theta), before):  # the op reads its own buffers
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(op(theta)[1], qa.compound(op.weight1(theta), 2), rtol=0, atol=0)
