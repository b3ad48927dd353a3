"""The mixture layer: routing, top-k, gradients, one-expert equivalence, aux losses by hand,
exact merge of a global mixture, config JSON round trip, and argument errors before any
change.  The shared contract runs on mixture rows in test_contract.py."""
import json
import math

import pytest
import torch
from torch import nn

from qiadapters import (AdapterModel, HammingAdapter, HammingConfig, Mixture, MixtureConfig,
                        get_adapter_model)
from qiadapters.adapters import AdapterConfig
from qiadapters.adapters.mixture import router_stats
from qiadapters.adapters.mixture.routers import route
from qiadapters.testing import build, perturb, tiny_mlp

try:
    from physics import PhysicsAdapter, PhysicsConfig, PhysicsLayer
except ImportError:  # pragma: no cover
    PhysicsAdapter = PhysicsConfig = PhysicsLayer = None

needs_physics = pytest.mark.skipif(PhysicsConfig is None, reason="physics not importable")
T = ["x"]  # expert configs need a target_modules; a standalone Mixture does not use it


def experts3(**extra):
    return [HammingConfig(target_modules=T, orders=(1,), blocks=2, **extra),
            HammingConfig(target_modules=T, parametrization="expm", **extra),
            HammingConfig(target_modules=T, side="input", blocks=1)]


def mixture(router="global", top_k=None, seed=0, experts=None, **kwargs):
    torch.manual_seed(seed)
    base = nn.Linear(24, 24)
    mix = Mixture(base, experts or experts3(), router=router, top_k=top_k, **kwargs)
    with torch.no_grad():
        for p in mix.experts.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for p in mix.router.parameters():
            p.add_(torch.randn_like(p))
    return mix


