"""The mode-wise route (a compound applied without building it) against the built block and
the determinant-by-determinant reference, the cost model that chooses between them, and the
route inside a Hamming adapter (gradients to the angles, input side, compile, autocast, the
inference cache, merging)."""
from math import comb

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from qiadapters import HammingAdapter
from qiadapters.circuits import apply, operands
from qiadapters.circuits.blockdiag import ModeWise, apply_block
from qiadapters.circuits.compound import compound, compound_by_minors
from qiadapters.circuits.modewise import apply_compound, mode_tables, permutation_signs
from qiadapters.circuits.route_cost import block_cost, costs_for, mode_cost, use_modewise
from qiadapters.testing import perturb

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _case(n, k, tokens, r, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(r, n, n, generator=gen, dtype=torch.float64))[0]
    x = torch.randn(tokens, r, comb(n, k), generator=gen, dtype=torch.float64)
    return U.to(dtype).requires_grad_(), x.to(dtype).requires_grad_()


def _max_err(a, b):
    return float((a.detach().double() - b.detach().double()).abs().max())


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 7), k=st.integers(2, 4), tokens=st.integers(1, 4),
       r=st.integers(1, 3), transpose=st.booleans(),
       dtype=st.sampled_from([torch.float64, torch.float32]), seed=st.integers(0, 99))
