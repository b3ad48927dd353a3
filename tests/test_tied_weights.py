"""Adapting a layer whose weight the model shares with another module (GPT-2's ``lm_head``
is tied to the input embedding ``transformer.wte``).  The unmerged forward rotates the head
alone; a merge must too: it gives the adapted layer its own copy of the shared weight (the
embedding keeps the original), unmerge ties them again, and ``merge_and_unload`` returns a
model whose config no longer ties them, so that transformers saves and reloads both."""
import warnings

import pytest
import torch
from torch import nn

from qiadapters import AdapterModel, HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.testing import assert_valid_adapter, build, logits, perturb
from qiadapters.tiny_models import tiny_gpt2

torch.set_num_threads(1)

CONFIGS = {
    "hamming": HammingConfig(target_modules=["lm_head", "c_attn"], orders=(1, 2), blocks=2),
    "hamming-input": HammingConfig(target_modules=["lm_head"], side="input", blocks=2),
    "mixture": MixtureConfig(target_modules=["lm_head"],
                             experts=[HammingConfig(orders=(1,)), HammingConfig(blocks=2)]),
}


def _embedding(model: nn.Module) -> torch.Tensor:
    return model.get_input_embeddings().weight


def test_injection_records_the_tie():
    am, _ = build(tiny_gpt2, CONFIGS["hamming"])
    head = am.base_model.lm_head
    assert head.tied_parameters == {"weight": ("transformer.wte.weight",)}
    assert am.base_model.transformer.h[0].attn.c_attn.tied_parameters == {}


@pytest.mark.parametrize("family", CONFIGS)
@torch.no_grad()
def test_merged_equals_unmerged_and_the_embedding_is_untouched(family):
    am, inputs = build(tiny_gpt2, CONFIGS[family])
    perturb(am)
    expected = logits(am(**inputs))
    reference, _ = tiny_gpt2(0)  # the same seed: the original embedding, independently
    am.merge_adapter()
    torch.testing.assert_close(logits(am(**inputs)), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_embedding(am), _embedding(reference), atol=0, rtol=0)
    head = am.base_model.lm_head
    assert head.base_layer.weight is not _embedding(am)  # a private copy while merged
    am.unmerge_adapter()
    assert head.base_layer.weight is _embedding(am)      # tied again
    torch.testing.assert_close(_embedding(am), _embedding(reference), atol=0, rtol=0)
    torch.testing.assert_close(logits(am(**inputs)), expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_merging_the_layer_alone_unties_too():
    am, inputs = build(tiny_gpt2, CONFIGS["hamming"])
    perturb(am)
    expected = logits(am(**inputs))
    am.base_model.lm_head.merge()
    torch.testing.assert_close(logits(am(**inputs)), expected, atol=1e-5, rtol=1e-5)
    am.base_model.lm_head.unmerge()
    assert am.base_model.lm_head.weight is _embedding(am)


def test_the_contract_checks_pass_with_a_tied_head():
    assert_valid_adapter(tiny_gpt2, CONFIGS["hamming"], checks=["merge", "save_load", "pickle"])


@torch.no_grad()
def test_merge_and_unload_saves_and_reloads_with_transformers(tmp_path):
    from transformers import GPT2LMHeadModel

    am, inputs = build(tiny_gpt2, CONFIGS["hamming"])
    perturb(am)
    expected = logits(am(**inputs))
    generated = am.generate(**inputs, max_new_tokens=6, do_sample=False)
    reference, _ = tiny_gpt2(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the untie is documented, not a warning
        plain = am.merge_and_unload()
    assert plain.config.tie_word_embeddings is False
    assert plain.lm_head.weight is not _embedding(plain)
    torch.testing.assert_close(_embedding(plain), _embedding(reference), atol=0, rtol=0)
    torch.testing.assert_close(logits(plain(**inputs)), expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(plain.generate(**inputs, max_new_tokens=6, do_sample=False), generated)
    plain.save_pretrained(tmp_path / "merged")
    loaded = GPT2LMHeadModel.from_pretrained(tmp_path / "merged").eval()
    assert loaded.lm_head.weight is not _embedding(loaded)
    torch.testing.assert_close(logits(loaded(**inputs)), expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_an_untargeted_tie_is_left_alone():
    am, inputs = build(tiny_gpt2, HammingConfig(target_modules=["c_attn"]))
    perturb(am)
    plain = am.merge_and_unload()
    assert plain.config.tie_word_embeddings is True
    assert plain.lm_head.weight is _embedding(plain)


@torch.no_grad()
def test_a_tie_made_after_injection_is_found_at_merge():
    """The record is refreshed at merge: a model tied after its adapters were injected."""
    model, inputs = tiny_gpt2(0)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = nn.Parameter(_embedding(model).detach().clone())
    am = get_adapter_model(model, CONFIGS["hamming"])
    assert am.base_model.lm_head.tied_parameters == {}
    perturb(am)
    model.lm_head.weight = _embedding(model)  # forwarded to the head's base module
    model.config.tie_word_embeddings = True
    expected = logits(am(**inputs))
    am.merge_adapter()
    torch.testing.assert_close(logits(am(**inputs)), expected, atol=1e-5, rtol=1e-5)
    assert isinstance(am, AdapterModel)


@torch.no_grad()
def test_a_layer_without_the_tie_record_merges_in_place():
    """A layer pickled by an older version has no ``tied_parameters``: it merges as before."""
    am, inputs = build(tiny_gpt2, HammingConfig(target_modules=["c_attn"]))
    perturb(am)
    expected = logits(am(**inputs))
    layer = am.base_model.transformer.h[0].attn.c_attn
    del layer.__dict__["tied_parameters"], layer.__dict__["_untied"]
    weight = layer.base_layer.weight
    layer.merge()
    assert layer.base_layer.weight is weight
    torch.testing.assert_close(logits(am(**inputs)), expected, atol=1e-5, rtol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(logits(am(**inputs)), expected, atol=1e-5, rtol=1e-5)
