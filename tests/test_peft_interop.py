"""qiadapters next to peft's LoRA in one model, both orders, other and same modules.
References: peft's own outputs before ours is added (identity at init), the parameters
each method trains, one optimizer step changing both methods' adapters."""
import pytest
import torch

peft = pytest.importorskip("peft")
from peft import LoraConfig  # noqa: E402

import physics  # noqa: E402
from qiadapters import AdapterModel, HammingAdapter, HammingConfig, get_adapter_model  # noqa: E402
from qiadapters.integrations import peft as qpeft  # noqa: E402
from qiadapters.model.injection import match_targets  # noqa: E402
from qiadapters.testing import logits, perturb, tiny_bert  # noqa: E402


def lora_model(target="query", init=False):
    """A PeftModel with LoRA on ``target`` (nonzero B unless ``init``: peft's own output is
    then not the base model's)."""
    model, batch = tiny_bert()
    cfg = LoraConfig(target_modules=[target], r=2, init_lora_weights=init)
    return peft.get_peft_model(model, cfg), batch


def kinds(model):
    """Which method each trainable parameter belongs to."""
    out = set()
    for name, p in model.named_parameters():
        if p.requires_grad:
            out.add("lora" if ".lora_" in name else "ours" if any(
                k in name for k in (".hamming.", ".physics.")) else name)
    return out


def step_changes(model, batch):
    """Train one step; the methods whose parameters moved (the base never may)."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    logits(model(**batch)).square().sum().backward()
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    return {"lora" if ".lora_" in n else "ours" if any(k in n for k in (".hamming.", ".physics."))
            else n for n in moved}


CONFIGS = {
    "hamming-other": lambda: HammingConfig(target_modules=["value"], blocks=4),
    "hamming-same": lambda: HammingConfig(target_modules=["query"], blocks=4),
    "physics-other": lambda: physics.PhysicsConfig(target_modules=["value"]),
    "physics-same": lambda: physics.PhysicsConfig(target_modules=["query"], placement="input"),
}


@pytest.mark.parametrize("which", list(CONFIGS))
def test_ours_on_a_peft_model(which):
    pm, batch = lora_model()
    with torch.no_grad():
        peft_out = logits(pm(**batch))
    am = get_adapter_model(pm, CONFIGS[which]())
    with torch.no_grad():  # identity at init: exactly peft's output
        torch.testing.assert_close(logits(am(**batch)), peft_out, atol=1e-5, rtol=1e-5)
    assert kinds(am) == {"lora", "ours"}
    if which == "hamming-same":  # stacked: our layer wraps peft's lora.Linear
        query = am.base_model.base_model.model.bert.encoder.layer[0].attention.self.query
        assert isinstance(query, HammingAdapter) and qpeft.is_peft_layer(query.base_layer)
        with pytest.raises(TypeError, match="includes peft's own adapters"):
            am.merge_and_unload()
    assert step_changes(am, batch) == {"lora", "ours"}
    with torch.no_grad(), am.disable_adapter():  # ours off: peft's (trained) LoRA alone
        disabled = logits(am(**batch))
    plain = am.unload()
    assert plain is pm and not any(".hamming." in n or ".physics." in n
                                   for n, _ in pm.named_parameters())
    assert qpeft.is_peft_layer(pm.base_model.model.bert.encoder.layer[0].attention.self.query)
    with torch.no_grad():
        torch.testing.assert_close(logits(pm(**batch)), disabled)


def test_frozen_peft_adapters_stay_frozen():
    pm, _ = lora_model()
    for name, p in pm.named_parameters():
        if ".lora_A." in name:
            p.requires_grad_(False)
    am = get_adapter_model(pm, HammingConfig(target_modules=["query"], blocks=4))
    flags = {n.split(".lora_")[1][0]: p.requires_grad
             for n, p in am.named_parameters() if ".lora_" in n}
    assert flags == {"A": False, "B": True}


def test_peft_on_a_qiadapters_model():
    am, batch = tiny_bert()[0], tiny_bert()[1]
    am = get_adapter_model(am, HammingConfig(target_modules=["query"], blocks=4))
    perturb(am)
    with torch.no_grad():
        ours_out = logits(am(**batch))
    cfg = LoraConfig(target_modules=["value"], r=2)  # B = 0: identity at init
    pm = qpeft.get_peft_model(am, cfg)
    with torch.no_grad():
        torch.testing.assert_close(logits(pm(**batch)), ours_out)
    assert kinds(pm) == {"lora", "ours"}
    assert step_changes(pm, batch) == {"lora", "ours"}
    # peft's own get_peft_model freezes every parameter that is not peft's (ours included)
    plain = peft.get_peft_model(get_adapter_model(
        tiny_bert()[0], HammingConfig(target_modules=["query"], blocks=4)), cfg)
    assert kinds(plain) == {"lora"}


def test_peft_on_our_layer_is_refused_by_peft():
    am = get_adapter_model(tiny_bert()[0], HammingConfig(target_modules=["query"], blocks=4))
    with pytest.raises(ValueError, match="HammingAdapter"):
        qpeft.get_peft_model(am, LoraConfig(target_modules=["query"], r=2))


def test_targets_never_select_peft_insides():
    pm, _ = lora_model()
    names = match_targets(pm, "all-linear")
    assert names and not any(k in n for n in names for k in ("lora_", "base_layer"))
    assert any(n.endswith("attention.self.query") for n in names)
    assert isinstance(get_adapter_model(pm, HammingConfig(target_modules="all-linear",
                                                          blocks=4)), AdapterModel)
