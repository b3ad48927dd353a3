"""Bad inputs of ``docs/errors.md`` for the learned scale, ``recompute_base`` and the fold route
(``error_cases.py`` imports this file, so these cases register in the same ``CASES`` table).
"""
from __future__ import annotations

import torch
from torch import nn

from error_cases import _mlp, case
from qiadapters import AdapterModel, HammingConfig
from qiadapters.adapters.hamming import set_route


@case
def case_hamming_scale_not_bool(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"], scale="yes")), None


@case
def case_hamming_recompute_base_not_bool(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"], recompute_base="yes")), None


@case
def case_hamming_recompute_base_input_side(tmp):
    return (lambda: HammingConfig(target_modules=["fc1"], side="input",
                                  recompute_base=True)), None


@case
def case_fold_route_name(tmp):
    am = AdapterModel(_mlp(), HammingConfig(target_modules=["fc1", "fc2"]))
    return (lambda: set_route(am, "fused")), am


@case
def case_fold_route_no_hamming_layer(tmp):
    model = _mlp()
    return (lambda: set_route(model, "fold")), model


class _Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.conv = nn.Conv1d(8, 8, 3)

    def forward(self, x):
        return self.conv(self.fc(x).transpose(1, 2))


@case
def case_fold_route_convolution(tmp):
    torch.manual_seed(0)
    am = AdapterModel(_Convs(), HammingConfig(target_modules=["fc", "conv"], blocks=1))
    return (lambda: set_route(am, "fold")), am
