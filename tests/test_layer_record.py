"""Format 5: the saved config records each adapted layer's shape (``"layers"``, keyed by module
path) and loading checks it against the model before anything is built, so an adapter whose
tensors happen to fit another model (a Hamming adapter's depend only on its block layout)
is refused there; files of formats 1-4 (no record) load as before."""
import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from qiadapters import AdapterModel, HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.adapters import formats
from qiadapters.adapters.config import AdapterConfig
from qiadapters.model import io
from qiadapters.testing import TinyMLP, perturb, tiny_cnn, tiny_mlp

# blocks=3, orders {1,2}: 32 and 40 features both give blocks of n = 4 qubits (10 and 13
# features, padded), so the tensors are (3, 6) on either width
SAME_TENSORS = HammingConfig(target_modules=["fc1", "fc2"], blocks=3)
FORMAT_4 = os.path.join(os.path.dirname(__file__), "data", "saved_by_0.3.2")


def mlp(hidden: int, seed: int = 0) -> TinyMLP:
    torch.manual_seed(seed)
    return TinyMLP(hidden=hidden).eval()


def untouched(model: nn.Module) -> bool:
    """No adapter layer, hook or trainable parameter left behind."""
    hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())
    return hooks == 0 and "Hamming" not in repr(model)


def saved(folder, config=SAME_TENSORS, model=None):
    am = perturb(get_adapter_model(mlp(32) if model is None else model, config))
    am.save_pretrained(folder)
    return am


def test_the_config_records_every_adapted_layer_by_module_path(tmp_path):
    cfg = HammingConfig(target_modules=["fc1", "fc2"], blocks=3, modules_to_save=["head"])
    saved(tmp_path, cfg)
    data = json.loads((tmp_path / "adapter_config.json").read_text())
    assert data["format_version"] == formats.FORMAT_VERSION == 6
    # blocks=3 on 32 features: blocks of 10, n = 4 qubits (4 + 6 dims for orders 1, 2)
    layout = {"blocks": 3, "n": 4, "block_size": 10, "orders": [1, 2], "side": "output",
              "parametrization": "cayley"}
    assert data["layers"] == {"fc1": {"in": 16, "out": 32, "layout": layout},
                              "fc2": {"in": 32, "out": 32, "layout": layout}}
    config, _ = io.read_adapter(tmp_path)  # the record is no config field
    assert config == cfg and AdapterConfig.from_dict(config.to_dict()) == cfg
    assert AdapterConfig.load(tmp_path) == cfg


def test_an_adapter_whose_tensors_fit_another_width_is_refused_naming_the_layer(tmp_path):
    saved(tmp_path)
    model = mlp(40)
    with pytest.raises(ValueError, match=r"does not fit module 'fc1': it was saved for a layer "
                                         r"of shape \(in=16, out=32\), this model's is "
                                         r"\(in=16, out=40\)"):
        AdapterModel.from_pretrained(model, tmp_path)
    assert untouched(model)
    am = get_adapter_model(mlp(40), HammingConfig(target_modules=["fc2"]))
    with pytest.raises(ValueError, match="does not fit module 'fc1'"):
        am.load_adapter(tmp_path, "other")
    assert list(am.peft_config) == ["default"] and len(list(am.adapter_layers())) == 1


def test_convolutions_record_their_channels_and_kernel(tmp_path):
    model, inputs = tiny_cnn(0)
    saved(tmp_path, HammingConfig.paper(target_modules=["conv1"], orders=(1,)), model)
    data = json.loads((tmp_path / "adapter_config.json").read_text())
    assert data["layers"] == {"conv1": {"in": 3, "out": 16, "kernel": [3, 3], "layout": {
        "blocks": 3, "n": 5, "block_size": 5, "orders": [1], "side": "output",
        "parametrization": "cayley"}}}
    other, _ = tiny_cnn(0)
    other.conv1 = nn.Conv2d(3, 16, 5, padding=2)  # same channels: the same adapter tensors
    with pytest.raises(ValueError, match=r"'conv1': it was saved for a layer of shape "
                                         r"\(in=3, out=16, kernel=\[3, 3\]\), this model's is "
                                         r"\(in=3, out=16, kernel=\[5, 5\]\)"):
        AdapterModel.from_pretrained(other, tmp_path)
    assert untouched(other)


