"""The adapter-model machinery: targeting, validation before modification, adapter
management, modules_to_save, unloading, and a second (non-mergeable) family plugging in."""
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch
from torch import nn

import qiadapters
from qiadapters import HammingAdapter, HammingConfig, get_adapter_model
from qiadapters.adapters import AdapterConfig, AdapterLayer, AdapterParts
from qiadapters.adapters.registry import registered
from qiadapters.model import ModulesToSave
from qiadapters.testing import assert_valid_adapter, build, logits, perturb, tiny_bert, tiny_mlp



def wrapped(model, cls=AdapterLayer):
    return sorted(n for n, m in model.named_modules() if isinstance(m, cls))


def snapshot(model):
    return ({n: type(m) for n, m in model.named_modules()},
            {n: (p.requires_grad, p.detach().clone()) for n, p in model.named_parameters()})


def assert_unchanged(model, snap):
    modules, params = snapshot(model)
    assert modules == snap[0]
    assert params.keys() == snap[1].keys()
    for n, (grad, value) in params.items():
        assert grad == snap[1][n][0] and torch.equal(value, snap[1][n][1]), n


# ------------------------------------------------------------------------- the demo API
def test_demo_api(capsys):
    model, batch = tiny_bert()
    cfg = qiadapters.HammingConfig(target_modules=["query", "value"], orders=(1, 2), blocks=3,
                                   modules_to_save=["classifier"])
    am = qiadapters.get_adapter_model(model, cfg)
    am.print_trainable_parameters()
    out = capsys.readouterr().out
    assert out.startswith("trainable params: ") and "all params" in out and "trainable%" in out
    assert isinstance(am, qiadapters.AdapterModel) and am.active_adapters == ["default"]
    assert am.config is model.config  # attribute pass-through
    labels = torch.tensor([0, 2])
    loss = am(**batch, labels=labels).loss + am.aux_loss()
    loss.backward()
    assert float(am.aux_loss()) == 0.0
    assert wrapped(am, HammingAdapter) == [f"base_model.bert.encoder.layer.{i}.attention.self.{t}"
                                           for i in range(2) for t in ("query", "value")]
    assert wrapped(am, ModulesToSave) == ["base_model.classifier"]


# ------------------------------------------------------------------------- targeting
@pytest.mark.parametrize("target, expected", [
    (["fc1"], ["fc1"]),
    ([r"fc2", "fc1"], ["fc1", "fc2"]),
    (r"fc\d", ["fc1", "fc2"]),
    (r"fc", []),  # a regex must match the whole name
    ("all-linear", ["fc1", "fc2"]),  # the output head is excluded
])
def test_target_selection_mlp(target, expected):
    model, _ = tiny_mlp()
    cfg = HammingConfig(target_modules=target, blocks=1)
    if not expected:
        with pytest.raises(ValueError, match=r"matches no module of TinyMLP; some module names: "
                                             r"\['fc1', 'fc2', 'head'\]"):
            get_adapter_model(model, cfg)
        return
    am = get_adapter_model(model, cfg)
    assert wrapped(am.base_model) == expected


def test_all_linear_on_bert_excludes_the_classifier_only():
    model, _ = tiny_bert()
    linears = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    am = get_adapter_model(model, HammingConfig(target_modules="all-linear", blocks=1))
    assert set(wrapped(am.base_model)) == linears - {"classifier"}
    assert "bert.pooler.dense" in wrapped(am.base_model)


# ------------------------------------------------------------------------- validation first
@pytest.mark.parametrize("config, error, match", [
    (HammingConfig(target_modules=["query", "LayerNorm"]), TypeError,
     r"module 'bert.embeddings.LayerNorm' \(LayerNorm\): a Hamming adapter cannot wrap a "
     r"torch.nn.modules.normalization.LayerNorm; supported base kinds: 'linear'"),
    (HammingConfig(target_modules=["query", "classifier"], blocks=3), ValueError,
     r"module 'classifier' \(Linear\): blocks=3 gives block size floor\(3 / 3\) = 1"),
    (HammingConfig(target_modules=["query"], side="input", n_qubits=8), ValueError,
     r"module 'bert.encoder.layer.0.attention.self.query' \(Linear\): n_qubits=8"),
    (HammingConfig(), ValueError,
     r"target_modules is required to inject a HammingConfig into a model"),
    (HammingConfig(target_modules=["qurey"]), ValueError,
     r"target_modules=\['qurey'\] matches no module of BertForSequenceClassification; "
     r"some module names: \['bert.encoder.layer.0.attention.self.query'"),
    (HammingConfig(target_modules=["query"], modules_to_save=["clasifier"]), ValueError,
     r"modules_to_save=\['clasifier'\] matches no module"),
    (HammingConfig(target_modules=["query", "classifier"], blocks=1,
                   modules_to_save=["classifier"]),
     ValueError, r"\['classifier'\] are both targets and modules_to_save"),
])
def test_bad_config_leaves_the_model_untouched(config, error, match):
    model, _ = tiny_bert()
    snap = snapshot(model)
    with pytest.raises(error, match=match):
        get_adapter_model(model, config)
    assert_unchanged(model, snap)


