"""Circuit layer against PennyLane (the independent reference) and against its own promises."""
from math import comb

import pytest
import torch
from hypothesis import given, settings, strategies as st

import qiadapters as qa
from qiadapters import pennylane as qpl

LAYOUTS = ["pyramid", "brick", "x", "butterfly"]
GATES = ["rbs", "fbs"]


def sizes(layout):
    return [2, 4, 8] if layout == "butterfly" else list(range(2, 9))


CASES = [(lay, g, n) for lay in LAYOUTS for g in GATES for n in sizes(lay)]


def angles(circuit, seed=0, *batch):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, circuit.n_params, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("layout,gate,n", CASES)
def test_blocks_equal_pennylane_matrix(layout, gate, n):
    c = qa.Circuit.from_layout(layout, n, gate=gate)
    theta = angles(c, n)
    full = torch.as_tensor(qpl.matrix(c, theta))
    for k in range(n + 1):
        idx = torch.tensor([qa.circuits.basis.state_index(n, s) for s in qa.hamming_basis(n, k)])
        ref = full[idx][:, idx].real
        torch.testing.assert_close(c.hamming_block(theta, k), ref, atol=1e-10, rtol=0)
    # the whole unitary is block diagonal over Hamming weights: nothing leaks between weights
    weights = torch.tensor([bin(i).count("1") for i in range(2 ** n)])
    assert full[weights[:, None] != weights[None, :]].abs().max() < 1e-12


@pytest.mark.parametrize("layout,gate,n", [c for c in CASES if c[2] <= 5])
def test_blocks_equal_pennylane_state_vectors(layout, gate, n):
    c = qa.Circuit.from_layout(layout, n, gate=gate)
    theta = angles(c, 100 + n)
    for k in range(n + 1):
        torch.testing.assert_close(c.hamming_block(theta, k), qpl.state_columns(c, theta, k),
                                   atol=1e-10, rtol=0)


@pytest.mark.parametrize("layout,gate,n", CASES)
def test_compound_exact_flag(layout, gate, n):
    c = qa.Circuit.from_layout(layout, n, gate=gate)
    assert c.compound_exact == (gate == "fbs" or layout != "butterfly" or n == 2)


@pytest.mark.parametrize("layout,gate,n", [c for c in CASES if c[1] == "fbs" or c[0] != "butterfly"])
def test_compound_identity_where_it_holds(layout, gate, n):
    c = qa.Circuit.from_layout(layout, n, gate=gate)
    theta = angles(c, 7, 3)
    U = c.hamming_block(theta, 1)
    for k in range(n + 1):
        torch.testing.assert_close(c.hamming_block(theta, k), qa.compound(U, k), atol=1e-10,
                                   rtol=0)


@pytest.mark.parametrize("n", [4, 8])
def test_rbs_butterfly_is_not_a_compound(n):
    c = qa.Circuit.butterfly(n, gate="rbs")
    theta = angles(c, 3)
    U = c.hamming_block(theta, 1)
    assert (c.hamming_block(theta, 2) - qa.compound(U, 2)).abs().max() > 1e-2
    # ... and the FBS butterfly with the same angles has the same weight-1 block but obeys it
    f = qa.Circuit.butterfly(n, gate="fbs")
    torch.testing.assert_close(f.hamming_block(theta, 1), U)
    torch.testing.assert_close(f.hamming_block(theta, 2), qa.compound(U, 2), atol=1e-12, rtol=0)


@pytest.mark.parametrize("layout,gate,n", [c for c in CASES if c[2] in (3, 4, 6, 8)])
def test_blocks_orthogonal_and_identity_at_zero(layout, gate, n):
    c = qa.Circuit.from_layout(layout, n, gate=gate)
    theta = angles(c, 5, 2)
    for k in range(n + 1):
        B = c.hamming_block(theta, k)
        eye = torch.eye(comb(n, k), dtype=B.dtype)
        torch.testing.assert_close(B @ B.transpose(-1, -2), eye.expand_as(B), atol=1e-12, rtol=0)
        torch.testing.assert_close(c.hamming_block(torch.zeros(c.n_params, dtype=torch.float64),
                                                   k), eye, atol=0, rtol=0)


