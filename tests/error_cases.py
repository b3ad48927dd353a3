"""The bad inputs of ``docs/errors.md``, by case id (read by ``tests/test_errors.py``).

Each case takes a fresh temporary folder and returns ``(call, watched)``: ``call()`` must
raise (or, for the command line, exit with an error), and ``watched`` (a model, or None) must
be unchanged afterwards, as must every file under the folder.
"""
from __future__ import annotations

import json
import os

import torch
from torch import nn

import qiadapters
from qiadapters import HammingConfig, MixtureConfig, get_adapter_model
from qiadapters import cli
from qiadapters.model import AdapterModel
from qiadapters.testing import TinyMLP

CASES = {}


def case(fn):
    CASES[fn.__name__[len("case_"):]] = fn
    return fn


def _mlp():
    torch.manual_seed(0)
    return TinyMLP()


def _saved(tmp, **options):
    """A folder holding a saved Hamming adapter on fc1/fc2 of a TinyMLP, in the paper's
    layout (3 blocks per layer: the sizes the catalogue's messages quote)."""
    folder = os.path.join(tmp, "saved")
    cfg = HammingConfig.paper(target_modules=["fc1", "fc2"], **options)
    get_adapter_model(_mlp(), cfg).save_pretrained(folder)
    return folder


def _edit_json(folder, **changes):
    path = os.path.join(folder, "adapter_config.json")
    with open(path) as f:
        data = json.load(f)
    data.update(changes)
    with open(path, "w") as f:
        json.dump(data, f)


def _load(folder, model=None):
    model = _mlp() if model is None else model
    return (lambda: AdapterModel.from_pretrained(model, folder)), model


# ------------------------------------------------------------------ configs
@case
def case_hamming_unknown_field(tmp):
    return (lambda: HammingConfig(rank=8)), None


@case
def case_mixture_unknown_field(tmp):
    return (lambda: MixtureConfig(routr="token", experts=[HammingConfig()])), None


@case
def case_physics_unknown_field(tmp):
    from physics import PhysicsConfig
    return (lambda: PhysicsConfig(prior="heat")), None


@case
def case_hamming_layout(tmp):
    return (lambda: HammingConfig(layout="pyramidal")), None


@case
def case_hamming_gate(tmp):
    return (lambda: HammingConfig(gate="cnot")), None


@case
def case_hamming_parametrization(tmp):
    return (lambda: HammingConfig(parametrization="qr")), None


@case
def case_hamming_side(tmp):
    return (lambda: HammingConfig(side="left")), None


@case
def case_hamming_order_zero(tmp):
    return (lambda: HammingConfig(orders=(0, 1))), None


@case
def case_hamming_duplicate_orders(tmp):
    return (lambda: HammingConfig(orders=(1, 1))), None


@case
def case_hamming_blocks_and_size(tmp):
    return (lambda: HammingConfig(blocks=2, block_size=8)), None


@case
def case_hamming_blocks_zero(tmp):
    return (lambda: HammingConfig(blocks=0)), None


@case
def case_hamming_one_qubit(tmp):
    return (lambda: HammingConfig(n_qubits=1)), None


@case
def case_hamming_share_blocks_not_bool(tmp):
    return (lambda: HammingConfig(share_blocks="yes")), None


@case
def case_target_modules_empty(tmp):
    return (lambda: HammingConfig(target_modules="")), None


@case
def case_target_modules_bad_regex(tmp):
    return (lambda: HammingConfig(target_modules="fc(")), None


@case
def case_mixture_no_experts(tmp):
    return (lambda: MixtureConfig(target_modules=["fc1"], experts=[])), None


@case
def case_mixture_router(tmp):
    return (lambda: MixtureConfig(router="magic", experts=[HammingConfig()])), None


@case
def case_mixture_nested(tmp):
    inner = MixtureConfig(experts=[HammingConfig()])
    return (lambda: MixtureConfig(experts=[inner])), None


@case
def case_physics_prior(tmp):
    from physics import PhysicsConfig
    return (lambda: PhysicsConfig(priors=("heat", "diffusion"))), None


@case
def case_physics_router(tmp):
    from physics import PhysicsConfig
    return (lambda: PhysicsConfig(router="magic")), None


@case
def case_physics_boundary(tmp):
    from physics import PhysicsConfig
    return (lambda: PhysicsConfig(boundary="torus")), None


@case
def case_physics_nan_kappa(tmp):
    from physics import PhysicsConfig
    return (lambda: PhysicsConfig(kappa=float("nan"))), None


@case
def case_physics_rank_zero(tmp):
    from physics import PhysicsConfig
    return (lambda: PhysicsConfig(rank=0)), None