def test_bad_second_adapter_leaves_the_model_untouched():
    am, _ = build(tiny_mlp, HammingConfig(target_modules=["fc1"]))
    snap = snapshot(am)
    with pytest.raises(ValueError, match="'fc1' is already wrapped by HammingAdapter.*cannot"):
        am.add_adapter("other", DoublingConfig(target_modules=["fc1"]))
    with pytest.raises(ValueError, match="'default' already exists"):
        am.add_adapter("default", HammingConfig(target_modules=["fc2"]))
    with pytest.raises(ValueError, match="without '.'"):
        am.add_adapter("a.b", HammingConfig(target_modules=["fc2"]))
    with pytest.raises(TypeError, match="config must be an AdapterConfig"):
        am.add_adapter("x", {"target_modules": ["fc2"]})
    assert_unchanged(am, snap)


def test_not_an_nn_module():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        get_adapter_model("bert", HammingConfig(target_modules=["q"]))


def test_the_class_shows_the_wrapped_forward_and_round_trips():
    """One AdapterModel subclass per wrapped class, whose forward carries the wrapped
    signature (Trainer reads it from the class); pickle, deepcopy and torch.save keep it."""
    import copy
    import inspect
    import io
    import pickle

    from transformers.utils.generic import find_labels

    am = get_adapter_model(tiny_bert()[0], HammingConfig(target_modules=["query"], blocks=2))
    cls = type(am)
    assert isinstance(am, qiadapters.AdapterModel) and cls.__bases__ == (qiadapters.AdapterModel,)
    assert cls.__name__ == "AdapterModel[BertForSequenceClassification]"
    assert repr(am).startswith("AdapterModel[BertForSequenceClassification](")
    assert inspect.signature(am.forward) == inspect.signature(am.base_model.forward)
    assert find_labels(cls) == ["labels"]
    assert type(qiadapters.AdapterModel(tiny_bert()[0])) is cls
    assert type(get_adapter_model(tiny_mlp()[0], HammingConfig(target_modules=["fc1"]))) is not cls
    buffer = io.BytesIO()
    torch.save(am, buffer)
    buffer.seek(0)
    ids = tiny_bert()[1]["input_ids"]
    for clone in (copy.deepcopy(am), pickle.loads(pickle.dumps(am)),
                  torch.load(buffer, weights_only=False)):
        assert type(clone) is cls
        assert torch.equal(clone(input_ids=ids).logits, am(input_ids=ids).logits)

    class Custom(qiadapters.AdapterModel):
        pass

    custom = Custom(tiny_bert()[0])
    assert type(custom).__bases__ == (Custom,) and type(custom).__name__.startswith("Custom[")


# ------------------------------------------------------------------------- managing adapters
def test_add_set_delete_adapters():
    model, inputs = tiny_mlp()
    base_out = model(**inputs)
    am = get_adapter_model(model, HammingConfig(target_modules=["fc1", "fc2"]))
    am.add_adapter("b", HammingConfig(target_modules=["fc2"], parametrization="expm", side="input"))
    assert list(am.peft_config) == ["default", "b"] and am.active_adapters == ["default"]
    # as in peft: an added adapter is frozen until activated (tests/test_adapter_switching.py)
    assert not any(p.requires_grad for n, p in am.named_parameters() if ".hamming.b." in n)
    perturb(am)
    y_default = am(**inputs)
    am.set_adapter("b")
    y_b = am(**inputs)
    am.set_adapter(["b", "default"])
    assert am.active_adapters == ["default", "b"]
    fc2 = am.base_model.fc2
    h = torch.nn.functional.gelu(am.base_model.fc1(inputs["x"]))
    W, bias = fc2.base_layer.weight, fc2.base_layer.bias
    D_in, D_out = fc2.delta_matrix("b"), fc2.delta_matrix("default")
    expected = am.base_model.head(torch.nn.functional.gelu((h @ D_in @ W.T) @ D_out + bias))
    torch.testing.assert_close(am(**inputs), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"adapter_names='c' is not valid; existing adapters: "
                                         r"\['default', 'b'\]"):
        am.set_adapter("c")
    am.delete_adapter("default")
    assert list(am.peft_config) == ["b"] and am.active_adapters == ["b"]
    assert wrapped(am.base_model) == ["fc2"]  # fc1 had only "default": unwrapped
    torch.testing.assert_close(am(**inputs), y_b)
    am.delete_adapter("b")
    assert wrapped(am.base_model) == []
    torch.testing.assert_close(am(**inputs), base_out)
    with pytest.raises(ValueError, match="does not exist"):
        am.delete_adapter("b")
    assert not torch.allclose(y_default, y_b)


def test_disable_adapter_restores_flags_on_error():
    am, inputs = build(tiny_mlp, HammingConfig(target_modules=["fc1"]))
    with pytest.raises(RuntimeError):
        with am.disable_adapter():
            raise RuntimeError("boom")
    assert not any(layer.disable_adapters for _, layer in am.adapter_layers())


