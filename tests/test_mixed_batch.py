"""Mixed-adapter batches (``adapter_names=[...]``, one adapter per row): each row's output
equals that row run in a batch of its group alone with its adapter active (``"__base__"``:
adapters disabled), for Hamming (both sides), physics (both placements, padded rows) and
mixture adapters, modules_to_save copies, forward and generate; the work grows with the
distinct adapters, not the rows; the refusals."""
from __future__ import annotations

import os
import sys

import pytest
import torch
from torch import nn

import physics
from qiadapters import HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.adapters.registry import registered
from qiadapters.testing import perturb
from qiadapters.tiny_models import tiny_bert, tiny_gpt2

sys.path.insert(0, os.path.dirname(__file__))  # the catalogue's cases, as test_errors reads them
import error_cases  # noqa: F401,E402  (before error_cases_batch, which it imports)
from error_cases_batch import _NoMixConfig, _NoMixLayer  # noqa: E402  (a family without it)

ROWS = ["b", "__base__", "default", "b", "c", "default"]


def _batch(rows: int = len(ROWS), length: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, 64, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    mask[3, -2:] = 0  # padded rows in two groups
    return {"input_ids": ids, "attention_mask": mask}


def _three(configs) -> nn.Module:
    model, _ = tiny_bert(hidden=32)
    am = get_adapter_model(model, configs[0])
    am.add_adapter("b", configs[1])
    am.add_adapter("c", configs[2])
    perturb(am, scale=0.3)  # every adapter (and classifier copy) away from the identity
    return am.eval()


def _alone(am, batch: dict, rows: list[str], forward=None) -> torch.Tensor:
    """The reference: each group of rows in a batch of its own, its adapter active."""
    forward = forward or (lambda inputs: am(**inputs).logits)
    out = [None] * len(rows)
    for name in dict.fromkeys(rows):
        idx = [i for i, r in enumerate(rows) if r == name]
        inputs = {k: v[idx] for k, v in batch.items()}
        if name == "__base__":
            with am.disable_adapter():
                y = forward(inputs)
        else:
            am.set_adapter(name)
            y = forward(inputs)
        for j, i in enumerate(idx):
            out[i] = y[j]
    return torch.stack(out)


def _check(am, rows=ROWS):
    batch = _batch(len(rows))
    with torch.no_grad():
        mixed = am(**batch, adapter_names=rows).logits
        reference = _alone(am, batch, rows)
    torch.testing.assert_close(mixed, reference, atol=1e-6, rtol=1e-6)
    # the adapters really differ, so a row served by the wrong one would show
    assert (reference[0] - reference[2]).abs().max() > 1e-3
    assert (reference[1] - reference[2]).abs().max() > 1e-3


def test_hamming_rows_equal_each_group_alone_both_sides_and_modules_to_save():
    head = {"modules_to_save": ["classifier"]}
    _check(_three([HammingConfig(target_modules=["query", "value"], **head),
                   HammingConfig(target_modules=["query", "value"], side="input", **head),
                   HammingConfig(target_modules=["value", "dense"], orders=(1,),
                                 parametrization="expm")]))


def test_physics_rows_equal_each_group_alone_with_padding():
    _check(_three([physics.PhysicsConfig(target_modules=["query"], rank=4, grid="sequence"),
                   physics.PhysicsConfig(target_modules=["attention.self"], rank=4,
                                         grid="sequence", placement="input"),
                   HammingConfig(target_modules=["intermediate.dense"])]))


def test_mixture_rows_equal_each_group_alone():
    experts = [HammingConfig(orders=(1,)), HammingConfig(blocks=2, side="input")]
    _check(_three([MixtureConfig(target_modules=["query", "value"], experts=experts,
                                 router="token", top_k=1),
                   MixtureConfig(target_modules=["query"], experts=experts, router="global"),
                   HammingConfig(target_modules=["intermediate.dense"])]))


def test_rows_of_one_adapter_run_it_once_per_layer():
    """The adapter's work is one call per layer and distinct adapter, whatever the rows."""
    am = _three([HammingConfig(target_modules=["query"])] * 3)
    calls = []
    for _, layer in am.adapter_layers():
        for name, rot in layer.hamming.items():
            rot.register_forward_hook(lambda m, a, o, name=name: calls.append(name))
    batch = _batch(8)
    am.set_adapter("b")
    with torch.no_grad():
        am(**{k: v[:1] for k, v in batch.items()})  # one row, one adapter: the unit of work
        once, calls[:] = len(calls), []
        am(**batch, adapter_names=["b"] * 4 + ["default"] * 4)
    assert once > 0 and calls.count("b") == once and calls.count("default") == once
    assert len(calls) == 2 * once


def test_generate_serves_each_prompt_with_its_adapter_beams_included():
    model, _ = tiny_gpt2()
    am = get_adapter_model(model, HammingConfig(target_modules=["c_attn", "c_fc"]))
    am.add_adapter("b", HammingConfig(target_modules=["c_attn"], orders=(1,)))
    perturb(am, scale=0.5)
    am.eval()
    rows = ["b", "default", "__base__", "b"]
    ids = _batch(len(rows), 5)["input_ids"]
    for options in ({}, {"num_beams": 2}, {"num_beams": 2, "num_return_sequences": 2}):
        kwargs = dict(max_new_tokens=4, do_sample=False, pad_token_id=0, **options)
        mixed = am.generate(input_ids=ids, adapter_names=rows, **kwargs)
        reference = _alone(am, {"input_ids": ids}, rows,
                           lambda inputs: am.generate(**inputs, **kwargs).view(
                               len(inputs["input_ids"]), -1, ids.shape[1] + 4))
        assert torch.equal(mixed.view_as(reference), reference), options
    assert not torch.equal(reference[0], reference[1])  # the adapters generate differently


def test_without_adapter_names_nothing_changes_and_generate_stays_absent_without_one():
    am = _three([HammingConfig(target_modules=["query"])] * 3)
    am.set_adapter("b")
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(am(**batch, adapter_names=["b"] * len(ROWS)).logits,
                                   am(**batch).logits, atol=0, rtol=0)
    assert not hasattr(am, "generate")  # BertForSequenceClassification has none


# ------------------------------------------------------------------ refusals
def _hamming_pair():
    am = _three([HammingConfig(target_modules=["query"])] * 3)
    return am, _batch()


def test_refusals_name_the_argument_before_running():
    am, batch = _hamming_pair()
    with pytest.raises(ValueError, match=r"\['nope'\].*give one name per row"):
        am(**batch, adapter_names=["nope"] + ROWS[1:])
    with pytest.raises(TypeError, match="must be a list of adapter names"):
        am(**batch, adapter_names="b")
    with pytest.raises(ValueError, match="has 2 names but the batch has 6 rows"):
        am(**batch, adapter_names=["b", "c"])
    am.train()
    with pytest.raises(ValueError, match="training mode"):
        am(**batch, adapter_names=ROWS)
    am.eval()
    am.merge_adapter(["b"])
    with pytest.raises(ValueError, match="is merged"):
        am(**batch, adapter_names=ROWS)


def test_a_family_without_mixed_batches_is_refused_by_name():
    with registered(_NoMixConfig, _NoMixLayer):
        model, _ = tiny_bert()
        am = get_adapter_model(model, HammingConfig(target_modules=["query"])).eval()
        am.add_adapter("s", _NoMixConfig(target_modules=["value"]))
        batch = _batch()
        with pytest.raises(TypeError, match="_NoMixLayer adapters, which cannot serve "
                                            "mixed-adapter batches"):
            am(**batch, adapter_names=["s"] * len(ROWS))
        with torch.no_grad():  # rows that do not use it are served
            am(**batch, adapter_names=["default"] * len(ROWS))
