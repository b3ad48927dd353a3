"""``HammingConfig(scale=True)``: ``D`` becomes ``D diag(s)`` with a learned per-feature ``s``.

Against an independent dense reference (the rotation's own dense ``D`` times ``diag(s)``
written out), the identity at initialisation, exact merges (and unmerges) on both sides, the
batched build against the per-layer one, the contract checks, and save / load in the current
format (with files without a scale written exactly as before)."""
import os
import sys

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from qiadapters import AdapterModel, HammingAdapter, HammingConfig
from qiadapters.adapters.hamming import batched
from qiadapters.testing import assert_valid_adapter, perturb
from qiadapters.tiny_models import tiny_bert, tiny_mlp

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import saved_only_when_on  # noqa: E402


def _reference(layer: HammingAdapter, x: torch.Tensor) -> torch.Tensor:
    """The adapted output from the rotation's dense ``D`` and ``s``, written out."""
    rot = layer.hamming["default"]
    D = rot.dense(torch.float64) * rot.scale.detach().double()[None, :]   # D diag(s)
    lin = layer.base_layer
    if layer.side["default"] == "output":
        return (x @ lin.weight.T) @ D + lin.bias
    return (x @ D) @ lin.weight.T + lin.bias


@settings(max_examples=25, deadline=None)
@given(d_in=st.integers(11, 40), d_out=st.integers(11, 40), side=st.sampled_from(["output", "input"]),
       parametrization=st.sampled_from(["cayley", "expm", "circuit"]),
       block_size=st.sampled_from([6, 8, 11]), seed=st.integers(0, 2**16))
def test_forward_merge_and_unmerge_against_the_dense_reference(d_in, d_out, side,
                                                               parametrization, block_size, seed):
    torch.manual_seed(seed)
    lin = nn.Linear(d_in, d_out).double()
    layer = HammingAdapter(lin, orders=(1, 2), block_size=block_size, side=side,
                           parametrization=parametrization, scale=True)
    x = torch.randn(4, d_in, dtype=torch.float64)
    exact = parametrization != "circuit"  # V(a) V(a)^T is I up to rounding
    torch.testing.assert_close(layer(x), lin(x), atol=0 if exact else 1e-12, rtol=0)
    rot = layer.hamming["default"]
    assert rot.scale.shape == (d_out if side == "output" else d_in,)
    with torch.no_grad():
        for p in rot.parameters():
            p.add_(0.3 * torch.randn_like(p))
    y = layer(x)
    torch.testing.assert_close(y, _reference(layer, x), atol=1e-12, rtol=0)
    torch.testing.assert_close(layer.delta_matrix("default"),
                               rot.dense(torch.float64) * rot.scale.detach()[None, :],
                               atol=1e-12, rtol=0)
    W0 = lin.weight.detach().clone()
    layer.merge()
    torch.testing.assert_close(layer(x), y, atol=1e-12, rtol=0)
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, W0, atol=1e-12, rtol=0)
    torch.testing.assert_close(layer(x), y, atol=1e-12, rtol=0)


def test_the_fold_inverts_the_scale():
    """``fold(inverse=True)`` after ``fold`` gives the weight back (``diag(1/s) D^T``), on
    both sides; the map itself is no longer orthogonal."""
    torch.manual_seed(0)
    for side in ("output", "input"):
        layer = HammingAdapter(nn.Linear(20, 24).double(), orders=(1, 2), block_size=8,
                               side=side, scale=True)
        with torch.no_grad():
            for p in layer.hamming["default"].parameters():
                p.add_(0.5 * torch.randn_like(p))
        W = {"weight": torch.randn(24, 20, dtype=torch.float64)}
        folded = layer.fold(W, ["default"])
        back = layer.fold(folded, ["default"], inverse=True)
        torch.testing.assert_close(back["weight"], W["weight"], atol=1e-12, rtol=0)
        assert not torch.allclose(folded["weight"].norm(), W["weight"].norm())


def test_the_scale_trains_and_is_counted():
    layer = HammingAdapter(nn.Linear(16, 16), orders=(1, 2), block_size=8, scale=True)
    plain = HammingAdapter(nn.Linear(16, 16), orders=(1, 2), block_size=8)
    extra = (sum(p.numel() for p in layer.parameters() if p.requires_grad)
             - sum(p.numel() for p in plain.parameters() if p.requires_grad))
    assert extra == 16
    layer(torch.randn(3, 16)).square().sum().backward()
    grad = layer.hamming["default"].scale.grad
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("side", ["output", "input"])
def test_batched_build_equals_per_layer(monkeypatch, side):
    model, _ = tiny_mlp()
    model = model.double()
    am = perturb(AdapterModel(model, HammingConfig(target_modules=["fc1", "fc2"], block_size=8,
                                                   side=side, scale=True)), scale=0.3)
    x = torch.randn(5, model.fc1.in_features, dtype=torch.float64)
    results = []
    for allowed in (batched.may_batch, lambda: False):
        monkeypatch.setattr(batched, "may_batch", allowed)
        am.zero_grad(set_to_none=True)
        out = am(x)
        out.square().sum().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in am.named_parameters()
                                       if p.requires_grad}))
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert any("scale" in n for n in ga)
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], atol=1e-12, rtol=0, msg=n)


@pytest.mark.parametrize("side", ["output", "input"])
def test_the_contract(side):
    assert_valid_adapter(tiny_bert, HammingConfig(target_modules=["query", "value"], block_size=8,
                                                side=side, scale=True), mergeable=True)


def test_saved_files_record_the_scale_only_when_on(tmp_path):
    loaded = saved_only_when_on(tmp_path, "scale")
    assert any(n.endswith(".scale") for n, _ in loaded.named_parameters())


def test_a_bad_scale_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"scale='yes' must be True or False"):
        HammingConfig(target_modules=["query"], scale="yes")
    lin = nn.Linear(8, 8)
    with pytest.raises(ValueError, match=r"scale=1 must be True or False"):
        HammingAdapter(lin, scale=1)
    assert not isinstance(lin, HammingAdapter) and lin.weight.requires_grad
