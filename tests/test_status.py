"""``get_layer_status()`` / ``get_model_status()`` have peft 0.21's fields and, for the same
sequence of calls on the same model, the values peft's LoRA reports (peft's own status of a
LoRA model is the reference; only the names of types differ)."""
import dataclasses
import warnings

import pytest
import torch

from qiadapters import HammingConfig, get_adapter_model
from qiadapters.model.status import TunerLayerStatus, TunerModelStatus, get_layer_status
from qiadapters.testing import tiny_bert

peft = pytest.importorskip("peft")
from peft.peft_model import TunerLayerStatus as PeftLayerStatus  # noqa: E402
from peft.peft_model import TunerModelStatus as PeftModelStatus  # noqa: E402

#: Fields whose values name a method's types or count its parameters.
OWN = {"module_type", "peft_types", "adapter_model_type", "trainable_params", "total_params"}


def test_the_status_dataclasses_have_peft_fields():
    for ours, theirs in [(TunerLayerStatus, PeftLayerStatus), (TunerModelStatus, PeftModelStatus)]:
        assert [f.name for f in dataclasses.fields(ours)] == \
            [f.name for f in dataclasses.fields(theirs)]


def _steps(model, add, kind):
    """The same calls on either library: two adapters, switch, freeze one, merge."""
    yield "one adapter"
    add(model, "other")
    yield "two adapters"
    model.set_adapter("other")
    yield "other active"
    for n, p in model.named_parameters():
        if ".other" in n and "query" in n:
            p.requires_grad_(False)  # part of an adapter frozen: "irregular"
    yield "other partly frozen"
    model.merge_adapter(["other"]) if kind == "ours" else model.merge_adapter(["other"])
    yield "other merged"
    model.unmerge_adapter()
    yield "unmerged"


def _ours():
    model, _ = tiny_bert(0)
    am = get_adapter_model(model, HammingConfig(target_modules=["query", "value"],
                                                modules_to_save=["classifier"]))

    def add(m, name):
        m.add_adapter(name, HammingConfig(target_modules=["query", "value"],
                                          modules_to_save=["classifier"]))
    return am, add


def _peft():
    model, _ = tiny_bert(0)
    cfg = peft.LoraConfig(target_modules=["query", "value"], r=2, modules_to_save=["classifier"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = peft.get_peft_model(model, cfg)

    def add(m, name):
        m.add_adapter(name, peft.LoraConfig(target_modules=["query", "value"], r=2,
                                            modules_to_save=["classifier"]))
    return pm, add


def _comparable(status) -> dict:
    out = {k: v for k, v in dataclasses.asdict(status).items() if k not in OWN}
    if "name" in out:
        out["name"] = out["name"].removeprefix("base_model.model.").removeprefix("model.")
    return out


def test_the_status_is_peft_loras_after_the_same_calls():
    am, add_ours = _ours()
    pm, add_peft = _peft()
    for step, _ in zip(_steps(am, add_ours, "ours"), _steps(pm, add_peft, "peft")):
        ours = sorted((_comparable(s) for s in am.get_layer_status()), key=lambda d: d["name"])
        theirs = sorted((_comparable(s) for s in peft.get_layer_status(pm)
                         if not s.name.endswith("classifier.modules_to_save")),
                        key=lambda d: d["name"])
        assert ours == theirs, step
        assert _comparable(am.get_model_status()) == _comparable(peft.get_model_status(pm)), step


def test_model_status_counts_and_types():
    am, _ = _ours()
    status = am.get_model_status()
    trainable, total = am.get_nb_trainable_parameters()
    assert (status.trainable_params, status.total_params) == (trainable, total)
    assert status.peft_types == {"default": "hamming"}
    assert status.adapter_model_type == "AdapterModel"
    assert status.base_model_type == "BertForSequenceClassification"
    assert status.num_adapter_layers == 5  # 4 Hamming layers and the classifier's copy
    assert {s.module_type for s in am.get_layer_status()} == {"HammingAdapter", "ModulesToSave"}
    with am.disable_adapter():
        assert am.get_model_status().enabled is False


def test_a_model_without_adapter_layers_has_no_status():
    with pytest.raises(ValueError, match=r"model \(Linear\) holds no adapter layers"):
        get_layer_status(torch.nn.Linear(2, 2))