def test_mixture_and_physics_layers_record_the_widths_their_experts_and_deltas_act_on(tmp_path):
    pytest.importorskip("physics")
    from physics import PhysicsConfig
    cfg = MixtureConfig(target_modules=["fc2"], router="token",
                        experts=[HammingConfig(blocks=3), PhysicsConfig(rank=2, grid="sequence")])
    saved(tmp_path / "mixture", cfg)
    saved(tmp_path / "physics", PhysicsConfig(target_modules=["fc1"], rank=2, grid="sequence",
                                              placement="input"))
    layers = {name: json.loads((tmp_path / name / "adapter_config.json").read_text())["layers"]
              for name in ("mixture", "physics")}
    hamming = {"blocks": 3, "n": 4, "block_size": 10, "orders": [1, 2], "side": "output",
               "parametrization": "cayley"}  # the physics expert has no layout
    assert layers == {"mixture": {"fc2": {"in": 32, "out": 32, "experts": [hamming, None]}},
                      "physics": {"fc1": {"in": 16, "out": 32}}}


def test_a_record_that_fits_loads_and_saving_again_is_an_update(tmp_path):
    am = saved(tmp_path)
    _, inputs = tiny_mlp(0)
    loaded = AdapterModel.from_pretrained(mlp(32), tmp_path, is_trainable=True)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs), am.eval()(**inputs), rtol=0, atol=0)
    perturb(loaded, seed=3)
    loaded.save_pretrained(tmp_path)  # the same adapter, trained further


def test_saving_an_adapter_of_another_width_over_one_is_refused(tmp_path):
    """Same config, same tensor names and shapes: only the record tells them apart."""
    saved(tmp_path)
    wider = perturb(get_adapter_model(mlp(40), SAME_TENSORS))
    with pytest.raises(FileExistsError, match=r"its layers differ, first 'fc1': "
                                              r"\(in=16, out=32\) saved, \(in=16, out=40\) now"):
        wider.save_pretrained(tmp_path)
    wider.save_pretrained(tmp_path, overwrite=True)


def test_a_reader_of_format_4_refuses_newer_files(tmp_path, monkeypatch):
    saved(tmp_path)
    monkeypatch.setattr(formats, "FORMAT_VERSION", 4)
    with pytest.raises(ValueError, match=r"is in adapter format 6 .*\(formats 1 to 4\)"):
        io.read_adapter(tmp_path)


@pytest.mark.parametrize("record, match", [
    ("fc1", r"'layers'='fc1' must map module paths to their shapes"),
    ({"fc1": {"in": "16"}}, r"'layers' entry 'fc1'=\{'in': '16'\} must map shape names to "
                            r"integers or lists of integers"),
    ({"fc1": [16, 32]}, r"'layers' entry 'fc1'=\[16, 32\] must map shape names"),
])
def test_a_malformed_record_is_refused_naming_the_file(tmp_path, record, match):
    saved(tmp_path)
    path = tmp_path / "adapter_config.json"
    data = json.loads(path.read_text())
    data["layers"] = record
    path.write_text(json.dumps(data))
    model = mlp(32)
    with pytest.raises(ValueError, match=match) as info:
        AdapterModel.from_pretrained(model, tmp_path)
    assert "adapter_config.json" in str(info.value) and untouched(model)


@pytest.mark.parametrize("name", ["hamming", "mixture", "physics", "conv", "input_block_size"])
def test_format_4_files_without_a_record_load_with_the_outputs_0_3_2_computed(name, tmp_path):
    if name in ("mixture", "physics"):
        pytest.importorskip("physics")
    directory = os.path.join(FORMAT_4, name)
    raw = json.loads(open(os.path.join(directory, "adapter_config.json")).read())
    assert raw["format_version"] == 4 and "layers" not in raw
    model, inputs = (tiny_cnn if name == "conv" else tiny_mlp)(0)
    am = AdapterModel.from_pretrained(model, directory)
    expected = load_file(os.path.join(directory, "expected_logits.safetensors"))["logits"]
    with torch.no_grad():
        torch.testing.assert_close(am(**inputs), expected, rtol=1e-6, atol=1e-6)
    shutil.copytree(directory, tmp_path / "again")  # saving over it again is an update
    am.save_pretrained(tmp_path / "again")
    assert "layers" in json.loads((tmp_path / "again" / "adapter_config.json").read_text())


def test_resuming_into_a_model_of_another_width_is_refused_before_any_tensor_is_written(tmp_path):
    from qiadapters.integrations.transformers import load_adapter_weights

    saved(tmp_path)
    am = get_adapter_model(mlp(40), SAME_TENSORS)  # the same tensor shapes, another width
    before = {k: v.clone() for k, v in io.adapter_state_dict(am.base_model, "default").items()}
    with pytest.raises(ValueError, match=r"does not fit module 'fc1'.*\(in=16, out=40\)"):
        load_adapter_weights(am, tmp_path)
    after = io.adapter_state_dict(am.base_model, "default")
    assert all(torch.equal(before[k], after[k]) for k in before)
