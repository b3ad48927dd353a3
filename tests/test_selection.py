"""peft's layer selection -- ``exclude_modules``, ``layers_to_transform``, ``layers_pattern`` --
selects the modules peft 0.21's own matcher selects (a peft LoRA model built with the same
fields is the reference), on BERT, GPT-2 and Llama, for every family; a selection that
selects nothing it names is refused before the model changes."""
import warnings

import pytest
import torch

from qiadapters import HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.testing import tiny_bert, tiny_gpt2, tiny_llama, tiny_mlp

peft = pytest.importorskip("peft")

CASES = [  # (factory, target_modules, selection fields)
    (tiny_bert, ["query", "value"], dict(exclude_modules=["value"])),
    (tiny_bert, ["query", "value"], dict(layers_to_transform=[1], layers_pattern="layer")),
    (tiny_bert, ["query", "value", "dense"], dict(layers_to_transform=0)),
    (tiny_bert, ["query", "value"],
     dict(exclude_modules="bert.encoder.layer.0.attention.self.value")),
    (tiny_bert, ["query", "value"], dict(exclude_modules=r".*layer\.1\..*")),
    (tiny_gpt2, ["c_attn", "c_proj"], dict(layers_to_transform=[1], layers_pattern="h")),
    (tiny_gpt2, ["c_attn", "c_proj"], dict(exclude_modules=["mlp.c_proj"])),
    (tiny_gpt2, ["c_attn", "c_proj"], dict(layers_to_transform=[0], layers_pattern=["layers", "h"],
                                           exclude_modules=["attn.c_proj"])),
    (tiny_llama, ["q_proj", "v_proj", "down_proj"],
     dict(layers_to_transform=[0], layers_pattern="layers", exclude_modules=["down_proj"])),
    (tiny_llama, ["q_proj", "v_proj"], dict(layers_to_transform=[1])),
    # a module named in full is taken whatever its layer (peft checks the full name first)
    (tiny_bert, ["bert.encoder.layer.0.attention.self.query", "value"],
     dict(layers_to_transform=[1], layers_pattern="layer")),
]


