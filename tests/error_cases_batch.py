"""Bad inputs of ``docs/errors.md`` for mixed-adapter batches, ``hotswap_adapter`` and
``add_weighted_adapter`` (``error_cases.py`` imports this file, so these cases register in
the same ``CASES`` table)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from error_cases import _mlp, case
from qiadapters import HammingConfig, get_adapter_model
from qiadapters.adapters.config import AdapterConfig
from qiadapters.adapters.layer import AdapterLayer, AdapterParts
from qiadapters.adapters.registry import registered
from qiadapters.model import AdapterModel, hotswap_adapter

X = torch.randn(3, 16)


def _two(**options):
    """A TinyMLP with Hamming adapters 'default' and 'b' on fc1, in eval mode."""
    cfg = HammingConfig(target_modules=["fc1"], **options)
    am = get_adapter_model(_mlp(), cfg)
    am.add_adapter("b", cfg)
    return am.eval()


# ------------------------------------------------------------------ mixed-adapter batches
@case
def case_mixed_unknown_name(tmp):
    am = _two()
    return (lambda: am(X, adapter_names=["b", "nope", "__base__"])), am


@case
def case_mixed_names_string(tmp):
    am = _two()
    return (lambda: am(X, adapter_names="b")), am


@case
def case_mixed_names_length(tmp):
    am = _two()
    return (lambda: am(X, adapter_names=["b", "default"])), am


@case
def case_mixed_training(tmp):
    am = _two().train()
    return (lambda: am(X, adapter_names=["b", "default", "b"])), am


@case
def case_mixed_merged(tmp):
    am = _two()
    am.merge_adapter()
    return (lambda: am(X, adapter_names=["b", "default", "b"])), am


@dataclass
class _NoMixConfig(AdapterConfig):
    adapter_type: ClassVar[str] = "test-no-mixed-batches"


class _NoMixLayer(AdapterLayer):
    adapter_layer_names = ("nomix",)

    @classmethod
    def build(cls, base_layer):
        return AdapterParts(modules={"nomix": nn.Linear(1, 1)}, settings={})

    def adapter_forward(self, x, adapter_names, *args, **kwargs):
        return self.base_layer(x, *args, **kwargs)


@case
def case_mixed_family_without_support(tmp):
    am = _two()
    with registered(_NoMixConfig, _NoMixLayer):  # a family known only while it is built
        am.add_adapter("nomix", _NoMixConfig(target_modules=["fc2"]))
    return (lambda: am(X, adapter_names=["nomix", "b", "b"])), am


# ------------------------------------------------------------------ hotswap_adapter
def _saved_two(tmp, name, **options):
    folder = os.path.join(tmp, name)
    get_adapter_model(_mlp(), HammingConfig(target_modules=["fc1"], **options)
                      ).save_pretrained(folder)
    return folder


@case
def case_hotswap_other_layout(tmp):
    am = AdapterModel.from_pretrained(_mlp(), _saved_two(tmp, "live"))
    other = _saved_two(tmp, "other", orders=(1,))
    return (lambda: hotswap_adapter(am, other)), am


@case
def case_hotswap_merged(tmp):
    folder = _saved_two(tmp, "live")
    am = AdapterModel.from_pretrained(_mlp(), folder)
    am.merge_adapter()
    return (lambda: hotswap_adapter(am, folder)), am


@case
def case_hotswap_unknown_adapter(tmp):
    folder = _saved_two(tmp, "live")
    am = AdapterModel.from_pretrained(_mlp(), folder)
    return (lambda: hotswap_adapter(am, folder, adapter_name="b")), am


# ------------------------------------------------------------------ add_weighted_adapter
@case
def case_weighted_combination_type(tmp):
    am = _two()
    return (lambda: am.add_weighted_adapter(["default", "b"], [1, 1], "ab", "linear")), am


@case
def case_weighted_weights(tmp):
    am = _two()
    return (lambda: am.add_weighted_adapter(["default", "b"], [1], "ab")), am


@case
def case_weighted_layouts(tmp):
    am = _two()
    am.add_adapter("input", HammingConfig(target_modules=["fc1"], side="input"))
    return (lambda: am.add_weighted_adapter(["default", "input"], [1, 1], "ab")), am


@case
def case_weighted_circuit(tmp):
    am = _two(parametrization="circuit")
    return (lambda: am.add_weighted_adapter(["default", "b"], [1, 1], "ab")), am


@case
def case_weighted_not_hamming(tmp):
    from physics import PhysicsConfig

    am = _two()
    am.add_adapter("phys", PhysicsConfig(target_modules=["fc2"], rank=2, grid="sequence"))
    return (lambda: am.add_weighted_adapter(["default", "phys"], [1, 1], "ab")), am
