"""Device-clean hot paths: contract checks on every available device (CPU; CUDA where
present), no host sync or host-made tensor in any adapter forward (detected on CPU), a forward
and backward on the ``meta`` device (a CPU tensor made in the forward, or a value read back,
fails there as it would stall or fail on a GPU), and the device-aware order-2 route rule."""
import importlib
import os
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from qiadapters import HammingAdapter, HammingConfig, Mixture, MixtureConfig, get_adapter_model
compound = importlib.import_module("qiadapters.circuits.compound")  # the package exports a function of that name
from qiadapters.circuits import Circuit, cache
from qiadapters.circuits.compound import (ROW_LOOP_MIN_ENTRIES, PairMinorsByRow,
                                          PairMinorsFlat, compound_det, pair_minors, pair_route)
from qiadapters.circuits.simulate import simulate_block
from qiadapters.testing import (available_devices, check_identity_at_init, check_merge,
                                check_training, on_device, perturb, tiny_mlp)

sys.path.insert(0, os.path.dirname(__file__))  # the suite's helpers (testing_utils)
from testing_utils import HostSyncs  # noqa: E402

DEVICES = available_devices()
EXPERTS = [HammingConfig(target_modules=["fc1", "fc2"], orders=(1,)),
           HammingConfig(target_modules=["fc1", "fc2"], parametrization="circuit"),
           HammingConfig(target_modules=["fc1", "fc2"], side="input", parametrization="expm")]
CONFIGS = {
    "hamming": HammingConfig(target_modules=["fc1", "fc2"], orders=(1, 2), blocks=2),
    "circuit-x": HammingConfig(target_modules=["fc1"], parametrization="circuit", layout="x"),
    **{f"mixture-{r}-top{k}": MixtureConfig(target_modules=["fc1", "fc2"], router=r, top_k=k,
                                            experts=EXPERTS)
       for r in ("global", "sample", "token") for k in (None, 1)},
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["hamming", "mixture-global-top1", "mixture-token-top1"])
def test_contract_checks_on_every_device(name, device):
    factory = on_device(tiny_mlp, device)
    for check in (check_identity_at_init, check_merge, check_training):
        check(factory, CONFIGS[name])


def test_on_device_moves_model_and_inputs():
    model, inputs = on_device(tiny_mlp, "meta")(0)
    assert model.fc1.weight.device.type == "meta" and inputs["x"].device.type == "meta"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_adapter_forwards_read_nothing_back_and_make_no_host_tensor(name):
    torch.manual_seed(0)
    am = get_adapter_model(tiny_mlp()[0], CONFIGS[name])
    perturb(am)
    x = tiny_mlp()[1]["x"]
    for train in (True, False):
        am.train(train)
        with HostSyncs(am) as found:
            am(x=x)
            am.aux_loss()
        assert found.ops == [], found.ops


def test_the_detector_sees_what_it_must():
    """The detector is live: the former top-k skip, .item() and torch.tensor() are caught."""
    mix = Mixture(nn.Linear(8, 8), [HammingConfig(orders=(1,), blocks=1)] * 2)

    def bad(x):
        w = torch.tensor([1.0, 0.0])
        torch.nonzero(w).flatten()
        return x * w.sum().item()

    mix.adapter_forward = lambda x, names: bad(x)
    with HostSyncs(mix) as found:
        mix(torch.randn(2, 8))
    assert found.ops == ["aten::lift_fresh", "aten::nonzero", "aten::_local_scalar_dense"]
    with HostSyncs(mix) as found:  # outside adapter layers nothing is counted
        torch.tensor([1.0]).item()
    assert found.ops == []


@pytest.mark.parametrize("router", ["global", "sample", "token"])
@pytest.mark.parametrize("top_k", [None, 1])
def test_forward_and_backward_on_the_meta_device(router, top_k):
    base = nn.Linear(24, 24, device="meta")
    layers = [Mixture(base, [c for c in EXPERTS], router=router, top_k=top_k),
              HammingAdapter(nn.Linear(24, 24, device="meta"), parametrization="circuit",
                             layout="x"),
              HammingAdapter(nn.Linear(24, 24, device="meta"), side="input")]
    for layer in layers:
        x = torch.randn(2, 5, 24, device="meta", requires_grad=True)
        y = layer(x)
        (y.sum() + layer.aux_loss()).backward()
        assert y.device.type == "meta" and x.grad.shape == x.shape
        assert all(p.grad is not None for p in layer.parameters() if p.requires_grad)


# ------------------------------------------------------------------ circuits
def test_order_two_route_rule():
    """CPU: the row route from ROW_LOOP_MIN_ENTRIES output entries (all blocks together), the
    gathers below."""
    for n, blocks in ((6, 3), (15, 3), (15, 36), (22, 1), (40, 1)):
        U = torch.empty(blocks, n, n)
        big = blocks * (n * (n - 1) // 2) ** 2 >= ROW_LOOP_MIN_ENTRIES
        want = "rows" if big else "gathers"
        assert pair_route(U) == want and pair_route(U.to("meta")) == want
    assert pair_route(torch.empty(3, 15, 15)) == "gathers"
    assert pair_route(torch.empty(36, 15, 15)) == "rows"


def test_order_two_route_on_an_accelerator_is_vectorised_within_the_memory_budget(monkeypatch):
    """The rule reads only the device type, the shape and the item size: a stand-in for a
    CUDA tensor checks it without a GPU.  Up to n = 23 one flat gather (its tables grow as
    n^4), above it the gathers, over the memory budget the rows."""
    n = 64
    U = torch.empty(3, n, n)
    cuda = SimpleNamespace(shape=U.shape, numel=U.numel, element_size=U.element_size,
                           device=SimpleNamespace(type="cuda"))
    assert pair_route(U) == "rows" and pair_route(cuda) == "gathers"  # 4 x 3 x 2016^2 x 4 B
    small = torch.empty(3, 23, 23)  # the largest n with the flat gather's tables
    assert pair_route(SimpleNamespace(shape=small.shape, numel=small.numel,
                                      element_size=small.element_size,
                                      device=SimpleNamespace(type="cuda"))) == "flat"
    monkeypatch.setattr(compound, "VECTORISED_MAX_BYTES", 195_000_000)
    assert pair_route(cuda) == "rows"  # over the budget: the row route


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [5, 21])
def test_both_order_two_routes_equal_the_determinants_on_every_device(device, n):
    U = torch.randn(2, n, n, dtype=torch.float64, device=device,
                    generator=torch.Generator(device).manual_seed(n))
    first, second, flat = compound.compound_tables(n, 2, U.device)
    ref = compound_det(U, 2)
    for got in (pair_minors(U, first, second), PairMinorsByRow.apply(U, first, second),
                PairMinorsFlat.apply(U, flat), compound.compound(U, 2)):
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("device", DEVICES + ["meta"])
def test_simulation_reads_tables_moved_once(device, monkeypatch):
    """The reference route moves its gate tables to the device once (the cache), then a
    call copies nothing: a second call builds and moves no table."""
    c = Circuit.from_layout("x", 5, "fbs")
    theta = torch.randn(2, c.n_params, device=device)
    simulate_block(c, theta, 2)
    moves = []
    monkeypatch.setattr(cache, "_fill", lambda *a: moves.append(a))
    with HostSyncs(nn.Module()) as found:
        block = simulate_block(c, theta, 2)
    assert moves == [] and found.ops == [] and block.device.type == theta.device.type
