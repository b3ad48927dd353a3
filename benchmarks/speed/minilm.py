"""The MiniLM training step the speed benchmark times, and which registry methods it times.

Methods are registry entries (:mod:`benchmarks.common.registry`, one JSON file each): every one
freezes the base, attaches on ``query``/``value`` (or the targets a case names, e.g.
``"all-linear"``) and leaves the classification head trainable; :func:`attach` returns the
model and the record of what actually ran (JSON text, for the CSV's ``config`` column).

:data:`CASES` are the (targets, batch, sequence) settings of the speed targets, each timed
for :data:`CASE_METHODS`.
"""
from __future__ import annotations

import json
from typing import Callable

import torch
from torch import nn

from ..common import registry

#: The Hamming setting of the step, inference and memory sections, and the reference every
#: ratio is taken against: the paper's layout on query/value (3 blocks of 128), the library's
#: default when those sections were measured.
OURS, REFERENCE = "hamming-12-b3", "lora-r8"
#: The library's default layout (``HammingConfig`` without blocks or block_size: blocks of
#: 32 on every MiniLM layer), the Hamming contender the speed targets are checked for.
DEFAULT = "hamming-12-bs32"
#: The step and memory contenders of the first full run against every peer, in table order.
METHODS = [OURS, REFERENCE, "head", "paper-dense-12-b3", "hamming-12-b8", "hamming-123-b3",
           "hamming-12-b3-input-side", "oft", "boft-b4-f2", "hra-r8"]
#: A smaller set for ``--quick``.
QUICK_METHODS = METHODS[:4]
#: The peers of the speed targets: Hamming <= 1.0x OFT and <= 1.05x LoRA in every case.
OFT = "oft"
#: The other block sizes beside the default: 16 and 64 features (n = 5, 10), and 128, the
#: paper's layout (``HammingConfig.paper()``: 3 blocks of 128 on query/value, 12 on the FFN).
OTHER_BLOCK_METHODS = ["hamming-12-bs16", "hamming-12-bs64", "hamming-12-bs128"]
CASE_METHODS = [DEFAULT, REFERENCE, OFT, "head", *OTHER_BLOCK_METHODS]
#: Extra contenders where the targets include the 1536-wide FFN: none since blocks of 128
#: are timed in every case (3 blocks on every layer, n = 31 on the FFN, is in the notes).
WIDE_METHODS: list[str] = []
#: ``(targets, batch, seq)``: query/value and every linear layer, small and large batch.
CASES = [(("query", "value"), 8, 32), (("query", "value"), 32, 64),
         ("all-linear", 8, 32), ("all-linear", 32, 64)]

#: The fixed-cost cases: one sequence of 32 tokens, where what an adapter adds to a step is
#: its per-step overhead (building the blocks, per-layer dispatch), not its arithmetic.
FIXED_CASES = [("all-linear", 1, 32), (("query", "value"), 1, 32)]


def case_name(targets, batch: int, seq: int) -> str:
    """``"query,value 8x32"`` / ``"all-linear 32x64"``."""
    names = targets if isinstance(targets, str) else ",".join(targets)
    return f"{names} {batch}x{seq}"


def case_methods(targets) -> list[str]:
    """The contenders of one case: :data:`CASE_METHODS`, plus :data:`WIDE_METHODS` when
    every linear layer is adapted."""
    return CASE_METHODS + (WIDE_METHODS if targets == "all-linear" else [])


def attach(name: str, model: nn.Module, targets=None) -> tuple[nn.Module, str]:
    """The registry method ``name`` on ``model`` (its own targets, or ``targets``: a list
    of module names or ``"all-linear"``); ``(model, record as JSON text)``."""
    entry = registry.get(name)
    if targets is not None and entry.family != "head":
        config = dict(entry.config, target_modules=targets if isinstance(targets, str)
                      else list(targets))
        entry = registry.Entry(name=entry.name, family=entry.family, label=entry.label,
                               config=config, experts=entry.experts)
    model, _, record = entry.build(model)
    return model, json.dumps(record, sort_keys=True)


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def minilm_batch(batch: int = 32, seq: int = 64, num_labels: int = 26, seed: int = 0):
    """Random token ids (speed does not depend on the text), full attention mask, labels."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (batch, seq), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, num_labels, (batch,), generator=gen)}


def train_step_fn(model: nn.Module, batch: dict, lr: float = 1e-4,
                  device: str = "cpu") -> Callable[[], None]:
    """One call = forward, backward, AdamW step, zero_grad (set_to_none), on ``device``
    (the model and batch are moved there); on CUDA the call ends with a synchronize, so a
    wall-clock timer around it measures the step's kernels."""
    model.to(device)
    batch = {k: v.to(device) for k, v in batch.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def step():
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
    return step
