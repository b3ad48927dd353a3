"""Under ``torch.autocast`` a Hamming adapter still computes in its own dtype (float32): the
base module runs in low precision, the adapter's build and products do not, on every route
(the about-point node, the plain expression, the mode-wise route, the input side)."""
import pytest
import torch
from torch import nn

from qiadapters import HammingAdapter
from qiadapters.circuits import operands
from qiadapters.circuits.precision import without_autocast
from qiadapters.testing import perturb


def _layer(side):
    torch.manual_seed(0)
    return perturb(HammingAdapter(nn.Linear(64, 64), orders=(1, 2), blocks=2, side=side),
                   scale=0.4, seed=1)


def _output_and_grad(layer, x, route, autocast):
    layer.zero_grad()
    ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if autocast
           else torch.autocast("cpu", enabled=False))
    with ctx:
        if route == "plain":  # the caller holds f(x): the plain expression, keeping f(x)
            out = layer.adapter_output(x, layer.base_layer(x), ["default"])
        else:
            out = layer(x)
    out.float().square().sum().backward()
    return out, layer.hamming["default"].weight.grad.clone()


@pytest.mark.parametrize("side, route", [("output", "about"), ("output", "plain"),
                                         ("output", "modewise"), ("input", "plain")])
def test_adapter_gradient_under_bf16_autocast_is_as_good_as_the_base_allows(
        side, route, monkeypatch):
    if route == "modewise":
        monkeypatch.setattr(operands, "use_modewise",
                            lambda t, n, k, d, built=False, blocks=1: 2 <= k < n)
    layer, x = _layer(side), torch.randn(256, 64)
    out32, g32 = _output_and_grad(layer, x, route, autocast=False)
    out16, g16 = _output_and_grad(layer, x, route, autocast=True)
    assert out16.dtype == torch.bfloat16  # the base ran under autocast
    assert layer.hamming["default"].weight.dtype == torch.float32
    # the base layer's own bfloat16 rounding costs ~2 % of the adapter's gradient here; the
    # adapter's products in bfloat16 cost ~15 %
    assert (g16 - g32).norm() / g32.norm() < 0.05
    assert (out16.float() - out32).norm() / out32.norm() < 1e-2


def test_without_autocast_turns_it_off_only_where_it_is_on():
    x = torch.randn(4, 4)
    with without_autocast(x):
        assert not torch.is_autocast_enabled("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
        with without_autocast(x):
            assert (x @ x).dtype == torch.float32
        assert torch.is_autocast_enabled("cpu")
