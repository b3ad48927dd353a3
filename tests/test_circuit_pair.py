"""The circuit-pair parametrization's compiled op: a real submodule that moves, copies and
compiles with its parent, and saves nothing beyond the two angle sets."""
import copy
import io

import pytest
import torch
from torch import nn

from qiadapters.adapters.hamming import HammingAdapter
from qiadapters.adapters.hamming.parametrizations import CircuitPair
from qiadapters.circuits import cache
from qiadapters.circuits.blockdiag import BlockLayout
from qiadapters.circuits.compiled import CompiledCircuit

CASES = [("pyramid", "rbs"), ("butterfly", "rbs"), ("butterfly", "fbs")]  # compound / simulation


def pair(layout="pyramid", gate="rbs", share=False):
    torch.manual_seed(0)
    p = CircuitPair(BlockLayout(4, (1, 2), 2, 1, 25), layout=layout, gate=gate, share_blocks=share)
    with torch.no_grad():  # away from D = I, so a wrong block shows
        p.theta_mirror.add_(0.3 * torch.randn_like(p.theta_mirror))
    return p


def reference(p, dtype=torch.float64):
    """``V_k(a) V_k(b)^T`` from the circuit's exact simulation."""
    out = []
    for k in p.block_layout.orders:
        a = p.circuit.hamming_block(p.theta.to(dtype), k)
        b = p.circuit.hamming_block(p.theta_mirror.to(dtype), k)
        out.append(p._per_block(a @ b.transpose(-1, -2)))
    return out


@pytest.mark.parametrize("layout,gate", CASES)
@pytest.mark.parametrize("share", [False, True])
def test_blocks_equal_exact_simulation_in_both_compute_dtypes(layout, gate, share):
    p = pair(layout, gate, share)
    for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 1e-5)]:
        for got, want in zip(p.blocks(dtype), reference(p)):
            assert got.dtype == dtype
            torch.testing.assert_close(got, want.to(dtype), atol=tol, rtol=0)


def test_state_dict_is_the_two_angle_sets_and_old_checkpoints_load():
    p = pair()
    assert list(p.state_dict()) == ["theta", "theta_mirror"]
    assert isinstance(p.op, CompiledCircuit) and dict(p.named_children())["op"] is p.op
    old = {"theta": torch.randn_like(p.theta), "theta_mirror": torch.randn_like(p.theta)}
    buf = io.BytesIO()
    torch.save(old, buf)
    buf.seek(0)
    q = pair()
    q.load_state_dict(torch.load(buf), strict=True)
    torch.testing.assert_close(q.theta, old["theta"])


def test_op_follows_to_and_deepcopy():
    p = pair("butterfly", "rbs")
    twin = copy.deepcopy(p)
    assert twin.op is not p.op and twin.op.circuit == p.op.circuit
    for a, b in zip(twin.blocks(torch.float64), p.blocks(torch.float64)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    twin.to("meta")
    assert {t.device.type for t in list(twin.buffers()) + list(twin.parameters())} == {"meta"}
    assert [V.device.type for V in twin.blocks(torch.float32)] == ["meta", "meta"]
    assert {t.device.type for t in p.op.buffers()} == {"cpu"}


@pytest.mark.parametrize("layout,gate", CASES[:2])
def test_block_building_compiles_as_one_graph(layout, gate):
    """``torch.compile(fullgraph=True)`` of the adapter's block building, from a cold table
    cache: the op looks nothing up while tracing.  Forward and gradient equal eager."""
    p = pair(layout, gate)
    cache.clear()
    build = torch.compile(lambda: sum((B * B.sum(-1, keepdim=True)).sum()
                                      for B in p.blocks(torch.float32)),
                          backend="aot_eager", fullgraph=True)
    loss = build()
    (g_compiled,) = torch.autograd.grad(loss, p.theta_mirror)
    eager = sum((B * B.sum(-1, keepdim=True)).sum() for B in p.blocks(torch.float32))
    (g_eager,) = torch.autograd.grad(eager, p.theta_mirror)
    torch.testing.assert_close(loss, eager, atol=1e-5, rtol=0)
    torch.testing.assert_close(g_compiled, g_eager, atol=1e-5, rtol=0)


def test_adapter_forward_compiles_as_one_graph():
    torch.manual_seed(1)
    layer = HammingAdapter(nn.Linear(12, 20), blocks=2, parametrization="circuit")
    with torch.no_grad():
        layer.hamming["default"].theta_mirror.add_(0.2)
    x = torch.randn(3, 12)
    cache.clear()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x), atol=1e-5, rtol=0)
