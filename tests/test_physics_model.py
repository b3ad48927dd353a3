"""The physics-prior family inside models: PhysicsConfig, PhysicsLayer, a tiny ViT end to end,
aux losses, save/load, and bad input rejected before the model is modified."""
import math
import os

import pytest
import torch
from torch import nn

import physics
from physics import PhysicsConfig, PhysicsLayer
from qiadapters import AdapterModel, get_adapter_model
from qiadapters.adapters import CONFIGS, AdapterConfig
from qiadapters.testing import CHECKS, logits, perturb, tiny_bert

torch.set_num_threads(1)


def tiny_vit(seed: int = 0):
    """A random-init ViT: 32x32 images, 8x8 patches -> a 4x4 grid + CLS (17 tokens), width 32."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       num_labels=5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = ViTForImageClassification(config).eval()
    g = torch.Generator().manual_seed(1000)
    return model, {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}


# MoPPA's placement: before each self-attention block (after ViT's layernorm_before)
VIT_MOPPA = PhysicsConfig(target_modules=["attention"], placement="input", rank=4,
                          extra_tokens=1, modules_to_save=["classifier"], route_weight=2.0)


def _layers(am):
    return [layer for _, layer in am.adapter_layers() if isinstance(layer, PhysicsLayer)]


def _snapshot(model):
    return ({n: type(m) for n, m in model.named_modules()},
            {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()})


def _assert_unchanged(model, snapshot):
    modules, params = snapshot
    assert {n: type(m) for n, m in model.named_modules()} == modules
    now = dict(model.named_parameters())
    assert set(now) == set(params)
    for n, (value, grad) in params.items():
        assert torch.equal(now[n].detach(), value) and now[n].requires_grad == grad, n


# ------------------------------------------------------------------ config
def test_config_registered_and_json_round_trip():
    assert CONFIGS["physics"] is PhysicsConfig
    cfg = PhysicsConfig(target_modules=["attention"], priors=["wave", "heat"], grid=[4, 4],
                        router="sample", boundary="dirichlet", extra_tokens=1,
                        placement="input", route_weight=0.5)
    assert cfg.priors == ("wave", "heat") and cfg.grid == (4, 4)
    data = cfg.to_dict()
    assert data["adapter_type"] == "physics"
    assert AdapterConfig.from_dict(data) == cfg
    assert PhysicsConfig.from_dict(data) == cfg
    import json

    assert AdapterConfig.from_dict(json.loads(cfg.to_json())) == cfg


@pytest.mark.parametrize("kwargs, match", [
    ({"priors": ("heat", "diffusion")}, r"priors='diffusion' is not valid; choose one of"),
    ({"priors": ()}, r"priors=\(\) is empty"),
    ({"priors": ("heat", "heat")}, r"duplicates"),
    ({"router": "expert"}, r"router='expert' is not valid; choose one of \['global', 'sample', 'token'\]"),
    ({"boundary": "robin"}, r"boundary='robin' is not valid; choose one of \['neumann'"),
    ({"rank": 0}, r"rank=0 is out of range"),
    ({"rank": 2.5}, r"rank=2.5 must be an integer"),
    ({"grid": "square"}, r"grid='square' is not valid; choose one of \['auto', 'sequence'\]"),
    ({"grid": (0, 4)}, r"grid=0 is out of range"),
    ({"grid": (2, 2, 2)}, r"has 3 sizes"),
    ({"extra_tokens": -1}, r"extra_tokens=-1 is out of range"),
    ({"placement": "after"}, r"placement='after' is not valid; choose one of \['parallel'"),
    ({"route_weight": -1.0}, r"route_weight=-1.0 is not valid"),
    ({"kappa": 0.0}, r"kappa=0.0 is not valid; valid: a finite number > 0"),
    ({"poisson_zero_mode": "pin"}, r"poisson_zero_mode='pin' is not valid"),
    ({"bias": 1}, r"bias=1 must be True or False"),
])
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhysicsConfig(target_modules=["attention"], **kwargs)


@pytest.mark.parametrize("target, kwargs, error, match", [
    (["attention"], {}, TypeError, r"placement='parallel' .* got ViTAttention"),
    (["dropout"], {"placement": "input"}, TypeError, r"cannot tell the hidden width"),
])
def test_bad_target_is_rejected_before_the_model_is_modified(target, kwargs, error, match):
    model, _ = tiny_vit()
    snapshot = _snapshot(model)
    with pytest.raises(error, match=match):
        get_adapter_model(model, PhysicsConfig(target_modules=target, **kwargs))
    _assert_unchanged(model, snapshot)


def test_layer_build_checks_options_directly():
    with pytest.raises(ValueError, match=r"rank=0 is out of range"):
        PhysicsLayer.build(nn.Linear(8, 8), rank=0)
    with pytest.raises(ValueError, match=r"router='expert' is not valid"):
        PhysicsLayer(nn.Linear(8, 8), router="expert")


# ------------------------------------------------------------------ the ViT case
def test_vit_end_to_end_forward_backward_aux_loss():
    model, inputs = tiny_vit()
    expected = logits(model(**inputs))
    am = get_adapter_model(model, VIT_MOPPA)
    layers = _layers(am)
    assert len(layers) == 2 and all(l.placement["default"] == "input" for l in layers)
    adapter = layers[0].physics["default"]
    assert adapter.grid_shape(17) == (4, 4) and adapter.extra_tokens == 1
    torch.testing.assert_close(logits(am(**inputs)), expected, atol=1e-6, rtol=0)

    perturb(am)
    am.train()
    seen = {}  # the hidden states each adapter layer receives
    hooks = [l.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, a[0]))
             for i, l in enumerate(layers)]
    out = am(**inputs, labels=torch.tensor([1, 3]))
    for h in hooks:
        h.remove()
    aux = am.aux_loss()
    # the model's aux loss: every layer's route regulariser (alpha = 0.01) times route_weight
    ref = sum(2.0 * physics.route_loss(l.physics["default"].route(seen[i]), 0.01, 0.0)
              for i, l in enumerate(layers))
    torch.testing.assert_close(aux, ref, atol=1e-7, rtol=1e-5)
    assert aux > 0 and aux.requires_grad
    (out.loss + aux).backward()
    trained = [n for n, p in am.named_parameters() if p.requires_grad]
    assert trained and all(".physics." in n or ".modules_to_save." in n for n in trained)
    for name, p in am.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    gate = layers[0].physics["default"].router.gate.weight
    assert gate.grad.abs().max() > 0

    # aux_loss only counts adapters that ran: zero after a forward with adapters disabled
    with am.disable_adapter(), torch.no_grad():
        am(**inputs)
    assert float(am.aux_loss()) == 0.0


@pytest.mark.parametrize("check", ["identity", "save_load", "training", "disable", "merge",
                                   "pickle"])
@pytest.mark.parametrize("config", [
    VIT_MOPPA,
    # layer 0 only: in the last block the grid tokens' output never reaches the CLS head, so
    # a parallel adapter there gets no gradient in its prior constants
    PhysicsConfig(target_modules=r"vit\.layers\.0\.attention\.o_proj", rank=4, extra_tokens=1,
                  router="global", boundary="periodic")], ids=["moppa-input", "o_proj-parallel"])
def test_vit_contract(config, check):
    CHECKS[check](tiny_vit, config)


def test_vit_save_load_files_and_reload(tmp_path):
    model, inputs = tiny_vit()
    am = get_adapter_model(model, VIT_MOPPA)
    perturb(am)
    with torch.no_grad():
        expected = logits(am(**inputs))
    am.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["adapter_config.json", "adapter_model.safetensors"]
    assert PhysicsConfig.load(tmp_path, ignore=["qiadapters_version"]) == VIT_MOPPA
    fresh, _ = tiny_vit()
    loaded = AdapterModel.from_pretrained(fresh, tmp_path)
    assert isinstance(loaded.peft_config["default"], PhysicsConfig)
    with torch.no_grad():
        torch.testing.assert_close(logits(loaded(**inputs)), expected, atol=1e-6, rtol=0)


def test_loading_without_the_family_registered_names_it(tmp_path, monkeypatch):
    model, _ = tiny_vit()
    get_adapter_model(model, VIT_MOPPA).save_pretrained(tmp_path)
    fresh, _ = tiny_vit()
    snapshot = _snapshot(fresh)
    monkeypatch.delitem(CONFIGS, "physics")  # as if `import physics` had not run
    with pytest.raises(ValueError, match=r"adapter_type='physics'"):
        AdapterModel.from_pretrained(fresh, tmp_path)
    _assert_unchanged(fresh, snapshot)


def test_grid_that_does_not_fit_the_tokens_raises_at_forward():
    model, inputs = tiny_vit()
    am = get_adapter_model(model, PhysicsConfig(target_modules=["attention"], placement="input",
                                                grid=(5, 5), extra_tokens=1))
    with pytest.raises(ValueError, match=r"tokens=17 .* 16 grid tokens.*grid=\(5, 5\)"):
        am(**inputs)
    with am.disable_adapter():
        am(**inputs)  # the base model still runs


def test_merge_refuses_with_a_clear_error():
    model, inputs = tiny_bert()
    am = get_adapter_model(model, PhysicsConfig(target_modules=["attention.output.dense"],
                                                grid="sequence"))
    layer = _layers(am)[0]
    with pytest.raises(TypeError, match="not a weight update"):
        layer.merge()
    with pytest.raises(TypeError, match="cannot be merged"):
        am.merge_and_unload()
    plain = am.unload()
    assert not any(isinstance(m, PhysicsLayer) for m in plain.modules())


def test_standalone_layer_on_a_linear():
    torch.manual_seed(0)
    base = nn.Linear(16, 16)
    layer = PhysicsLayer(base, rank=3, grid="sequence", router="token")
    assert not any(p.requires_grad for p in base.parameters())
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(layer(x), base(x), atol=0, rtol=0)
    assert abs(float(layer.aux_loss().detach())) < 1e-7  # uniform router at init
    with torch.no_grad():
        layer.physics["default"].router.gate.weight.normal_()
        layer.physics["default"].up.weight.normal_()
    y = layer(x)
    assert not torch.allclose(y, base(x))
    assert layer.aux_loss() > 0
    assert math.isclose(float(layer.aux_loss().detach()),
                        float(layer.physics["default"].aux_loss().detach()))


def test_adapter_output_reuses_the_base_output():
    torch.manual_seed(0)
    base = nn.Linear(16, 16)
    layer = PhysicsLayer(base, rank=3, grid="sequence")
    with torch.no_grad():
        layer.physics["default"].up.weight.normal_()
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        torch.testing.assert_close(layer.adapter_output(x, base(x), ["default"]), layer(x))


def test_parallel_adapter_on_a_non_square_linear():
    model, _ = tiny_vit()
    fc1 = next(m for n, m in model.named_modules() if n.endswith("fc1"))
    layer = PhysicsLayer(fc1, rank=4, extra_tokens=1)
    x = torch.randn(2, 17, fc1.in_features)
    torch.testing.assert_close(layer(x), fc1(x))          # zero delta at init
    adapter = layer.physics["default"]
    assert (adapter.dim, adapter.out_dim) == (fc1.in_features, fc1.out_features)
    nn.init.normal_(adapter.up.weight)
    assert layer(x).shape == (2, 17, fc1.out_features)


def test_physics_adapter_deepcopies_and_pickles_after_a_training_forward():
    import copy
    import pickle

    adapter = physics.PhysicsAdapter(16, rank=4, grid="sequence")
    x = torch.randn(2, 9, 16)
    (adapter(x).sum() + adapter.aux_loss()).backward()
    twin = copy.deepcopy(adapter)
    pickle.loads(pickle.dumps(adapter))
    torch.testing.assert_close(twin(x), adapter(x))


def test_only_a_patch_grid_model_refuses_grid_tokens_that_are_no_square():
    """grid='auto' falls back to 1D for a token count that is no square, except in a model
    with a patch grid (config image_size / patch_size), where it means extra_tokens misses
    the CLS token: refused there (the catalogue's physics_vit_no_extra_tokens), while
    grid='sequence' asks for 1D explicitly and a text model keeps the fallback."""
    model, inputs = tiny_vit()
    cfg = PhysicsConfig(target_modules=["attention"], placement="input", rank=4)
    with pytest.raises(ValueError, match=r"extra_tokens=0 puts 17 of the 17 tokens .* here "
                                         r"extra_tokens=1 leaves 4x4 = 16 patches"):
        get_adapter_model(model, cfg)(**inputs)
    model, inputs = tiny_vit()
    am = get_adapter_model(model, PhysicsConfig(target_modules=["attention"], grid="sequence",
                                                placement="input", rank=4))
    assert _layers(am)[0].physics["default"].grid_shape(17) == (17,)
    am(**inputs)
    model, batch = tiny_bert()
    am = get_adapter_model(model, PhysicsConfig(target_modules=["attention.self"], rank=4,
                                                placement="input"))
    adapter = _layers(am)[0].physics["default"]
    assert adapter.square_grid is None and adapter.grid_shape(17) == (17,)
    am(**batch)