@case
def case_config_from_dict_type(tmp):
    return (lambda: qiadapters.adapters.config.AdapterConfig.from_dict(
        {"adapter_type": "lora"})), None


# ------------------------------------------------------------------ inject
@case
def case_inject_no_match(tmp):
    model = _mlp()
    return (lambda: get_adapter_model(model, HammingConfig(target_modules=["fc3"]))), model


@case
def case_inject_no_targets(tmp):
    model = _mlp()
    return (lambda: get_adapter_model(model, HammingConfig())), model


@case
def case_inject_block_too_small(tmp):
    model = _mlp()
    cfg = HammingConfig(target_modules=["fc1"], block_size=1)
    return (lambda: get_adapter_model(model, cfg)), model


@case
def case_inject_too_many_blocks(tmp):
    model = _mlp()
    cfg = HammingConfig(target_modules=["fc2"], blocks=100)
    return (lambda: get_adapter_model(model, cfg)), model


@case
def case_inject_not_a_module(tmp):
    return (lambda: get_adapter_model("bert", HammingConfig(target_modules=["fc1"]))), None


@case
def case_inject_not_a_config(tmp):
    model = _mlp()
    return (lambda: get_adapter_model(model, {"target_modules": ["fc1"]})), model


@case
def case_add_existing_name(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    return (lambda: am.add_adapter("default", HammingConfig(target_modules=["fc2"]))), am


@case
def case_set_unknown_adapter(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    return (lambda: am.set_adapter("defualt")), am


# ------------------------------------------------------------------ save / load
@case
def case_save_unknown_adapter(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    return (lambda: am.save_pretrained(os.path.join(tmp, "out"), ["other"])), am


@case
def case_save_over_other_adapter(tmp):
    folder = _saved(tmp)
    am = get_adapter_model(_mlp(), HammingConfig.paper(target_modules=["fc1"]))
    return (lambda: am.save_pretrained(folder)), am


@case
def case_save_merged(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    am.merge_adapter()
    return (lambda: am.save_pretrained(os.path.join(tmp, "out"))), am


@case
def case_load_hub_id(tmp):
    return _load("someone/hamming-adapter")


@case
def case_load_missing_folder(tmp):
    return _load(os.path.join(tmp, "nowhere"))


@case
def case_load_no_adapter_files(tmp):
    os.makedirs(os.path.join(tmp, "empty"))
    return _load(os.path.join(tmp, "empty"))


@case
def case_load_truncated_weights(tmp):
    folder = _saved(tmp)
    path = os.path.join(folder, "adapter_model.safetensors")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return _load(folder)


@case
def case_load_corrupted_weights(tmp):
    folder = _saved(tmp)
    with open(os.path.join(folder, "adapter_model.safetensors"), "r+b") as f:
        f.write(b"\xff" * 16)
    return _load(folder)


@case
def case_load_empty_weights(tmp):
    folder = _saved(tmp)
    open(os.path.join(folder, "adapter_model.safetensors"), "wb").close()
    return _load(folder)


@case
def case_load_malformed_config(tmp):
    folder = _saved(tmp)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        f.write('{"adapter_type": "hamming", ')
    return _load(folder)


@case
def case_load_newer_format(tmp):
    folder = _saved(tmp)
    _edit_json(folder, format_version=99)
    return _load(folder)


@case
def case_load_unknown_field(tmp):
    folder = _saved(tmp)
    _edit_json(folder, rank=8)
    return _load(folder)


@case
def case_load_other_shapes(tmp):
    folder = _saved(tmp)
    return _load(folder, TinyMLP(hidden=64))


@case
def case_load_other_tensor_shapes(tmp):
    folder = _saved(tmp)
    path = os.path.join(folder, "adapter_config.json")
    with open(path) as f:
        data = json.load(f)
    del data["layers"]
    data["format_version"] = 4
    with open(path, "w") as f:
        json.dump(data, f)
    return _load(folder, TinyMLP(hidden=64))


@case
def case_load_malformed_layers(tmp):
    folder = _saved(tmp)
    _edit_json(folder, layers="fc1")
    return _load(folder)


@case
def case_load_is_trainable_not_bool(tmp):
    folder = _saved(tmp)
    model = _mlp()
    return (lambda: AdapterModel.from_pretrained(model, folder, is_trainable=1)), model


@case
def case_save_overwrite_not_bool(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    return (lambda: am.save_pretrained(os.path.join(tmp, "out"), overwrite="no")), am


@case
def case_save_over_other_layer_shapes(tmp):
    folder = os.path.join(tmp, "saved")
    cfg = HammingConfig(target_modules=["fc1", "fc2"], blocks=3)  # (3, 6) tensors on 32 or 40
    get_adapter_model(TinyMLP(hidden=32), cfg).save_pretrained(folder)
    am = get_adapter_model(TinyMLP(hidden=40), cfg)
    return (lambda: am.save_pretrained(folder)), am


@case
def case_load_name_taken(tmp):
    folder = _saved(tmp)
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    return (lambda: am.load_adapter(folder)), am


@case
def case_load_bad_adapter_name(tmp):
    folder = _saved(tmp)
    am = AdapterModel(_mlp())
    return (lambda: am.load_adapter(folder, adapter_name="a.b")), am


@case
def case_trainer_not_adapter_model(tmp):
    from qiadapters.integrations.transformers import AdapterTrainer
    model = _mlp()
    return (lambda: AdapterTrainer(model=model)), model


@case
def case_load_weights_nothing_saved(tmp):
    from qiadapters.integrations.transformers import load_adapter_weights
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    os.makedirs(os.path.join(tmp, "empty"))
    return (lambda: load_adapter_weights(am, os.path.join(tmp, "empty"))), am


@case
def case_trl_peft_config(tmp):
    import pytest
    peft = pytest.importorskip("peft")
    pytest.importorskip("trl")
    from qiadapters.integrations.trl import AdapterSFTTrainer
    from qiadapters.tiny_models import tiny_gpt2
    am = get_adapter_model(tiny_gpt2()[0], HammingConfig(target_modules=["c_attn"]))
    return (lambda: AdapterSFTTrainer(model=am, peft_config=peft.LoraConfig())), am


@case
def case_trl_adapted_output_embeddings(tmp):
    import pytest
    pytest.importorskip("trl")
    from qiadapters.integrations.trl import AdapterSFTTrainer
    from qiadapters.tiny_models import tiny_llama
    am = get_adapter_model(tiny_llama()[0], HammingConfig(target_modules=["q_proj"],
                                                          modules_to_save=["lm_head"]))
    return (lambda: AdapterSFTTrainer(model=am)), am


@case
def case_safe_merge_nonfinite(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    with torch.no_grad():
        next(p for n, p in am.named_parameters() if p.requires_grad).fill_(float("inf"))
    return (lambda: am.merge_adapter(safe_merge=True)), am


@case
def case_safe_merge_not_bool(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    return (lambda: am.merge_and_unload(safe_merge="yes")), am


@case
def case_mixture_merge(tmp):
    cfg = MixtureConfig(target_modules=["fc1"], router="token",
                        experts=[HammingConfig(), HammingConfig()])
    am = get_adapter_model(_mlp(), cfg)
    return (lambda: am.merge_adapter()), am


@case
def case_inject_target_typo(tmp):
    model = _mlp()
    cfg = HammingConfig(target_modules=["fc1", "fc_2"])
    return (lambda: get_adapter_model(model, cfg)), None  # a warning: the model is adapted


# ------------------------------------------------------------------ command line
def _cli(argv):
    """``qiadapters ARGV`` as the console script runs it: a nonzero status is SystemExit."""
    status = cli.main(argv)
    if status:
        raise SystemExit(status)
    return status


@case
def case_cli_unknown_command(tmp):
    return (lambda: _cli(["mrege"])), None


@case
def case_cli_info_missing(tmp):
    return (lambda: _cli(["info", os.path.join(tmp, "nowhere")])), None


@case
def case_cli_plan_budget(tmp):
    return (lambda: _cli(["plan", "--dim", "64", "--budget", "abc"])), None


@case
def case_cli_plan_orders_zero(tmp):
    return (lambda: _cli(["plan", "--dim", "64", "--budget", "100", "--orders", "0,1"])), None


@case
def case_cli_plan_top_negative(tmp):
    return (lambda: _cli(["plan", "--dim", "64", "--budget", "100", "--top", "-1"])), None


@case
def case_cli_merge_missing_adapter(tmp):
    return (lambda: _cli(["merge", "--model", tmp, "--adapter", os.path.join(tmp, "nowhere"),
                          "--out", os.path.join(tmp, "out")])), None


# ------------------------------------------------------------------ more cases, other files
import error_cases_circuits  # noqa: E402,F401  (registers its cases in CASES)
import error_cases_more  # noqa: E402,F401  (registers its cases in CASES)
import error_cases_merge  # noqa: E402,F401  (registers its cases in CASES)
import error_cases_select  # noqa: E402,F401  (registers its cases in CASES)
import error_cases_batch  # noqa: E402,F401  (registers its cases in CASES)
import error_cases_untrusted  # noqa: E402,F401  (registers its cases in CASES)
import error_cases_fold  # noqa: E402,F401  (registers its cases in CASES)