def x_batch(seed=1, shape=(4, 6, 24)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def routing(mix, x):
    return route(mix.router["default"](x), mix.mixture_options["default"]["temperature"],
                 mix.mixture_options["default"]["top_k"])


# ------------------------------------------------------------------------- routing
@pytest.mark.parametrize("router, shape", [("global", (3,)), ("sample", (4, 1, 3)),
                                           ("token", (4, 6, 3))])
@pytest.mark.parametrize("top_k", [None, 1, 2])
def test_weights_sum_to_one_and_top_k_zeroes_the_rest(router, shape, top_k):
    mix = mixture(router, top_k)
    w = routing(mix, x_batch()).weights
    assert w.shape == shape
    torch.testing.assert_close(w.sum(-1), torch.ones(shape[:-1]))
    assert (w >= 0).all()
    nonzero = (w > 0).sum(-1)
    assert (nonzero == (top_k or 3)).all()
    if top_k:  # the kept weights are the renormalised top-k probabilities
        probs = routing(mix, x_batch()).probs
        kept = probs.topk(top_k, dim=-1)
        torch.testing.assert_close(w.gather(-1, kept.indices),
                                   kept.values / kept.values.sum(-1, keepdim=True))


def test_sample_router_shares_weights_within_a_sample_and_temperature_scales():
    mix = mixture("sample")
    w = routing(mix, x_batch()).weights
    assert not torch.allclose(w[0], w[1])
    hot = mixture("sample", temperature=0.25)
    logits = hot.router["default"](x_batch())
    torch.testing.assert_close(routing(hot, x_batch()).probs, torch.softmax(logits / 0.25, -1))


def test_routers_start_uniform_and_are_deterministic_in_eval():
    for router in ("global", "sample", "token"):
        mix = Mixture(nn.Linear(24, 24), experts3(), router=router)
        w = routing(mix, x_batch()).weights.reshape(-1, 3)
        torch.testing.assert_close(w, torch.full_like(w, 1 / 3), atol=0, rtol=0)
        mix = mixture(router, top_k=2).eval()
        with torch.no_grad():
            assert torch.equal(mix(x_batch()), mix(x_batch()))


def test_output_is_the_weighted_sum_of_expert_outputs():
    mix = mixture("token")
    x = x_batch()
    w = routing(mix, x).weights
    with torch.no_grad():
        outs = [mix.expert_layer("default", e)(x) for e in range(3)]
        expected = sum(w[..., e:e + 1] * outs[e] for e in range(3))
        torch.testing.assert_close(mix(x), expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------- gradients, top-k work
class Counting(nn.Module):
    """A plain delta expert that counts its calls."""

    def __init__(self, d=24):
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def test_top_k_runs_every_expert_and_unrouted_ones_get_exact_zero_gradients():
    """Dense top-k: no host read of the routing, every expert parameter gets a gradient in
    every step (DDP needs no find_unused_parameters), zero for the unrouted expert."""
    experts = [Counting(), Counting(), Counting()]
    mix = mixture("global", top_k=2, experts=experts)
    with torch.no_grad():
        mix.router["default"].logits.copy_(torch.tensor([0.5, -2.0, 1.0]))
    x = x_batch()
    y = mix(x)
    (y.square().mean() + mix.aux_loss()).backward()
    assert [e.calls for e in experts] == [1, 1, 1]
    assert mix.router["default"].logits.grad.abs().min() > 0
    w = torch.softmax(torch.tensor([0.5, 1.0]), 0)
    with torch.no_grad():  # the routed experts alone, by hand
        fx = mix.base_layer(x)
        torch.testing.assert_close(y, fx + w[0] * experts[0](x) + w[1] * experts[2](x))
    for e, expert in enumerate(experts):
        for p in expert.parameters():
            assert p.grad is not None
            assert (p.grad.abs().sum() == 0) if e == 1 else (p.grad.abs().sum() > 0)


def test_token_top_k_weights_only_experts_some_token_routes_to():
    experts = [Counting(), Counting(), Counting()]
    mix = mixture("token", top_k=1, experts=experts)
    with torch.no_grad():
        mix.router["default"].gate.weight.zero_()
        mix.router["default"].gate.bias.copy_(torch.tensor([0.0, 1.0, 3.0]))
        x = x_batch()
        assert torch.equal(mix(x), mix.base_layer(x) + experts[2](x))
    stats = mix.router_stats()["default"]
    torch.testing.assert_close(stats["weight"], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(stats["load"], torch.tensor([0.0, 0.0, 1.0]))


def skipping_reference(mix, x):
    """The former top-k forward, which ran only the experts some unit routes to (a host read
    of the routing): ``f(x) + Σ_{e routed} α_e (E_e(x) - f(x))``, summed in expert order."""
    w = routing(mix, x).weights
    fx = mix.base_layer(x)
    used = torch.nonzero(w.reshape(-1, 3).gt(0).any(0)).flatten().tolist()
    delta = None
    for e in used:
        out = mix.expert_layer("default", e).adapter_output(x, fx, ["expert"])
        term = w[..., e:e + 1] * (out - fx)
        delta = term if delta is None else delta + term
    return fx + delta


@pytest.mark.parametrize("router", ["global", "sample", "token"])
@pytest.mark.parametrize("top_k", [1, 2])
def test_dense_top_k_equals_running_only_the_routed_experts_bit_for_bit(router, top_k):
    mix = mixture(router, top_k)
    if router != "global":  # route most units away from expert 1
        with torch.no_grad():
            mix.router["default"].gate.bias.copy_(torch.tensor([2.0, -6.0, 2.0]))
    x = x_batch(shape=(2, 3, 24))
    with torch.no_grad():
        assert torch.equal(mix(x), skipping_reference(mix, x))


def test_token_router_gradient_reaches_gate_and_hamming_experts():
    mix = mixture("token")
    mix(x_batch()).square().mean().backward()
    for name, p in mix.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert mix.base_layer.weight.grad is None


# ------------------------------------------------------------------------- one expert
def test_a_mixture_of_one_expert_equals_that_expert():
    torch.manual_seed(0)
    x = x_batch()
    for kwargs in ({}, {"side": "input", "blocks": 2}, {"parametrization": "circuit"}):
        layer = HammingAdapter(nn.Linear(24, 24), **kwargs)
        with torch.no_grad():
            for p in layer.hamming.parameters():
                p.add_(0.3 * torch.randn_like(p))
        for router in ("global", "token"):
            mix = Mixture(layer.base_layer, [layer], router=router)
            with torch.no_grad():
                torch.testing.assert_close(mix(x), layer(x), atol=1e-5, rtol=1e-5)
    assert mix.experts["default"][0].hamming["expert"] is layer.hamming["default"]  # not copied


@needs_physics
def test_a_mixture_of_one_physics_expert_equals_it():
    torch.manual_seed(0)
    layer = PhysicsLayer(nn.Linear(24, 24), rank=4, grid="sequence")
    perturb_module(layer.physics)
    mix = Mixture(layer.base_layer, [layer], router="token")
    x = x_batch()
    with torch.no_grad():
        torch.testing.assert_close(mix(x), layer(x), atol=1e-5, rtol=1e-5)
        # a bare PhysicsAdapter is an additive (delta) expert
        bare = Mixture(layer.base_layer, [layer.physics["default"]])
        torch.testing.assert_close(bare(x), layer(x), atol=1e-5, rtol=1e-5)
    # the expert's route regulariser is part of the mixture's aux loss
    with torch.no_grad():
        mix(x)
    own = layer.physics["default"].aux_loss()
    assert float(mix.aux_loss().detach()) == pytest.approx(0.01 * 1 * 1.0 + float(own), rel=1e-5)


def perturb_module(module, scale=0.3):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


# ------------------------------------------------------------------------- aux losses by hand
def test_aux_loss_equals_its_formula_on_a_hand_computed_case():
    base = nn.Linear(2, 2)
    experts = [HammingConfig(target_modules=T, orders=(1,), blocks=1)] * 2
    mix = Mixture(base, experts, router="token", balance=0.1, z_loss=0.01)
    with torch.no_grad():
        mix.router["default"].gate.weight.copy_(torch.eye(2))
        mix.router["default"].gate.bias.zero_()
    l3 = math.log(3.0)
    x = torch.tensor([[[l3, 0.0], [l3, 0.0], [0.0, l3]]])
    mix(x)
    # probs (3/4, 1/4), (3/4, 1/4), (1/4, 3/4): f = (2/3, 1/3), P = (7/12, 5/12)
    balance = 0.1 * 2 * (2 / 3 * 7 / 12 + 1 / 3 * 5 / 12)  # = 0.1 * 19/18
    z = 0.01 * math.log(4.0) ** 2  # logsumexp(ln 3, 0) = ln 4 for every token
    assert float(mix.aux_loss().detach()) == pytest.approx(balance + z, rel=1e-6)
    stats = mix.router_stats()["default"]
    torch.testing.assert_close(stats["load"], torch.tensor([2 / 3, 1 / 3]))
    torch.testing.assert_close(stats["prob"], torch.tensor([7 / 12, 5 / 12]))


def test_global_aux_loss_and_model_sum_over_layers():
    cfg = MixtureConfig(target_modules=["fc1", "fc2"], balance=0.5, experts=[
        HammingConfig(target_modules=["fc1", "fc2"], orders=(1,)),
        HammingConfig(target_modules=["fc1", "fc2"], blocks=2)])
    am, inputs = build(tiny_mlp, cfg)
    assert float(am.aux_loss().detach()) == 0.0  # before any forward
    am(**inputs)
    # uniform probs, top-1 = expert 0 (first on ties): 0.5 * 2 * (1 * 1/2) per layer
    assert float(am.aux_loss().detach()) == pytest.approx(2 * 0.5)
    stats = router_stats(am)
    assert set(stats) == {"base_model.fc1", "base_model.fc2"}
    torch.testing.assert_close(stats["base_model.fc1"]["default"]["weight"],
                               torch.tensor([0.5, 0.5]))
    with am.disable_adapter():
        am(**inputs)
    assert float(am.aux_loss().detach()) == 0.0 and router_stats(am) == {}


# ------------------------------------------------------------------------- merge
@pytest.mark.parametrize("top_k", [None, 2])
def test_merge_of_a_global_mixture_equals_its_forward(top_k):
    mix = mixture("global", top_k=top_k)
    x = x_batch()
    W0 = mix.base_layer.weight.detach().clone()
    b0 = mix.base_layer.bias.detach().clone()
    with torch.no_grad():
        expected = mix(x)
        mix.merge()
        torch.testing.assert_close(mix(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mix.base_layer(x), expected, atol=1e-5, rtol=1e-5)
        assert torch.equal(mix.base_layer.bias, b0)
        mix.unmerge()
    assert torch.equal(mix.base_layer.weight, W0)  # restored bit for bit, no inverse
    assert not [n for n, _ in mix.named_buffers() if n.startswith("_unmerged")]


def test_merged_weight_of_output_side_hamming_experts():
    experts = experts3()[:2]
    mix = mixture("global", experts=experts)
    alpha = routing(mix, None).weights
    W0 = mix.base_layer.weight.detach().clone()
    D = sum(a * mix.expert_layer("default", e).delta_matrix("expert")
            for e, a in enumerate(alpha))
    mix.merge()
    torch.testing.assert_close(mix.base_layer.weight, D.T @ W0, atol=1e-5, rtol=1e-5)


def test_merge_refusals_say_why_and_change_nothing():
    cfg = MixtureConfig(target_modules=["fc1"], router="token", experts=[
        HammingConfig(target_modules=["fc1"], orders=(1,)),
        HammingConfig(target_modules=["fc1"])])
    am, inputs = build(tiny_mlp, cfg)
    perturb(am)
    before = {n: p.detach().clone() for n, p in am.named_parameters()}
    with pytest.raises(TypeError, match=r"fc1 \(Mixture\).*router='token'.*only "
                                        r"router='global' merges"):
        am.merge_and_unload()
    with pytest.raises(TypeError, match="router='token'"):
        am.base_model.fc1.merge()
    for n, p in am.named_parameters():
        assert torch.equal(p, before[n]), n
    plain = Mixture(nn.Linear(24, 24), [Counting()])
    with pytest.raises(TypeError, match="plain module"):
        plain.merge()


@needs_physics
def test_a_physics_expert_blocks_merging():
    mix = Mixture(nn.Linear(24, 24), [HammingConfig(target_modules=T),
                                      PhysicsConfig(target_modules=T, grid="sequence")])
    assert not mix.mergeable
    with pytest.raises(TypeError, match=r"expert 1 of mixture 'default' \(PhysicsLayer\) is "
                                        r"not mergeable"):
        mix.merge()


# ------------------------------------------------------------------------- config
def test_config_json_round_trip_with_nested_experts():
    experts = [HammingConfig(target_modules=["fc1"], orders=(1, 2), blocks=2, side="input")]
    if PhysicsConfig is not None:
        experts.append(PhysicsConfig(target_modules=["fc1"], rank=4, grid=(4, 4)))
    cfg = MixtureConfig(experts=experts, router="token", top_k=1, z_loss=1e-3)
    assert cfg.target_modules == ["fc1"]  # taken from the experts
    data = json.loads(cfg.to_json())
    assert data["adapter_type"] == "mixture"
    assert [e["adapter_type"] for e in data["experts"]] == \
        ["hamming", "physics"][:len(experts)]
    again = AdapterConfig.from_dict(data)
    assert again == cfg and isinstance(again.experts[0], HammingConfig)
    assert MixtureConfig.from_dict(data) == cfg


def test_save_load_round_trip_through_the_model_api(tmp_path):
    cfg = MixtureConfig(target_modules=["fc2"], router="sample", top_k=2, experts=[
        HammingConfig(target_modules=["fc2"], orders=(1,)),
        HammingConfig(target_modules=["fc2"], parametrization="expm"),
        HammingConfig(target_modules=["fc2"], side="input", blocks=1)])
    am, inputs = build(tiny_mlp, cfg)
    perturb(am)
    with torch.no_grad():
        expected = am(**inputs)
    am.save_pretrained(tmp_path)
    loaded = AdapterModel.from_pretrained(tiny_mlp()[0], tmp_path)
    assert loaded.peft_config["default"] == cfg
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs), expected, atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------------- bad input
def snapshot(model):
    return {n: (p.requires_grad, p.detach().clone()) for n, p in model.named_parameters()}, \
        {n: type(m) for n, m in model.named_modules()}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"experts": []}, ValueError, r"experts=\[\] is empty"),
    ({"router": "expert"}, ValueError,
     r"router='expert' is not valid; choose one of \['global', 'sample', 'token'\]"),
    ({"top_k": 0}, ValueError, r"top_k=0 is out of range; valid: 1 <= top_k <= 3"),
    ({"top_k": 4}, ValueError, r"top_k=4 is out of range; valid: 1 <= top_k <= 3"),
    ({"temperature": 0.0}, ValueError, r"temperature=0.0 is not valid; valid: a finite "
                                       r"number > 0"),
    ({"balance": -1.0}, ValueError, r"balance=-1.0 is not valid"),
    ({"experts": [HammingConfig(target_modules=["fc1"]), "hamming"]}, TypeError,
     r"experts\[1\] is a str"),
])
def test_bad_mixture_config(kwargs, error, match):
    options = {"target_modules": ["fc1"], "experts": [HammingConfig(target_modules=["fc1"])] * 3}
    options.update(kwargs)
    with pytest.raises(error, match=match):
        MixtureConfig(**options)