def test_modewise_equals_block_route_and_minors(n, k, tokens, r, transpose, dtype, seed):
    k = min(k, n - 1)
    U, x = _case(n, k, tokens, r, dtype, seed)
    g = torch.randn(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    mode = apply_compound(x, U, k, mode_tables(n, k), transpose)
    block = apply_block(x, compound(U, k), transpose)
    minors = torch.stack([compound_by_minors(u, k) for u in U.detach()])
    reference = apply_block(x.detach(), minors, transpose)
    tol = TOL[dtype]
    assert _max_err(mode, block) < tol
    assert _max_err(mode, reference) < tol
    gx_mode, gU_mode = torch.autograd.grad(mode, (x, U), g)
    gx_block, gU_block = torch.autograd.grad(block, (x, U), g)
    assert _max_err(gx_mode, gx_block) < tol
    assert _max_err(gU_mode, gU_block) < tol * 10  # sums of k products of U entries
    # the input gradient is the transposed map: independent of the compound routes
    assert _max_err(gx_mode, apply_block(g, minors, not transpose)) < tol


def test_signs_and_tables_shapes():
    assert permutation_signs(3) == (1, -1, -1, 1, 1, -1)
    high, low = mode_tables(5, 3)
    assert high.shape == low.shape == (6, comb(5, 3))


def test_modewise_handles_leading_dims_shared_u_and_no_tokens():
    n, k, r = 6, 2, 3
    U, _ = _case(n, k, 1, 1, torch.float64, 0)
    x = torch.randn(2, 3, r, comb(n, k), dtype=torch.float64)
    got = apply_compound(x, U, k, mode_tables(n, k))
    want = apply_block(x, compound(U, k).expand(r, -1, -1))
    assert got.shape == x.shape and _max_err(got, want) < 1e-12
    empty = x[:0]
    assert apply_compound(empty, U, k, mode_tables(n, k)).shape == empty.shape


# ---------------------------------------------------------------------------- cost model
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_cost_model_extremes(device):
    assert use_modewise(1, 200, 2, device)               # one token, huge block: never build
    assert not use_modewise(10 ** 6, 6, 2, device)       # many tokens, tiny block: build it
    assert not use_modewise(10 ** 6, 6, 2, device, built=True)
    assert not use_modewise(1, 40, 1, device)            # order 1: the block is U itself
    assert not use_modewise(1, 5, 5, device)             # k = n: a determinant
    # a block kept by the inference cache costs nothing to build: only application counts
    assert use_modewise(64, 200, 2, device) and not use_modewise(64, 12, 2, device, built=True)
    # order 3 is cheaper built as soon as there are a few tokens
    assert not use_modewise(4096, 10, 3, device)


def test_cost_model_on_cpu_builds_nothing_for_few_tokens_on_large_blocks():
    assert use_modewise(1, 40, 2, "cpu") and use_modewise(64, 40, 2, "cpu")


def test_cost_model_on_cuda_follows_the_h200_measurement():
    """Launch-bound up to n = 44 and 2048 tokens: the block route was as fast or faster in
    every cell measured (``benchmarks.route_costs --device cuda``), small token counts too."""
    for n in (6, 10, 15, 22, 31, 44):
        for tokens in (16, 256, 2048):
            assert not use_modewise(tokens, n, 2, "cuda"), (n, tokens)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_cost_model_is_linear_in_blocks_and_tokens_past_its_fixed_cost(device):
    c = costs_for(device)
    mode = lambda t, r=1: mode_cost(t, 15, 2, device, blocks=r) - c.launch_mode  # noqa: E731
    block = lambda t, r=1: (block_cost(t, 15, 2, device, built=True, blocks=r)  # noqa: E731
                            - c.launch_block)
    assert mode(20, 3) == pytest.approx(6 * mode(10))
    assert block(10, 2) == pytest.approx(2 * block(10))
    assert mode_cost(0, 15, 2, device, blocks=5) == c.launch_mode
    assert block_cost(0, 15, 2, device, built=True, blocks=5) == c.launch_block


def test_cost_model_on_cpu_weighs_a_layers_blocks_against_the_fixed_costs():
    """Few tokens on a layer of small blocks: the mode-wise route's fixed cost (about three
    times as many operations as the block route) outweighs building the blocks; with large
    blocks building still loses (measured in a MiniLM step, ``benchmarks/speed/notes.md``)."""
    assert not use_modewise(32, 10, 2, "cpu", blocks=6)    # blocks of 64: build them
    assert not use_modewise(32, 15, 2, "cpu", blocks=3)    # blocks of 128: build them
    assert use_modewise(32, 31, 2, "cpu", blocks=3)        # n = 31 (the FFN's 3 blocks)
    # the choice is per layer: the fixed costs are paid once for all r blocks
    assert not use_modewise(16, 15, 2, "cpu", blocks=1) and use_modewise(16, 15, 2, "cpu", blocks=48)


# ---------------------------------------------------------------------------- in an adapter
@pytest.fixture
def route(monkeypatch):
    """``route(True)`` forces every order >= 2 mode-wise, ``route(False)`` built."""
    def force(mode: bool):
        monkeypatch.setattr(operands, "use_modewise", lambda t, n, k, d, built=False,
                            blocks=1: mode and 2 <= k < n)
    return force


def _layer(side="output", dtype=torch.float64, orders=(1, 2, 3), **options):
    torch.manual_seed(0)
    layer = HammingAdapter(nn.Linear(40, 36), orders=orders, blocks=2, side=side, **options)
    return perturb(layer.to(dtype), scale=0.4, seed=1)


@pytest.mark.parametrize("side", ["output", "input"])
@pytest.mark.parametrize("parametrization", ["cayley", "expm"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adapter_forward_and_angle_gradients_agree(route, side, parametrization, dtype):
    layer = _layer(side, dtype, parametrization=parametrization)
    x = torch.randn(3, 5, 40, dtype=dtype, requires_grad=True)
    results = []
    for mode in (True, False):
        route(mode)
        y = layer(x)
        grads = torch.autograd.grad(y.square().sum(), [x] + list(layer.hamming.parameters()))
        results.append((y, grads))
    (y_mode, g_mode), (y_block, g_block) = results
    tol = TOL[dtype]
    assert _max_err(y_mode, y_block) < tol * 10
    for a, b in zip(g_mode, g_block):
        assert _max_err(a, b) < tol * 100 * (1 + float(b.abs().max()))


def test_shared_blocks_and_order_pieces_with_pad(route):
    layer = _layer(orders=(2,), share_blocks=True)
    x = torch.randn(7, 40, dtype=torch.float64)
    route(True)
    mode = layer(x)
    route(False)
    assert _max_err(mode, layer(x)) < 1e-12


@pytest.mark.parametrize("side", ["output", "input"])
def test_merge_builds_the_blocks_and_matches_the_mode_route(route, monkeypatch, side):
    layer = _layer(side, dtype=torch.float64)
    x = torch.randn(4, 40, dtype=torch.float64)
    route(True)
    with torch.no_grad():
        y = layer(x)
        monkeypatch.setattr(apply, "apply_compound", None)  # merging must not use it
        layer.merge()
        merged = layer.base_layer(x)
        layer.unmerge()
    assert _max_err(y, merged) < 1e-12


@pytest.mark.parametrize("whole", [False, True])
def test_inference_cache_keeps_built_blocks_and_both_routes_agree(route, monkeypatch, whole):
    monkeypatch.setattr(operands, "use_whole", lambda b, sizes: whole)
    layer = _layer(dtype=torch.float64).eval()
    rot = layer.hamming["default"]
    x = torch.randn(4, 40, dtype=torch.float64)
    with torch.no_grad():
        route(True)
        mode = layer(x)
        if whole:  # built blocks go the block route, and are then kept assembled
            rot.clear_block_cache()
            route(False)
            assert _max_err(layer(x), mode) < 1e-12
            assert rot.cached_operands(torch.float64).whole.shape == (2, 18, 18)
            return
        cached = rot.cached_operands(torch.float64)
        assert cached.built is not None and len(cached.built) == 3
        route(False)
        assert _max_err(layer(x), mode) < 1e-12


def test_operands_are_the_weight_one_blocks_and_build_on_demand(route):
    rot = _layer(dtype=torch.float64).hamming["default"]
    n = rot.block_layout.n
    # n = 4: every block is tiny, so the cost model builds them all, even for one token
    ops = rot.operands(torch.float64).operands(tokens=1, device_type="cpu")
    assert [type(o) for o in ops] == [torch.Tensor] * 3
    route(True)
    ops = rot.operands(torch.float64).operands(tokens=1, device_type="cpu")
    assert [type(o) for o in ops] == [torch.Tensor, ModeWise, ModeWise]
    assert ops[1].U.shape == (2, n, n) and ops[2].k == 3


def test_fullgraph_compile_and_autocast(route):
    route(True)
    layer = _layer(dtype=torch.float32, orders=(1, 2))
    x = torch.randn(3, 40)
    eager = layer(x)
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-5)
    out.square().sum().backward()
    assert all(p.grad is not None for p in layer.hamming.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer(x)
    assert _max_err(low.float(), eager) < 5e-2 * float(eager.abs().max())