def test_modules_to_save_copy_is_trained_and_original_kept():
    model, inputs = tiny_mlp()
    head = model.head
    am = get_adapter_model(model, HammingConfig(target_modules=["fc1"], modules_to_save=["head"]))
    wrapper = am.base_model.head
    assert isinstance(wrapper, ModulesToSave) and wrapper.base_layer is head
    assert not any(p.requires_grad for p in head.parameters())
    assert all(p.requires_grad for p in wrapper.modules_to_save["default"].parameters())
    perturb(am)
    trained = wrapper.modules_to_save["default"]
    plain = am.merge_and_unload()
    assert plain.head is trained  # merge keeps the trained copy


def test_unload_gives_back_the_original_model():
    model, inputs = tiny_mlp()
    expected = model(**inputs)
    snap = {n: p.detach().clone() for n, p in model.named_parameters()}
    head = model.head
    am = get_adapter_model(model, HammingConfig(target_modules=["fc1", "fc2"],
                                                modules_to_save=["head"]))
    perturb(am)
    am.merge_adapter()
    plain = am.unload()
    assert plain is model and plain.head is head and wrapped(plain) == []
    for n, p in plain.named_parameters():
        torch.testing.assert_close(p, snap[n], atol=1e-6, rtol=0)
    torch.testing.assert_close(plain(**inputs), expected, atol=1e-6, rtol=0)
    assert am.peft_config == {}


def test_set_adapter_while_merged_unmerges_with_a_warning():
    am, inputs = build(tiny_mlp, HammingConfig(target_modules=["fc1"]))
    am.add_adapter("b", HammingConfig(target_modules=["fc1"], parametrization="expm"))
    perturb(am)
    am.set_adapter("default")
    y = am(**inputs)
    am.merge_adapter()
    with pytest.warns(UserWarning, match="unmerging first"):
        am.set_adapter("b")
    am.set_adapter("default")
    torch.testing.assert_close(am(**inputs), y, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------- a second family
@dataclass
class DoublingConfig(AdapterConfig):
    """A toy non-mergeable family: ``y = f(x) + scale * f(x)`` with ``scale`` zero at init."""

    init: float = field(default=0.0, metadata={"help": "initial scale"})
    adapter_type: ClassVar[str] = "test-doubling"


class Scale(nn.Module):
    def __init__(self, init):
        super().__init__()
        self.scale = nn.Parameter(torch.full((), float(init)))


class DoublingLayer(AdapterLayer):
    # no fold(): the generic merge_blocker declares the family not mergeable
    adapter_layer_names = ("doubling",)

    @classmethod
    def build(cls, base_layer, *, init=0.0):
        return AdapterParts(modules={"doubling": Scale(init)}, settings={})

    def adapter_forward(self, x, adapter_names, *args, **kwargs):
        y = self.base_layer(x, *args, **kwargs)
        return y + sum(self.doubling[a].scale for a in adapter_names) * y

    def aux_loss(self):
        return sum(self.doubling[a].scale ** 2 for a in self.active_adapters)


@pytest.fixture(autouse=True, scope="module")
def _doubling_registered():
    """The test family is registered while this module's tests run, and removed after, so
    that no other test sees it among the valid adapter types."""
    with registered(DoublingConfig, DoublingLayer):
        yield


def test_a_non_mergeable_family_passes_the_contract():
    assert_valid_adapter(tiny_mlp, DoublingConfig(target_modules=["fc1", "fc2"],
                                                  modules_to_save=["head"]), mergeable=False)


def test_aux_loss_sums_every_layer():
    am, _ = build(tiny_mlp, DoublingConfig(target_modules=["fc1", "fc2", "head"], init=0.5))
    assert float(am.aux_loss()) == pytest.approx(3 * 0.25)


def test_families_mix_on_different_layers():
    am, inputs = build(tiny_mlp, HammingConfig(target_modules=["fc1"]))
    am.add_adapter("dbl", DoublingConfig(target_modules=["head"], init=1.0))
    am.set_adapter(["default", "dbl"])
    with torch.no_grad():
        torch.testing.assert_close(am(**inputs), 2 * logits(build(tiny_mlp, HammingConfig(
            target_modules=["fc1"]))[0](**inputs)))
    with pytest.raises(TypeError, match=r"cannot be merged.*head \(DoublingLayer\)"):
        am.merge_and_unload()
    assert wrapped(am.base_model) == ["fc1", "head"]  # refused before anything changed


def test_a_family_registered_for_a_with_block_is_forgotten_after_it():
    from qiadapters.adapters import registry

    class Temporary(DoublingConfig):
        adapter_type = "temporary"

    before = (dict(registry.CONFIGS), dict(registry.LAYERS))
    with registered(Temporary, DoublingLayer):
        assert registry.config_class("temporary") is Temporary
    assert (registry.CONFIGS, registry.LAYERS) == before
    with pytest.raises(ValueError, match=r"adapter_type='temporary' is not valid"):
        registry.config_class("temporary")