def test_bad_standalone_mixture_leaves_the_base_untouched():
    base = nn.Linear(24, 24)
    snap = snapshot(base)
    other = HammingAdapter(nn.Linear(24, 48))
    cases = [
        (dict(experts=[]), ValueError, r"experts=\[\] is empty"),
        (dict(experts=[HammingConfig(target_modules=T), other]), ValueError,
         r"experts\[1\] wraps Linear\(weight\(48, 24\), bias\(48,\)\), but the mixture's base "
         r"is Linear\(weight\(24, 24\), bias\(24,\)\)"),
        (dict(experts=experts3(), top_k=5), ValueError, r"top_k=5 is out of range"),
        (dict(experts=experts3(), router="switch"), ValueError,
         r"router='switch' is not valid; choose one of \['global', 'sample', 'token'\]"),
        (dict(experts=[HammingConfig(target_modules=T, blocks=30)]), ValueError,
         r"experts\[0\] \(HammingConfig\): blocks=30"),
        (dict(experts=[MixtureConfig(experts=experts3())]), TypeError, "cannot be mixtures"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            Mixture(base, **kwargs)
        now = snapshot(base)
        assert now[1] == snap[1]
        for n, (grad, value) in now[0].items():
            assert grad == snap[0][n][0] and torch.equal(value, snap[0][n][1]), n


def test_bad_mixture_in_a_model_leaves_it_untouched():
    model, _ = tiny_mlp()
    snap = snapshot(model)
    cfg = MixtureConfig(target_modules=["fc1", "head"], experts=[
        HammingConfig(target_modules=["fc1", "head"], orders=(1,), blocks=4)])
    with pytest.raises(ValueError, match=r"module 'head' \(Linear\): experts\[0\] "
                                         r"\(HammingConfig\): blocks=4"):
        get_adapter_model(model, cfg)
    assert snapshot(model)[1] == snap[1]
    for n, (grad, value) in snapshot(model)[0].items():
        assert grad == snap[0][n][0] and torch.equal(value, snap[0][n][1]), n
    with pytest.raises(ValueError, match=r"experts\[0\].target_modules=\['fc2'\] differs"):
        MixtureConfig(target_modules=["fc1"], experts=[HammingConfig(target_modules=["fc2"])])
    with pytest.raises(ValueError, match="experts' target_modules differ"):
        MixtureConfig(experts=[HammingConfig(target_modules=["fc1"]),
                               HammingConfig(target_modules=["fc2"])])
    with pytest.raises(ValueError, match="set modules_to_save on the MixtureConfig"):
        MixtureConfig(experts=[HammingConfig(target_modules=["fc1"], modules_to_save=["head"])])


@pytest.mark.parametrize("router", ["global", "sample", "token"])
def test_an_empty_batch_gives_an_empty_output_and_router_losses_of_zero(router):
    """The batch of one routing unit and the empty batch: the losses of the empty one are an
    exact 0 (the means over no unit were NaN), and a backward through them works."""
    model, batch = tiny_mlp()
    am = get_adapter_model(model, MixtureConfig(
        target_modules=["fc1"], router=router, z_loss=0.1,
        experts=[{"adapter_type": "hamming"}, {"adapter_type": "hamming", "blocks": 2}])).train()
    y = am(x=batch["x"][:0])
    assert y.shape == (0, *batch["x"].shape[1:-1], y.shape[-1])
    loss = am.aux_loss()
    if router == "global":  # one unit whatever the batch: its losses are the usual ones
        assert torch.isfinite(loss) and float(loss) > 0
    else:
        assert float(loss) == 0.0
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in am.parameters())
