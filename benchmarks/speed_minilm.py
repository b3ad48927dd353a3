"""The MiniLM training step the speed benchmark times, and which registry methods it times.

Methods are registry entries (:mod:`benchmarks.registry`, one JSON file each): every one
freezes the base, attaches on ``query``/``value`` and leaves the classification head
trainable; :func:`attach` returns the model and the record of what actually ran (JSON text,
for the CSV's ``config`` column).
"""
from __future__ import annotations

import json
from typing import Callable

import torch
from torch import nn

from . import registry

#: Our default setting and the reference every ratio is taken against.
OURS, REFERENCE = "hamming-12-b3", "lora-r8"
#: The step and memory contenders, in table order (the first two are compared by the targets).
METHODS = [OURS, REFERENCE, "head", "paper-dense-12-b3", "hamming-12-b8", "hamming-123-b3",
           "hamming-12-b3-input-side", "oft", "boft-b4-f2", "hra-r8"]
#: A smaller set for ``--quick``.
QUICK_METHODS = METHODS[:4]


def attach(name: str, model: nn.Module) -> tuple[nn.Module, str]:
    """The registry method ``name`` on ``model``; ``(model, record as JSON text)``."""
    model, _, record = registry.build(name, model)
    return model, json.dumps(record, sort_keys=True)


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def minilm_batch(batch: int = 32, seq: int = 64, num_labels: int = 26, seed: int = 0):
    """Random token ids (speed does not depend on the text), full attention mask, labels."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (batch, seq), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, num_labels, (batch,), generator=gen)}


def train_step_fn(model: nn.Module, batch: dict, lr: float = 1e-4) -> Callable[[], None]:
    """One call = forward, backward, AdamW step, zero_grad (set_to_none)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()

    def step():
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step
