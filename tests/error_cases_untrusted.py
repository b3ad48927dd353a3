"""Bad inputs of an untrusted adapter folder (docs/security.md) in ``docs/errors.md``:
sizes over :mod:`qiadapters.bounds`, patterns without a linear-time match, adapter names
that could leave the save folder, special files, tensors that are not floating point or not
finite (``error_cases.py`` imports this file, so these cases register in ``CASES``)."""
from __future__ import annotations

import json
import os

import torch
from error_cases import _cli, _edit_json, _load, _mlp, _saved, case

from qiadapters import HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.model import AdapterModel


def _unrecorded(folder, **changes):
    """The saved config edited as a hostile uploader would, written as format 4 (no
    per-layer record to disagree with the edit)."""
    path = os.path.join(folder, "adapter_config.json")
    with open(path) as f:
        data = json.load(f)
    data.pop("layers", None)
    data.update(format_version=4, **changes)
    with open(path, "w") as f:
        json.dump(data, f)


def _retensor(folder, change):
    from safetensors.torch import load_file, save_file
    path = os.path.join(folder, "adapter_model.safetensors")
    state = load_file(path)
    key = sorted(state)[0]
    state[key] = change(state[key])
    save_file(state, path, metadata={"format": "pt"})


@case
def case_load_orders_over_bound(tmp):
    folder = _saved(tmp)
    _unrecorded(folder, orders=[10], blocks=1)
    return _load(folder)


@case
def case_hamming_orders_over_bound(tmp):
    model = _mlp()
    cfg = HammingConfig(target_modules=["fc2"], orders=(10,), blocks=1)
    return (lambda: get_adapter_model(model, cfg)), model


@case
def case_physics_rank_over_bound(tmp):
    from physics import PhysicsAdapter
    return (lambda: PhysicsAdapter(16, rank=65)), None


@case
def case_mixture_too_many_experts(tmp):
    experts = [HammingConfig(orders=(1,))] * 65
    return (lambda: MixtureConfig(target_modules=["fc1"], experts=experts)), None


@case
def case_target_modules_backreference(tmp):
    return (lambda: HammingConfig(target_modules=r"(fc)\1")), None


@case
def case_add_adapter_path_name(tmp):
    am = AdapterModel(_mlp())
    return (lambda: am.add_adapter("/some/abs/dir", HammingConfig(target_modules=["fc1"]))), am


@case
def case_load_adapter_name_nul(tmp):
    folder = _saved(tmp)
    am = AdapterModel(_mlp())
    return (lambda: am.load_adapter(folder, adapter_name="a\x00b")), am


@case
def case_load_config_is_folder(tmp):
    folder = _saved(tmp)
    os.remove(os.path.join(folder, "adapter_config.json"))
    os.makedirs(os.path.join(folder, "adapter_config.json"))
    return _load(folder)


@case
def case_load_deep_json(tmp):
    folder = _saved(tmp)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        f.write("[" * 100_000 + "]" * 100_000)
    return _load(folder)


@case
def case_load_adapter_type_list(tmp):
    folder = _saved(tmp)
    _edit_json(folder, adapter_type=["hamming"])
    return _load(folder)


@case
def case_load_integer_tensor(tmp):
    folder = _saved(tmp)
    _retensor(folder, lambda t: t.to(torch.int64))
    return _load(folder)


@case
def case_load_nan_tensor(tmp):
    folder = _saved(tmp)

    def poison(t):
        t = t.clone()
        t.view(-1)[0] = float("nan")
        return t
    _retensor(folder, poison)
    return _load(folder)


@case
def case_cli_info_integer_tensor(tmp):
    folder = _saved(tmp)
    _retensor(folder, lambda t: t.to(torch.int64))
    return (lambda: _cli(["info", folder])), None
