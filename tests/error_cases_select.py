"""Bad inputs of peft's layer selection fields, ``layout_pattern`` and the per-layer layout
record, in ``docs/errors.md`` (``error_cases.py`` imports this file, so these cases register
in the same ``CASES`` table)."""
from __future__ import annotations

import json
import os

from error_cases import _load, _mlp, _saved, case

from qiadapters import HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.testing import tiny_bert


def _adapt(model, **fields):
    return (lambda: get_adapter_model(model, HammingConfig(**fields))), model


@case
def case_select_exclude_nothing(tmp):
    return _adapt(_mlp(), target_modules=["fc1", "fc2"], exclude_modules=["head"])


@case
def case_select_exclude_everything(tmp):
    return _adapt(_mlp(), target_modules=["fc1", "fc2"], exclude_modules=r"fc\d")


@case
def case_select_layer_out_of_range(tmp):
    return _adapt(tiny_bert(0)[0], target_modules=["query"], layers_to_transform=[5],
                  layers_pattern="layer")


@case
def case_select_no_layer_index(tmp):
    return _adapt(_mlp(), target_modules=["fc1"], layers_to_transform=0)


@case
def case_select_pattern_without_layers(tmp):
    return (lambda: HammingConfig(target_modules=["query"], layers_pattern="layer")), None


@case
def case_select_layers_with_regex(tmp):
    return (lambda: HammingConfig(target_modules=r"fc\d", layers_to_transform=[0])), None


@case
def case_select_negative_layer(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"], layers_to_transform=[-1])), None


@case
def case_select_exclude_bad_regex(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"], exclude_modules="fc(")), None


@case
def case_mixture_expert_selection(tmp):
    return (lambda: MixtureConfig(target_modules=["fc1"], experts=[
        HammingConfig(layers_to_transform=[0])])), None


@case
def case_layout_pattern_no_match(tmp):
    return _adapt(_mlp(), target_modules=["fc1"], layout_pattern={"fc3": {"blocks": 2}})


@case
def case_layout_pattern_unknown_field(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"],
                                  layout_pattern={"fc1": {"rank": 2}})), None


@case
def case_layout_pattern_bad_regex(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"],
                                  layout_pattern={"fc(": {"blocks": 2}})), None


def _edit_layout(folder, **fields):
    path = os.path.join(folder, "adapter_config.json")
    with open(path) as f:
        data = json.load(f)
    data["layers"]["fc1"]["layout"].update(fields)
    with open(path, "w") as f:
        json.dump(data, f)


@case
def case_load_layout_other_orders(tmp):
    folder = _saved(tmp, blocks=3)
    _edit_layout(folder, orders=[1])
    return _load(folder)


@case
def case_load_layout_other_blocks(tmp):
    folder = _saved(tmp, blocks=3)
    _edit_layout(folder, blocks=2)
    return _load(folder)


@case
def case_load_malformed_layout(tmp):
    folder = _saved(tmp, blocks=3)
    _edit_layout(folder, n="5")
    return _load(folder)


@case
def case_load_weights_other_layout(tmp):
    from qiadapters.integrations.transformers import load_adapter_weights
    folder = _saved(tmp, blocks=3)  # 48 features: blocks of 16, n = 5
    live = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1", "fc2"], block_size=15))
    return (lambda: load_adapter_weights(live, folder)), live


@case
def case_select_exclude_backreference(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"], exclude_modules=r"(fc)\1")), None


@case
def case_layout_pattern_lookaround(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"],
                                  layout_pattern={"(?=f)fc1": {"blocks": 2}})), None
