"""The output side's map ``(y - c) D + c`` as one autograd node that keeps its output
(``qiadapters.circuits.about_point``): values and every gradient against the dense ``D``
(``torch.block_diag`` of compounds by minors) and against autograd through ``apply_blocks``,
over sizes, orders, pads, tails and both routes; higher-order gradients of a layer against the
plain route; and what the backward keeps."""
import os
import sys
from math import comb

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from qiadapters import HammingAdapter
from qiadapters.circuits.about_point import apply_about, supports
from qiadapters.circuits.blockdiag import (BlockLayout, ModeWise, Operands, apply_blocks,
                                           assemble, dense)
from qiadapters.circuits.compound import compound_by_minors
from qiadapters.testing import perturb

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import random_orthogonal  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 6), orders=st.sampled_from([(1,), (2,), (1, 2), (1, 2, 3), (2, 3)]),
       r=st.integers(1, 3), pad=st.integers(0, 3), tail=st.integers(0, 4),
       whole=st.booleans(), center=st.booleans(), seed=st.integers(0, 10))
def test_map_and_gradients_equal_the_dense_reference(n, orders, r, pad, tail, whole, center,
                                                     seed):
    orders = tuple(k for k in orders if k < n)
    U = random_orthogonal(r, n, seed)
    blocks = [torch.stack([compound_by_minors(u, k) for u in U]).requires_grad_()
              for k in orders]
    lay = BlockLayout(n, orders, r, pad, r * (sum(comb(n, k) for k in orders) + pad) + tail)
    g = torch.Generator().manual_seed(seed + 1)
    y = torch.randn(2, 3, lay.dim, dtype=torch.float64, generator=g, requires_grad=True)
    c = (100 * torch.randn(lay.dim, dtype=torch.float64, generator=g)).requires_grad_() \
        if center else None
    ops = Operands([], assemble(blocks, lay)) if whole else Operands(list(blocks))
    z = apply_about(y, c, ops, lay)
    D = dense(blocks, lay)
    shift = 0 if c is None else c
    ref = (y - shift) @ D + shift
    torch.testing.assert_close(z, ref, atol=1e-10, rtol=1e-12)
    dz = torch.randn(z.shape, dtype=torch.float64, generator=g)
    inputs = [y, *blocks] + ([c] if center else [])
    got = torch.autograd.grad(z, inputs, dz)
    want = torch.autograd.grad(ref, inputs, dz)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-10)


def test_identity_map_returns_the_input_bit_for_bit():
    lay = BlockLayout(4, (1, 2), 2, 2, 2 * 12 + 3)
    eye = [torch.eye(m).expand(2, m, m) for m in (4, 6)]
    y = torch.randn(5, lay.dim) * 1e-3
    c = torch.full((lay.dim,), 1e4)
    for ops in (Operands(eye), Operands([], assemble(eye, lay))):
        assert torch.equal(apply_about(y + c, c, ops, lay), y + c)


def test_gradient_of_frozen_blocks_is_not_computed_and_inputs_without_grad_get_none():
    lay = BlockLayout(3, (1,), 1, 0, 3)
    B = torch.linalg.qr(torch.randn(1, 3, 3))[0]
    y = torch.randn(4, 3, requires_grad=True)
    c = torch.randn(3)
    z = apply_about(y, c, Operands([B]), lay)
    (gy,) = torch.autograd.grad(z.sum(), [y])
    torch.testing.assert_close(gy, torch.ones(4, 3) @ B[0].T)


def test_refuses_an_order_applied_modewise():
    U = torch.eye(4).expand(1, 4, 4)
    ops = Operands([U, ModeWise(U, 2, ())])
    assert not supports(ops)
    with pytest.raises(ValueError, match="mode-wise"):
        apply_about(torch.randn(2, 10), None, ops, BlockLayout(4, (1, 2), 1, 0, 10))


def _layer(orders, blocks, bias=True):
    torch.manual_seed(0)
    layer = HammingAdapter(nn.Linear(40, 40, bias=bias).double(), orders=orders,
                           blocks=blocks).double()
    perturb(layer, scale=0.3)
    return layer


@pytest.mark.parametrize("orders,blocks,bias", [((1, 2), 2, True), ((1, 2, 3), 1, True),
                                                ((1, 2), 2, False)])
def test_layer_second_order_gradients_equal_the_plain_route(orders, blocks, bias):
    layer = _layer(orders, blocks, bias)
    p = layer.hamming["default"].weight
    x = torch.randn(3000, 40, dtype=torch.float64, requires_grad=True)  # block route
    v = torch.randn(p.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    results = []
    for keep in (True, False):
        z = layer._rotate_output(layer.base_layer(x), ["default"], keep_output=keep)
        loss = (z.sin() ** 2).sum()
        gp, gx = torch.autograd.grad(loss, (p, x), create_graph=True)
        hv = torch.autograd.grad((gp * v).sum() + gx.pow(2).sum(), (p, x))
        results.append((z, gp, gx, *hv))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_layer_keeps_its_output_not_the_base_output():
    layer = _layer((1, 2), 2).float()
    seen, base_out = set(), []
    layer.base_layer.register_forward_hook(lambda m, i, o: base_out.append(o))
    x = torch.randn(3000, 40, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: seen.add(t.untyped_storage().data_ptr()) or t, lambda t: t):
        out = layer(x)
    assert out.untyped_storage().data_ptr() in seen
    assert base_out[0].untyped_storage().data_ptr() not in seen


def test_autocast_leaves_the_map_in_the_adapter_dtype():
    """Under bf16 autocast the node computes in float32 (the adapter's dtype): the same output
    and angle gradient as without autocast (backward outside the autocast region, as
    PyTorch recommends; the plain expression's products would run in bf16, ~10 % off here)."""
    torch.manual_seed(0)
    layer = perturb(HammingAdapter(nn.Linear(64, 64), orders=(1, 2), block_size=32), scale=0.3)
    p = layer.hamming["default"].weight
    x = torch.randn(300, 64)
    y = layer.base_layer(x)
    ref = layer._rotate_output(y, ["default"])
    (g_ref,) = torch.autograd.grad(ref.square().sum(), p)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer._rotate_output(y, ["default"])
        assert out.dtype == torch.float32 and out.grad_fn is not None
    (g,) = torch.autograd.grad(out.square().sum(), p)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g, g_ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 base output comes back bf16
        low = layer(x)
    assert low.dtype == torch.bfloat16
    (g_low,) = torch.autograd.grad(low.float().square().sum(), p)
    assert float((g_low - g_ref).norm() / g_ref.norm()) < 5e-2