def peft_selects(factory, targets, fields) -> set[str]:
    model, _ = factory(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fan_in_fan_out on GPT-2's Conv1D
        pm = peft.get_peft_model(model, peft.LoraConfig(target_modules=targets, r=2, **fields))
    prefix = "base_model.model."
    return {n[len(prefix):] for n, m in pm.named_modules() if hasattr(m, "lora_A")}


def ours(factory, config) -> set[str]:
    model, _ = factory(0)
    return {n for n, _ in get_adapter_model(model, config).adapter_layers()}


def family_configs(targets, fields):
    yield HammingConfig(target_modules=targets, orders=(1,), **fields)
    yield MixtureConfig(target_modules=targets, **fields,
                        experts=[HammingConfig(orders=(1,)), HammingConfig(orders=(1,), blocks=2)])
    try:
        from physics import PhysicsConfig
    except ImportError:
        return
    yield PhysicsConfig(target_modules=targets, placement="input", rank=2, grid="sequence",
                        **fields)


@pytest.mark.parametrize("factory, targets, fields", CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_the_selection_is_peft_matchers_for_every_family(factory, targets, fields):
    want = peft_selects(factory, targets, fields)
    everything = peft_selects(factory, targets, {})
    assert want and want < everything  # the case selects, and leaves something out
    for config in family_configs(targets, fields):
        assert ours(factory, config) == want, type(config).__name__


def test_selection_fields_round_trip_and_an_unused_field_is_not_written(tmp_path):
    cfg = HammingConfig(target_modules=["query"], layers_to_transform=1, layers_pattern="layer")
    assert cfg.layers_to_transform == [1]
    am = get_adapter_model(tiny_bert(0)[0], cfg)
    am.save_pretrained(tmp_path)
    from qiadapters.model import io
    loaded, _ = io.read_adapter(tmp_path)
    assert loaded == cfg
    assert "exclude_modules" not in HammingConfig(target_modules=["query"]).to_dict()


def untouched(model) -> bool:
    return "Hamming" not in repr(model) and "Physics" not in repr(model) and all(
        p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("fields, match", [
    (dict(exclude_modules=["key"]), r"exclude_modules=\['key'\] excludes none of the 4 modules "
                                    r"target_modules=\['query', 'value'\] selects in "
                                    r"BertForSequenceClassification"),
    (dict(exclude_modules=r".*attention.*"), r"exclude_modules='\.\*attention\.\*' excludes "
                                             r"every module"),
    (dict(layers_to_transform=[2]), r"layers_to_transform=\[2\]: BertForSequenceClassification "
                                    r"has no layer 2 among the targeted modules; valid layer "
                                    r"indices: \[0, 1\]"),
    (dict(layers_to_transform=[0], layers_pattern="h"),
     r"layers_to_transform=\[0\]: no module target_modules selects in "
     r"BertForSequenceClassification has a layer index after layers_pattern='h'"),
])
def test_a_selection_that_selects_nothing_it_names_is_refused_before_the_model_changes(
        fields, match):
    model, _ = tiny_bert(0)
    with pytest.raises(ValueError, match=match):
        get_adapter_model(model, HammingConfig(target_modules=["query", "value"], **fields))
    assert untouched(model)


@pytest.mark.parametrize("kwargs, match", [
    (dict(target_modules=["query"], layers_pattern="layer"),
     r"layers_pattern='layer' is given without layers_to_transform"),
    (dict(target_modules=".*query", layers_to_transform=[0]),
     r"layers_to_transform=\[0\] needs target_modules as a list of name suffixes, not the "
     r"string '\.\*query'"),
    (dict(target_modules="all-linear", layers_to_transform=[0]),
     r"needs target_modules as a list"),
    (dict(target_modules=["query"], layers_to_transform=[-1]),
     r"layers_to_transform=\[-1\] must be a layer index or a non-empty list of layer "
     r"indices, integers >= 0"),
    (dict(target_modules=["query"], exclude_modules="("), r"exclude_modules='\(' is not a "
                                                          r"valid regex"),
    (dict(target_modules=["query"], exclude_modules=[""]), r"exclude_modules=\[''\] must be"),
])
def test_selection_fields_are_checked_by_the_config_as_peft_checks_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HammingConfig(**kwargs)


def test_a_mixture_expert_leaves_selection_to_the_mixture():
    with pytest.raises(ValueError, match=r"experts\[0\]\.exclude_modules=\['fc2'\]; set "
                                         r"exclude_modules on the MixtureConfig"):
        MixtureConfig(target_modules=["fc1"], experts=[HammingConfig(exclude_modules=["fc2"])])


def test_a_model_without_layer_numbers_refuses_layers_to_transform():
    model, _ = tiny_mlp(0)
    with pytest.raises(ValueError, match=r"no module target_modules selects in TinyMLP has a "
                                         r"layer index after a name component"):
        get_adapter_model(model, HammingConfig(target_modules=["fc1"], layers_to_transform=0))
    torch.testing.assert_close(model.fc1.weight, tiny_mlp(0)[0].fc1.weight)


def test_an_exclude_modules_entry_that_excludes_nothing_is_named_in_a_warning():
    """As a target_modules entry that matches nothing while others do (a typo would
    silently exclude less): a warning naming it, the model adapted."""
    model, _ = tiny_bert(0)
    cfg = HammingConfig(target_modules=["query", "value"], exclude_modules=["value", "vlaue"])
    with pytest.warns(UserWarning, match=r"exclude_modules entry 'vlaue' excludes none of the "
                                         r"modules target_modules selects in "
                                         r"BertForSequenceClassification"):
        am = get_adapter_model(model, cfg)
    assert all(n.endswith("query") for n, _ in am.adapter_layers())


HOSTILE = "(.|.)*!"  # re backtracks 2 ways per character: a 41-character name never ends
LOAD = """
import json, os, sys, tempfile, time
from qiadapters import AdapterModel, HammingConfig, get_adapter_model
from qiadapters.testing import tiny_bert
folder = tempfile.mkdtemp()
get_adapter_model(tiny_bert(0)[0], HammingConfig(target_modules=["query"])).save_pretrained(folder)
path = os.path.join(folder, "adapter_config.json")
saved = json.load(open(path))
for fields in json.loads(sys.argv[1]):
    json.dump({**saved, **fields}, open(path, "w"))
    start = time.perf_counter()
    try:
        AdapterModel.from_pretrained(tiny_bert(0)[0], folder)
    except ValueError as e:
        print(json.dumps({"seconds": time.perf_counter() - start, "error": str(e)}), flush=True)
"""
HOSTILE_CASES = [
    (dict(exclude_modules=HOSTILE), "excludes none of the 2 modules"),
    (dict(layers_to_transform=[0], layers_pattern=HOSTILE), "has a layer index after "
                                                            "layers_pattern="),
    (dict(layout_pattern={HOSTILE: {"blocks": 2}}), "matches no adapted module"),
]


def test_a_hostile_selection_regex_in_a_downloaded_folder_cannot_hang_loading():
    """The selection fields' regexes run in time linear in the module name (as
    target_modules does), so a backtracking pattern in a downloaded adapter_config.json is
    refused in well under a second instead of hanging the load (with re, each of these
    loads runs for ever)."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    run = subprocess.run([sys.executable, "-c", LOAD, json.dumps([f for f, _ in HOSTILE_CASES])],
                         capture_output=True, text=True, timeout=120, env=env)
    results = [json.loads(line) for line in run.stdout.strip().splitlines()]
    assert len(results) == len(HOSTILE_CASES), run.stderr[-2000:]
    for (fields, match), result in zip(HOSTILE_CASES, results):
        assert match in result["error"] and "adapter_config.json" in result["error"], fields
        assert result["seconds"] < 5, fields


NAMES = ["bert.encoder.layer.0.attention.self.query", "model.layers.1.experts.0.w1",
         "transformer.h.11.attn.c_attn", "layer.3.fc", "a.0.b", "a.b.0", "a.b.0.c",
         "x.layer.12.y.3.z", "0.a.b.1.c", "m.layers.02.q", "blocks.1.0.mlp", "enc.h.x.4.y"]


@pytest.mark.parametrize("pattern", [None, "layer", "layers", "h", "lay.r", "(h|layers)",
                                     "experts", "encoder.layer", ["x", "layers"]])
def test_the_layer_index_is_peft_regexes(pattern):
    """peft's two regexes (check_target_module_exists) are the reference.  (A pattern with a
    top-level alternation, "h|layers", splits peft's regex, which does not parenthesise it;
    ours reads it as "(h|layers)".)"""
    import re

    from qiadapters.model.selection import layer_index

    def peft_index(name):
        if not pattern:
            m = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", name)
        else:
            m = None
            for p in [pattern] if isinstance(pattern, str) else pattern:
                m = re.match(rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.", name)
                if m is not None:
                    break
        return None if m is None else int(m["idx"])
    for name in NAMES:
        assert layer_index(name, pattern) == peft_index(name), name