@pytest.mark.parametrize("layout,gate", [(lay, g) for lay in LAYOUTS for g in GATES])
def test_gradients_equal_pennylane(layout, gate):
    n, k = 4, 2
    c = qa.Circuit.from_layout(layout, n, gate=gate)
    weights = torch.randn(comb(n, k), comb(n, k), dtype=torch.float64,
                          generator=torch.Generator().manual_seed(1))
    theta = angles(c, 11).requires_grad_(True)
    (c.hamming_block(theta, k) * weights).sum().backward()
    ours = theta.grad.clone()
    theta.grad = None
    (qpl.hamming_block(c, theta, k) * weights).sum().backward()
    torch.testing.assert_close(ours, theta.grad, atol=1e-8, rtol=0)


def test_from_gates_order_and_matrix_convention():
    theta = torch.tensor([0.3, -1.1], dtype=torch.float64)
    c = qa.Circuit.from_gates(3, [(2, 0), (0, 1)])
    c_, s_ = torch.cos(theta), torch.sin(theta)
    g0 = torch.eye(3, dtype=torch.float64)  # basis (e_2, e_0) as listed: [[c, s], [-s, c]]
    g0[2, 2], g0[2, 0], g0[0, 2], g0[0, 0] = c_[0], s_[0], -s_[0], c_[0]
    g1 = torch.eye(3, dtype=torch.float64)
    g1[0, 0], g1[0, 1], g1[1, 0], g1[1, 1] = c_[1], s_[1], -s_[1], c_[1]
    torch.testing.assert_close(c.hamming_block(theta, 1), g1 @ g0)  # first gate acts first
    torch.testing.assert_close(qpl.hamming_block(c, theta, 1), g1 @ g0)


def test_shared_parameters_and_batching():
    c = qa.Circuit.from_gates(4, [(0, 1), (1, 2), (2, 3), (0, 1)], params=[0, 1, 0, 1])
    assert c.n_params == 2
    theta = angles(c, 2, 5, 3)
    out = c.hamming_block(theta, 2)
    assert out.shape == (5, 3, 6, 6)
    torch.testing.assert_close(out[4, 1], c.hamming_block(theta[4, 1], 2))
    torch.testing.assert_close(out[2, 0], qpl.hamming_block(c, theta[2, 0], 2), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", range(2, 10))
def test_layout_gate_counts_and_depths(n):
    assert len(qa.Circuit.pyramid(n).gates) == n * (n - 1) // 2
    assert qa.Circuit.pyramid(n).depth == 2 * n - 3
    assert len(qa.Circuit.brick(n).gates) == n * (n - 1) // 2
    if n >= 3:
        assert qa.Circuit.brick(n, depth=3).depth == 3
    assert len(qa.Circuit.x(n).gates) == 2 * n - 3
    if n % 2 == 0:
        assert qa.Circuit.x(n).depth == n - 1
    if n & (n - 1) == 0:
        b = qa.Circuit.butterfly(n)
        assert len(b.gates) == n // 2 * (n.bit_length() - 1)
        assert b.depth == n.bit_length() - 1
    for layout in ("pyramid", "brick", "x"):
        assert qa.Circuit.from_layout(layout, n).nearest_neighbour


@pytest.mark.parametrize("layout,gate,n", CASES)
def test_layers_act_on_disjoint_wires_and_cover_all_gates(layout, gate, n):
    c = qa.Circuit.from_layout(layout, n, gate=gate)
    assert sum(len(layer) for layer in c.layers) == len(c.gates)
    for layer in c.layers:
        wires = [w for g in layer for w in g.wires]
        assert len(wires) == len(set(wires))


def test_hamming_basis_is_pennylane_order():
    basis = qa.hamming_basis(4, 2)
    assert basis == ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    idx = [qa.circuits.basis.state_index(4, s) for s in basis]
    assert idx == sorted(idx, reverse=True) and idx[0] == 0b1100


def test_dtype_float32_and_str_diagram():
    c = qa.Circuit.butterfly(4, gate="fbs")
    B = c.hamming_block(torch.randn(c.n_params), 2)
    assert B.dtype == torch.float32
    text = str(c)
    assert text.count("\n") == 3 and "F0" in text and "│" in text
    assert "butterfly" in repr(c)


def test_circuit_is_immutable_hashable_and_picklable():
    import pickle

    c = qa.Circuit.pyramid(5)
    assert pickle.loads(pickle.dumps(c)) == c and hash(c) == hash(qa.Circuit.pyramid(5))
    with pytest.raises(AttributeError):
        c.gates[0].wires = (1, 2)


@pytest.mark.parametrize("call,match", [
    (lambda: qa.Circuit.pyramid(1), "n=1"),
    (lambda: qa.Circuit.butterfly(6), "power of two"),
    (lambda: qa.Circuit.from_layout("spiral", 4), "layout='spiral'.*pyramid"),
    (lambda: qa.Circuit.pyramid(4, gate="cnot"), "gate='cnot'.*rbs"),
    (lambda: qa.Circuit.from_gates(3, [(0, 3)]), "wires=3"),
    (lambda: qa.Circuit.from_gates(3, [(1, 1)]), r"wires=\(1, 1\)"),
    (lambda: qa.Circuit.pyramid(3).hamming_block(torch.zeros(3), 4), "k=4"),
    (lambda: qa.Circuit.pyramid(3).hamming_block(torch.zeros(2), 1), r"theta has shape \(2,\)"),
    (lambda: qa.Circuit.pyramid(3).hamming_block(torch.zeros(3, dtype=torch.long), 1), "dtype"),
    (lambda: qa.hamming_basis(3, 5), "k=5"),
    (lambda: qa.compound(torch.zeros(3, 4), 1), "square"),
])
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ------------------------------------------------------------------ compound matrices
@pytest.mark.parametrize("n", range(1, 7))
def test_compound_equals_minors_reference(n):
    U = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    for k in range(n + 1):
        torch.testing.assert_close(qa.compound(U, k), qa.compound_by_minors(U, k), atol=1e-10,
                                   rtol=1e-10)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_compound_routes_agree_batched(k):
    from qiadapters.circuits.compound import compound_det, compound_laplace, compounds

    U = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    ref = compound_det(U, k)
    torch.testing.assert_close(qa.compound(U, k), ref, atol=1e-10, rtol=0)
    if k >= 3:
        torch.testing.assert_close(compound_laplace(U, k), ref, atol=1e-10, rtol=0)
    for got, want in zip(compounds(U, (3, 1, k, 2)), (3, 1, k, 2)):
        torch.testing.assert_close(got, compound_det(U, want) if want > 1 else U, atol=1e-10,
                                   rtol=0)
    torch.testing.assert_close(qa.compound(U, k)[1, 2], qa.compound_by_minors(U[1, 2], k))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), data=st.data(), seed=st.integers(0, 2**16))
