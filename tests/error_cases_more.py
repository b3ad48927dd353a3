"""More bad inputs of ``docs/errors.md`` (``error_cases.py`` imports this file last, so these
cases register in the same ``CASES`` table): orders, expert types, paths, training a merged
model, loading, the physics grid of a ViT, command-line statuses, peft's loader.
"""
from __future__ import annotations

import os

import pytest
import torch

from error_cases import _cli, _edit_json, _load, _mlp, _saved, case
from qiadapters import HammingConfig, MixtureConfig, get_adapter_model
from qiadapters.model import AdapterModel


# ------------------------------------------------------------------ configs
@case
def case_hamming_orders_string(tmp):
    return (lambda: HammingConfig(orders="12")), None


@case
def case_hamming_orders_int(tmp):
    return (lambda: HammingConfig(orders=2)), None


@case
def case_hamming_order_negative(tmp):
    return (lambda: HammingConfig(orders=(-1, 1))), None


@case
def case_mixture_expert_type(tmp):
    return (lambda: MixtureConfig(experts=[{"adapter_type": "hamm"}])), None


# ------------------------------------------------------------------ model
@case
def case_train_merged(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    am.merge_adapter()
    am.train()
    x = torch.randn(2, 16)
    return (lambda: am(x).sum().backward()), am


@case
def case_save_parent_is_file(tmp):
    am = get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"]))
    open(os.path.join(tmp, "notes.txt"), "w").close()
    return (lambda: am.save_pretrained(os.path.join(tmp, "notes.txt", "out"))), am


@case
def case_load_without_model(tmp):
    folder = _saved(tmp)
    return (lambda: AdapterModel.from_pretrained(folder)), None


@case
def case_load_bad_value(tmp):
    folder = _saved(tmp)
    _edit_json(folder, orders=[0, 1])
    return _load(folder)


# ------------------------------------------------------------------ physics
def _vit():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=16,
                       num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       num_labels=3)
    return ViTForImageClassification(config).eval()


@case
def case_physics_vit_no_extra_tokens(tmp):
    from physics import PhysicsConfig

    cfg = PhysicsConfig(target_modules=["attention"], placement="input", rank=2)
    am = get_adapter_model(_vit(), cfg)
    pixels = torch.randn(1, 3, 32, 32)
    return (lambda: am(pixel_values=pixels)), am


# ------------------------------------------------------------------ command line
@case
def case_cli_plan_budget_zero(tmp):
    return (lambda: _cli(["plan", "--dim", "64", "--budget", "0"])), None


@case
def case_cli_verify_max_n(tmp):
    return (lambda: _cli(["verify", "--max-n", "1"])), None


# ------------------------------------------------------------------ peft
@case
def case_peft_loads_qiadapters_folder(tmp):
    peft = pytest.importorskip("peft")
    folder = _saved(tmp)
    model = _mlp()
    return (lambda: peft.PeftModel.from_pretrained(model, folder)), model


@case
def case_config_file_bad_value(tmp):
    from qiadapters.adapters.config import AdapterConfig

    folder = _saved(tmp)
    _edit_json(folder, orders=[0, 1])
    return (lambda: AdapterConfig.load(folder)), None


# ------------------------------------------------------------------ op counting
@case
def case_op_count_warmup(tmp):
    from qiadapters.op_count import count_train_step

    model = _mlp()
    return (lambda: count_train_step(model, {}, None, warmup=-1)), model


# ------------------------------------------------------------------ optimizers
def _optimizer(model, **kwargs):
    from qiadapters.optimizers import create_hamming_optimizer
    return (lambda: create_hamming_optimizer(model, torch.optim.AdamW, **kwargs)), model


@case
def case_optimizer_lr(tmp):
    return _optimizer(get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"])), lr=0)


@case
def case_optimizer_ratio(tmp):
    return _optimizer(get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"])),
                      lr=0.1, angle_lr_ratio=float("inf"))


@case
def case_optimizer_scale_without_scale(tmp):
    return _optimizer(get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"])),
                      lr=0.1, scale_lr_ratio=3.0)


@case
def case_optimizer_no_hamming(tmp):
    return _optimizer(_mlp(), lr=0.1)
