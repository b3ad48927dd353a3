"""Causal LMs (tiny random GPT-2 and Llama) with Hamming and mixture adapters: ``generate()``
with the KV cache goes through ``AdapterModel``, and greedy generation after perturbing the
adapter is identical with and without the cache and before and after ``merge_and_unload()``.

GPT-2's projections are transformers' ``Conv1D``; its rows turn on once Hamming adapters
inject into ``Conv1D`` (checked at run time, not by version)."""
import pytest
import torch

from qiadapters import HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.testing import perturb, tiny_gpt2, tiny_llama

pytest.importorskip("transformers")

NEW_TOKENS = 8


def llama_configs():
    t = ["q_proj", "v_proj"]
    return {"hamming": HammingConfig(target_modules=t, orders=(1, 2), blocks=2),
            "mixture": MixtureConfig(target_modules=t, router="global", top_k=1, experts=[
                HammingConfig(target_modules=t, orders=(1,)),
                HammingConfig(target_modules=t, parametrization="circuit")])}


def gpt2_configs():
    t = ["c_attn"]
    return {"hamming": HammingConfig(target_modules=t, orders=(1, 2), blocks=2),
            "mixture": MixtureConfig(target_modules=t, router="global", top_k=1, experts=[
                HammingConfig(target_modules=t, orders=(1,)),
                HammingConfig(target_modules=t, blocks=2)])}


def conv1d_supported() -> bool:
    """Whether a Hamming adapter injects into GPT-2's ``Conv1D`` ``c_attn`` (after the layer
    work is merged); until then the GPT-2 rows skip."""
    try:
        get_adapter_model(tiny_gpt2()[0], HammingConfig(target_modules=["c_attn"]))
    except (TypeError, ValueError):
        return False
    return True


CASES = [("llama", name) for name in ("hamming", "mixture")] + \
        [("gpt2", name) for name in ("hamming", "mixture")]


def adapted(model_name, config_name):
    if model_name == "gpt2" and not conv1d_supported():
        pytest.skip("Hamming adapters do not inject into transformers' Conv1D yet")
    factory, configs = {"llama": (tiny_llama, llama_configs),
                        "gpt2": (tiny_gpt2, gpt2_configs)}[model_name]
    model, inputs = factory()
    torch.manual_seed(1)
    am = get_adapter_model(model, configs()[config_name])
    perturb(am, scale=0.5)
    prompt = {"input_ids": inputs["input_ids"][:1, :5],
              "attention_mask": inputs["attention_mask"][:1, :5]}
    return am.eval(), prompt, factory


def greedy(model, prompt, use_cache=True):
    with torch.no_grad():
        return model.generate(**prompt, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                              do_sample=False, use_cache=use_cache, pad_token_id=0)


@pytest.mark.parametrize("model_name, config_name", CASES)
def test_greedy_generation_is_the_same_cached_uncached_and_merged(model_name, config_name):
    am, prompt, factory = adapted(model_name, config_name)
    base = factory()[0]
    cached = greedy(am, prompt)
    assert cached.shape == (1, 5 + NEW_TOKENS)
    assert torch.equal(greedy(am, prompt, use_cache=False), cached)
    with torch.no_grad():  # the adapter matters: its logits differ from the base model's
        assert not torch.allclose(am(**prompt).logits, base(**prompt).logits, atol=1e-3)
        adapted_logits = am(input_ids=cached).logits
    merged = am.merge_and_unload()
    assert torch.equal(greedy(merged, prompt), cached)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=cached).logits, adapted_logits,
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model_name, config_name", CASES)
def test_generation_goes_through_the_adapter_model_and_its_cache(model_name, config_name):
    """``am.generate`` wraps the wrapped model's, runs the adapted layers, and the KV cache's
    last-token logits equal a full forward's (greedy argmax picks agree step by step)."""
    am, prompt, _ = adapted(model_name, config_name)
    assert am.generate.__wrapped__.__func__ is type(am.base_model).generate
    with torch.no_grad():
        out = am.generate(**prompt, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                          do_sample=False, use_cache=True, output_logits=True,
                          return_dict_in_generate=True, pad_token_id=0)
        seq = out.sequences
        full = am(input_ids=seq).logits
    for step, step_logits in enumerate(out.logits):
        torch.testing.assert_close(step_logits[0], full[0, 4 + step], atol=1e-4, rtol=1e-4)
