"""The model API's state boundary: a layer's merge state travels with ``state_dict``, deleting
the active adapter activates another (as peft), boolean arguments must be bools, unmerging
with nothing merged warns on the model as on a layer, and saved files follow the umask."""
import os
import stat
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from qiadapters import AdapterModel, HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.testing import perturb, tiny_bert, tiny_gpt2, tiny_mlp

CFG = HammingConfig(target_modules=["fc1", "fc2"])


def adapted(seed: int = 0, config=CFG):
    """A perturbed adapter model on ``tiny_mlp(seed)`` and its inputs."""
    model, inputs = tiny_mlp(seed)
    am = perturb(get_adapter_model(model, config))
    return am, inputs


def merge_keys(sd: dict) -> list[str]:
    return sorted(k for k in sd if k.endswith("._extra_state"))


# --------------------------------------------------------------- merge state in state_dict
@torch.no_grad()
def test_a_merged_state_dict_loads_into_an_unmerged_model_without_applying_D_twice():
    am, inputs = adapted()
    expected = am(**inputs)
    base = {n: p.clone() for n, p in am.base_model.named_parameters() if "base_layer" in n}
    am.merge_adapter()
    sd = am.state_dict()
    assert merge_keys(sd) == ["base_model.fc1._extra_state", "base_model.fc2._extra_state"]
    other, _ = adapted(seed=3)  # another base and other adapter values: all come from sd
    other.load_state_dict(sd, strict=True)
    assert all(layer.merged_adapters == ["default"] for _, layer in other.adapter_layers())
    torch.testing.assert_close(other(**inputs), expected, atol=1e-5, rtol=1e-5)
    other.unmerge_adapter()  # back to the saved model's base weights
    for n, p in other.base_model.named_parameters():
        if n in base:
            torch.testing.assert_close(p, base[n], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(other(**inputs), expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_an_unmerged_state_dict_loads_into_a_merged_model():
    am, inputs = adapted()
    expected = am(**inputs)
    sd = am.state_dict()
    other, _ = adapted(seed=3)
    other.merge_adapter()
    other.load_state_dict(sd)
    assert not any(layer.merged for _, layer in other.adapter_layers())
    torch.testing.assert_close(other(**inputs), expected, atol=1e-6, rtol=1e-6)


@torch.no_grad()
def test_a_state_dict_without_the_merge_state_still_loads_strictly():
    """A 0.3.2 state dict (no merge-state keys) loads with strict=True; each layer keeps its
    own merge state, as before."""
    am, inputs = adapted()
    expected = am(**inputs)
    old = {k: v for k, v in am.state_dict().items() if not k.endswith("._extra_state")}
    other, _ = adapted(seed=3)
    result = other.load_state_dict(old, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    torch.testing.assert_close(other(**inputs), expected, atol=1e-6, rtol=1e-6)


@torch.no_grad()
def test_the_merge_state_survives_a_safetensors_file_and_transformers_save_pretrained(tmp_path):
    model, batch = tiny_bert()
    am = perturb(get_adapter_model(model, HammingConfig(target_modules=["query", "value"])))
    expected = am(**batch).logits
    am.merge_adapter()
    save_file(am.state_dict(), tmp_path / "model.safetensors")
    am.base_model.save_pretrained(tmp_path / "hf")  # tensors only: it writes safetensors
    for sd, prefix in ((load_file(tmp_path / "model.safetensors"), ""),
                       (load_file(tmp_path / "hf" / "model.safetensors"), "base_model.")):
        fresh = get_adapter_model(tiny_bert(seed=5)[0], HammingConfig(target_modules=["query",
                                                                                      "value"]))
        fresh.load_state_dict({prefix + k: v for k, v in sd.items()}, strict=False)
        torch.testing.assert_close(fresh(**batch).logits, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_a_merged_mixture_state_dict_is_refused_by_an_unmerged_mixture():
    """A mixture's merge is not invertible (its original weights are not in the state dict),
    so an unmerged mixture cannot take a merged state: a clear error, not a double D."""
    cfg = MixtureConfig(target_modules=["fc2"], router="global",
                        experts=[HammingConfig(), HammingConfig(blocks=4)])
    am, inputs = adapted(config=cfg)
    am.merge_adapter()
    other, _ = adapted(seed=3, config=cfg)
    with pytest.raises(RuntimeError, match=r"fc2: merged with \['default'\] in the state dict"):
        other.load_state_dict(am.state_dict())
    am.unmerge_adapter()  # the other way round is fine: the kept originals are dropped
    expected = am(**inputs)
    other.merge_adapter()
    other.load_state_dict(am.state_dict())
    torch.testing.assert_close(other(**inputs), expected, atol=1e-6, rtol=1e-6)


def test_experts_and_modules_to_save_hold_no_merge_state():
    cfg = MixtureConfig(target_modules=["fc2"], router="global", experts=[HammingConfig()],
                        modules_to_save=["head"])
    am, _ = adapted(config=cfg)
    assert merge_keys(am.state_dict()) == ["base_model.fc2._extra_state"]


# --------------------------------------------------------------- deleting the active adapter
def test_deleting_the_active_adapter_activates_the_first_remaining_one_with_a_warning():
    am, inputs = adapted()
    am.add_adapter("b", HammingConfig(target_modules=["fc2"], blocks=4))
    am.add_adapter("a", HammingConfig(target_modules=["fc1"], blocks=4))
    perturb(am, seed=4)
    am.set_adapter("a")
    expected_a = am(**inputs)
    am.set_adapter("default")
    with pytest.warns(UserWarning, match="'default' was active and is deleted; "
                                         "the active adapter is now 'a'"):
        am.delete_adapter("default")  # as peft: the first remaining name in sorted order
    assert am.active_adapters == ["a"] and am.active_adapter == "a"
    assert all(p.requires_grad for n, p in am.named_parameters() if ".hamming.a." in n)
    torch.testing.assert_close(am(**inputs), expected_a)


def test_deleting_one_of_several_active_adapters_keeps_the_others_quietly():
    am, inputs = adapted()
    am.add_adapter("b", HammingConfig(target_modules=["fc2"], blocks=4))
    am.add_adapter("c", HammingConfig(target_modules=["fc2"], blocks=2))
    am.set_adapter(["default", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        am.delete_adapter("default")
        assert am.active_adapters == ["b"]
        am.delete_adapter("c")  # not active: nothing to say
    assert am.active_adapters == ["b"]


def test_deleting_the_last_adapter_leaves_none_active():
    am, inputs = adapted()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        am.delete_adapter("default")
    assert am.active_adapters == [] and am.peft_config == {}


# --------------------------------------------------------------- boolean arguments
@pytest.mark.parametrize("call, arg", [
    (lambda am, d: am.merge_and_unload(safe_merge="yes"), "safe_merge='yes'"),
    (lambda am, d: am.merge_adapter(safe_merge=1), "safe_merge=1"),
    (lambda am, d: am.base_model.fc1.merge(safe_merge="no"), "safe_merge='no'"),
    (lambda am, d: am.save_pretrained(d, overwrite="no"), "overwrite='no'"),
    (lambda am, d: am.load_adapter(d, "b", is_trainable="yes"), "is_trainable='yes'"),
    (lambda am, d: AdapterModel.from_pretrained(tiny_mlp()[0], d, is_trainable=1),
     "is_trainable=1"),
    (lambda am, d: am.add_adapter("b", CFG, trainable=None), "trainable=None"),
    (lambda am, d: am.set_adapter("default", inference_mode="no"), "inference_mode='no'"),
])
def test_boolean_arguments_must_be_bools(call, arg, tmp_path):
    am, inputs = adapted()
    am.save_pretrained(tmp_path / "saved")
    before = {k: v.clone() for k, v in am.state_dict().items()}
    with pytest.raises(TypeError, match=f"{arg} must be True or False"):
        call(am, tmp_path / "saved")
    assert list(am.peft_config) == ["default"] and not any(l.merged for _, l in am.adapter_layers())
    assert all(torch.equal(v, am.state_dict()[k]) for k, v in before.items())


# --------------------------------------------------------------- unmerge with nothing merged
def test_unmerge_with_nothing_merged_warns_once_on_the_model_as_on_a_layer():
    am, _ = adapted()
    with pytest.warns(UserWarning, match="not merged; unmerge") as record:
        am.base_model.fc1.unmerge()
    with pytest.warns(UserWarning, match=r"no adapter layer is merged; unmerge_adapter\(\) is "
                                         r"a no-op") as record:
        am.unmerge_adapter()
    assert len(record) == 1
    am.merge_adapter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        am.unmerge_adapter()


# --------------------------------------------------------------- file modes
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_files_get_the_mode_a_plain_write_gives(umask, tmp_path):
    am, _ = adapted()
    old = os.umask(umask)
    try:
        am.save_pretrained(tmp_path / "new")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    plain = stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert plain == 0o666 & ~umask
    for name in os.listdir(tmp_path / "new"):
        assert stat.S_IMODE(os.stat(tmp_path / "new" / name).st_mode) == plain, name


def test_a_saved_file_already_present_keeps_its_mode(tmp_path):
    am, _ = adapted()
    am.save_pretrained(tmp_path)
    for name in os.listdir(tmp_path):
        os.chmod(tmp_path / name, 0o640)
    perturb(am, seed=9)
    am.save_pretrained(tmp_path)  # an update, as `open(path, "w")` keeps the mode
    assert {stat.S_IMODE(os.stat(tmp_path / n).st_mode) for n in os.listdir(tmp_path)} == {0o640}


def test_a_deleted_name_added_again_is_not_active_on_layers_that_never_held_it():
    am, inputs = adapted()
    am.add_adapter("b", HammingConfig(target_modules=["fc2"], blocks=4))
    am.set_adapter(["default", "b"])  # fc1 holds no "b" but was told it is active
    am.set_adapter("default")
    am.delete_adapter("b")  # inactive now
    am.set_adapter("default")
    am.add_adapter("b", HammingConfig(target_modules=["fc2"], blocks=4))
    am.set_adapter(["default", "b"])
    am.delete_adapter("b")  # active on fc2, and on fc1 by name only
    am.add_adapter("b", HammingConfig(target_modules=["fc1"], blocks=4))
    perturb(am, seed=5)  # "b" on fc1 changes the output if it runs
    assert am.active_adapters == ["default"] and am.base_model.fc1.active_adapters == ["default"]
    y = am(**inputs)
    am.delete_adapter("b")
    torch.testing.assert_close(am(**inputs), y)


@torch.no_grad()
def test_a_merged_state_dict_of_a_tied_head_keeps_the_embedding_it_holds():
    """GPT-2's lm_head is its input embedding: merged, the head holds a private copy. Loaded
    into an unmerged (tied) model, the merged head must not be written into the embedding."""
    model, batch = tiny_gpt2()
    cfg = HammingConfig(target_modules=["lm_head"], blocks=2)
    am = perturb(get_adapter_model(model, cfg)).eval()
    expected = am(**batch).logits
    am.merge_adapter()
    sd = am.state_dict()
    other = get_adapter_model(tiny_gpt2(seed=3)[0], cfg).eval()
    assert other.base_model.lm_head.weight is other.base_model.transformer.wte.weight
    other.load_state_dict(sd)
    torch.testing.assert_close(other.base_model.transformer.wte.weight,
                               sd["base_model.transformer.wte.weight"])
    torch.testing.assert_close(other(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    other.unmerge_adapter()  # tied again, to the loaded embedding
    assert other.base_model.lm_head.weight is other.base_model.transformer.wte.weight
    torch.testing.assert_close(other(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    am.unmerge_adapter()  # and an unmerged state dict into a merged model ties it again
    other.merge_adapter()
    other.load_state_dict(am.state_dict())
    assert other.base_model.lm_head.weight is other.base_model.transformer.wte.weight
    torch.testing.assert_close(other(**batch).logits, expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ training mode
def test_adapter_layers_take_the_mode_of_the_module_they_replace():
    from torch import nn

    from qiadapters import HammingAdapter
    assert not HammingAdapter(nn.Linear(8, 8).eval(), blocks=1).training
    assert HammingAdapter(nn.Linear(8, 8), blocks=1).training
    for cfg in (HammingConfig(target_modules=["fc1", "fc2"]),
                MixtureConfig(target_modules=["fc1"], experts=[
                    {"adapter_type": "hamming"}, {"adapter_type": "physics"}])):
        model, batch = tiny_mlp()  # in eval mode
        am = perturb(get_adapter_model(model, cfg))
        assert not any(m.training for m in am.modules())
        am.merge_adapter() if cfg.adapter_type == "hamming" else None
        with torch.enable_grad():  # inference on a merged model needs no torch.no_grad()
            am(**batch)
        am.train()
        assert all(m.training for m in am.modules())
    am.eval()
    am.add_adapter("other", HammingConfig(target_modules=["fc2"]))
    assert not any(m.training for m in am.modules())


def test_a_merged_model_in_training_mode_computes_and_refuses_only_a_backward_pass():
    model, batch = tiny_mlp()
    am = perturb(get_adapter_model(model, HammingConfig(target_modules=["fc1", "fc2"]))).train()
    unmerged = am(**batch)
    am.merge_adapter()
    merged = am(**batch)  # gradients on, training mode: the forward is the merged one
    torch.testing.assert_close(merged, unmerged.detach(), atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match=r"is merged: .* no gradient; call unmerge_adapter"):
        merged.sum().backward()
    for p in am.parameters():  # frozen adapters: other modules train on the merged weights
        p.requires_grad_(False)
    head = torch.nn.Linear(merged.shape[-1], 1)
    head(am(**batch)).sum().backward()
    assert head.weight.grad is not None
