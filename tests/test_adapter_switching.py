"""Several adapters, peft's semantics: only the active ones train (modules_to_save copies
too), ``merge_adapter`` / ``merge_and_unload`` with ``adapter_names``.  References: the
same model with one adapter active, peft's behaviour written out, the base model."""
import copy

import pytest
import torch

from qiadapters import AdapterModel, HammingConfig, get_adapter_model
from qiadapters.testing import perturb, tiny_mlp


def two_adapters():
    """``default`` on fc1+fc2 (+ a head copy), ``b`` on fc2 (input side, + its head copy)."""
    model, inputs = tiny_mlp()
    am = get_adapter_model(model, HammingConfig(target_modules=["fc1", "fc2"],
                                                modules_to_save=["head"]))
    am.add_adapter("b", HammingConfig(target_modules=["fc2"], side="input",
                                      modules_to_save=["head"]))
    am.set_adapter(["default", "b"])  # perturb both, then go back to "default" alone
    perturb(am)
    am.set_adapter("default")
    return am, inputs


def trainable(am, adapter):
    """requires_grad of every parameter of ``adapter`` (its copies of ``head`` included)."""
    params = {n: p.requires_grad for n, p in am.named_parameters() if f".{adapter}." in n}
    assert params and any(".modules_to_save." in n for n in params)
    return set(params.values())


def test_only_active_adapters_train():
    am, inputs = two_adapters()
    assert trainable(am, "default") == {True} and trainable(am, "b") == {False}
    am.set_adapter("b")
    assert trainable(am, "default") == {False} and trainable(am, "b") == {True}
    before = {n: p.detach().clone() for n, p in am.named_parameters()}
    opt = torch.optim.SGD([p for p in am.parameters() if p.requires_grad], lr=0.1)
    am(**inputs).square().mean().backward()
    opt.step()
    changed = {n for n, p in am.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".b." in n for n in changed), changed
    am.set_adapter(["default", "b"])
    assert trainable(am, "default") == {True} and trainable(am, "b") == {True}
    am.set_adapter("default", inference_mode=True)
    assert trainable(am, "default") == {False} and trainable(am, "b") == {False}
    am.set_adapter("default")
    assert trainable(am, "default") == {True}


def test_frozen_adapters_stay_frozen(tmp_path):
    am, _ = two_adapters()
    am.save_pretrained(tmp_path, selected_adapters=["b"])
    am.add_adapter("c", HammingConfig(target_modules=["fc1"]), trainable=False)
    for active in ("c", ["default", "c"]):
        am.set_adapter(active)
        assert not any(p.requires_grad for n, p in am.named_parameters() if ".c." in n)
    am.delete_adapter("b")  # switched off by set_adapter("c"), then deleted: forgotten
    am.add_adapter("b", HammingConfig(target_modules=["fc2"]), trainable=False)
    am.set_adapter("b")
    assert not any(p.requires_grad for n, p in am.named_parameters() if ".b." in n)
    model = tiny_mlp()[0]
    loaded = AdapterModel(model)
    loaded.load_adapter(tmp_path / "b", "b", is_trainable=False)
    loaded.set_adapter("b")
    assert not any(p.requires_grad for p in loaded.parameters())


def test_merge_adapter_by_name():
    am, inputs = two_adapters()
    fc2 = am.base_model.fc2
    h = torch.randn(3, 48)
    with torch.no_grad():
        fc2.set_adapter("b")
        y_b = fc2(h)  # reference: the layer running adapter "b" alone, unmerged
        fc2.set_adapter("default")
        w0 = fc2.base_layer.weight.detach().clone()
        y_default = am(**inputs)
    with pytest.raises(ValueError, match=r"adapter_names=\['zz'\] is not valid; existing "
                                         r"adapters: \['default', 'b'\]"):
        am.merge_adapter(adapter_names=["zz"])
    assert torch.equal(fc2.base_layer.weight, w0) and not fc2.merged
    am.merge_adapter(adapter_names=["b"])
    assert fc2.merged_adapters == ["b"] and not am.base_model.fc1.merged
    with torch.no_grad():
        torch.testing.assert_close(fc2.base_layer(h), y_b, atol=1e-5, rtol=1e-5)
    am.unmerge_adapter()
    torch.testing.assert_close(fc2.base_layer.weight, w0, atol=1e-6, rtol=1e-6)
    with pytest.warns(DeprecationWarning, match="safe_merge"):
        am.merge_adapter(True)  # the old positional safe_merge
    with torch.no_grad():
        torch.testing.assert_close(am(**inputs), y_default, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("names", [["b"], ["default"], ["default", "b"]])
def test_merge_and_unload_selected(names):
    am, inputs = two_adapters()
    reference = copy.deepcopy(am)
    reference.set_adapter(names)
    with torch.no_grad():
        expected = reference(**inputs)
    plain = am.merge_and_unload(adapter_names=names)
    assert not any("hamming" in n or "modules_to_save" in n for n, _ in plain.named_modules())
    assert type(plain.head) is torch.nn.Linear and type(plain.fc1) is torch.nn.Linear
    with torch.no_grad():
        torch.testing.assert_close(plain(**inputs), expected, atol=1e-5, rtol=1e-5)
        if names == ["b"]:  # fc1 held only "default": removed, so it is the original fc1
            torch.testing.assert_close(plain.fc1.weight, tiny_mlp()[0].fc1.weight)


def test_merge_and_unload_bad_name_changes_nothing():
    am, inputs = two_adapters()
    with torch.no_grad():
        y = am(**inputs)
    with pytest.raises(ValueError, match="adapter_names='x' is not valid"):
        am.merge_and_unload(adapter_names="x")
    assert list(am.peft_config) == ["default", "b"]
    with torch.no_grad():
        assert torch.equal(am(**inputs), y)