def test_cauchy_binet(n, data, seed):
    k = data.draw(st.integers(0, n))
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, dtype=torch.float64, generator=gen)
    B = torch.randn(n, n, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(qa.compound(A @ B, k), qa.compound(A, k) @ qa.compound(B, k),
                               atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_compound_gradcheck(k):
    U = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u: qa.compound(u, k), (U,))
    assert torch.autograd.gradgradcheck(lambda u: qa.compound(u, k), (U,))


@pytest.mark.parametrize("n", [3, 6, 21])
def test_pair_minor_routes_agree_with_minors_and_gradcheck(n):
    from qiadapters.circuits.compound import (PairMinorsByRow, PairMinorsFlat, compound_det,
                                              compound_tables, pair_minors)

    U = torch.randn(2, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    first, second, flat = compound_tables(n, 2, U.device)
    ref = compound_det(U, 2)
    torch.testing.assert_close(pair_minors(U, first, second), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(PairMinorsByRow.apply(U, first, second), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(PairMinorsFlat.apply(U, flat), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(qa.compound(U, 2), ref, atol=1e-12, rtol=0)
    if n <= 6:
        Ug = U.clone().requires_grad_()
        for route in (pair_minors, PairMinorsByRow.apply,
                      lambda u, *_: PairMinorsFlat.apply(u, flat)):
            assert torch.autograd.gradcheck(lambda u: route(u, first, second), (Ug,))
            assert torch.autograd.gradgradcheck(lambda u: route(u, first, second), (Ug,))
    else:  # the dispatching and the flat route at large n: gradients against determinants
        Ug = U.clone().requires_grad_()
        G = torch.randn_like(ref)
        (want,) = torch.autograd.grad(compound_det(Ug, 2), Ug, G)
        for route in (lambda u: qa.compound(u, 2), lambda u: PairMinorsFlat.apply(u, flat)):
            (got,) = torch.autograd.grad(route(Ug), Ug, G)
            torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_flat_pair_minors_gradient_kept_regathered_and_in_a_graph(monkeypatch):
    """The accelerators' route (:class:`PairMinorsFlat`) on a CPU: its gradient with ``G``
    kept from the forward, gathered again (nothing kept), and in a backward that builds a
    graph, each against the determinants' (float64, 1e-12)."""
    import importlib

    compound = importlib.import_module("qiadapters.circuits.compound")
    n = 7
    U = torch.randn(5, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    U.requires_grad_()
    flat = compound.compound_tables(n, 2)[2]
    G = torch.randn(5, 21, 21, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    (want,) = torch.autograd.grad(compound.compound_det(U, 2), U, G)
    (kept,) = torch.autograd.grad(compound.PairMinorsFlat.apply(U, flat), U, G)
    (graph,) = torch.autograd.grad(compound.PairMinorsFlat.apply(U, flat), U, G,
                                   create_graph=True)
    monkeypatch.setattr(compound, "SAVED_OPERANDS_MAX_BYTES", 0)
    (again,) = torch.autograd.grad(compound.PairMinorsFlat.apply(U, flat), U, G)
    for got in (kept, graph.detach(), again):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def _compound_and_grads(U, k, G):
    """``C_k(U)`` and ``d<G, C_k(U)>/dU`` three ways: the plain backward (operands kept from
    the forward), a backward that builds a graph (operands gathered again, as for a double
    backward) and, for k = 2, with nothing kept (over :data:`SAVED_OPERANDS_MAX_BYTES`)."""
    import importlib

    compound = importlib.import_module("qiadapters.circuits.compound")
    Ug = U.clone().requires_grad_()
    out = qa.compound(Ug, k)
    (plain,) = torch.autograd.grad(out, Ug, G)
    (graph,) = torch.autograd.grad(qa.compound(Ug, k), Ug, G, create_graph=True)
    saved, compound.SAVED_OPERANDS_MAX_BYTES = compound.SAVED_OPERANDS_MAX_BYTES, 0
    try:
        (nothing_kept,) = torch.autograd.grad(qa.compound(Ug, k), Ug, G)
    finally:
        compound.SAVED_OPERANDS_MAX_BYTES = saved
    return out.detach(), (plain, graph.detach(), nothing_kept)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 8), data=st.data(), lead=st.sampled_from([(1,), (3,), (2, 2)]),
       seed=st.integers(0, 2**16))
def test_compound_and_its_gradient_equal_the_determinants(n, data, lead, seed):
    """The order-2 gathers and the Laplace steps (float64, orthogonal and general ``U``, a
    batch of blocks) against batched determinants of every minor, values and gradients;
    the backward gives the same gradient bit for bit whether it reads the operands kept from
    the forward or gathers them again."""
    from qiadapters.circuits.compound import compound_det

    k = data.draw(st.integers(2, n - 1))
    gen = torch.Generator().manual_seed(seed)
    U = torch.randn(*lead, n, n, dtype=torch.float64, generator=gen)
    if data.draw(st.booleans()):
        U = torch.linalg.qr(U)[0]  # column-major strides, as the Cayley blocks
    G = torch.randn(*lead, comb(n, k), comb(n, k), dtype=torch.float64, generator=gen)
    out, grads = _compound_and_grads(U, k, G)
    torch.testing.assert_close(out, compound_det(U, k), atol=1e-12, rtol=0)
    Ud = U.clone().requires_grad_()
    (want,) = torch.autograd.grad(compound_det(Ud, k), Ud, G)
    torch.testing.assert_close(grads[0], want, atol=1e-9, rtol=1e-9)
    for other in grads[1:]:
        assert torch.equal(grads[0], other)


@settings(max_examples=30, deadline=None)
@given(lead=st.sampled_from([(), (3,), (2, 5)]), rows=st.integers(1, 40),
       cols=st.integers(1, 40), picks=st.integers(1, 60), seed=st.integers(0, 5))
def test_take_columns_is_a_gather_along_the_last_axis(lead, rows, cols, picks, seed):
    """Both of its routes (index_select on the last axis for small outputs, one gather over
    the flattened last two axes for large ones) against advanced indexing, with gradients."""
    import importlib

    compound = importlib.import_module("qiadapters.circuits.compound")  # the module
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(*lead, rows, cols, dtype=torch.float64, generator=g, requires_grad=True)
    idx = torch.randint(0, cols, (picks,), generator=g)
    for threshold in (0, 10 ** 9):  # every output flat / none
        compound.FLAT_TAKE_MIN_ENTRIES, saved = threshold, compound.FLAT_TAKE_MIN_ENTRIES
        try:
            got = compound.take_columns(t, idx)
        finally:
            compound.FLAT_TAKE_MIN_ENTRIES = saved
        want = t[..., idx]
        assert torch.equal(got, want)
        w = torch.randn(want.shape, dtype=torch.float64, generator=g)
        (a,) = torch.autograd.grad((got * w).sum(), t)
        (b,) = torch.autograd.grad((want * w).sum(), t)
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
