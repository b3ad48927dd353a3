"""The mixed-batch benchmark's models (four adapters each: qiadapters Hamming, peft LoRA
r=8) and its measurement: the mixed call and the separate calls, interleaved
(:mod:`benchmarks.mixed_batch.run` says more)."""
from __future__ import annotations

import statistics
import time

import torch

from ..common.architecture import minilm_architecture
from ..common.constants import TARGETS

ADAPTERS = ("task1", "task2", "task3", "task4")


def _perturb(model, scale: float = 0.05) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("hamming", "lora_")):
                p.add_(scale * torch.randn(p.shape, generator=g))


def qiadapters_model():
    from qiadapters import HammingConfig, get_adapter_model

    # the paper's layout (3 blocks of 128 on query/value), which the committed results used
    am = get_adapter_model(minilm_architecture(), HammingConfig.paper(target_modules=TARGETS),
                           adapter_name=ADAPTERS[0])
    for name in ADAPTERS[1:]:
        am.add_adapter(name, HammingConfig.paper(target_modules=TARGETS))
    _perturb(am)
    return am.eval(), am.set_adapter


def peft_model():
    from peft import get_peft_model

    from ..common.registry import lora_config

    config = lora_config(8, target_modules=TARGETS, modules_to_save=None)
    pm = get_peft_model(minilm_architecture(), config, adapter_name=ADAPTERS[0])
    for name in ADAPTERS[1:]:
        pm.add_adapter(name, config)
    _perturb(pm)
    return pm.eval(), pm.base_model.set_adapter


def _batch(rows: int, length: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (rows, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@torch.no_grad()
def measure(model, set_adapter, rows: int, length: int, repeats: int) -> dict:
    """Median seconds of the mixed call and of the four separate calls, interleaved."""
    batch = _batch(len(ADAPTERS) * rows, length)
    names = [a for a in ADAPTERS for _ in range(rows)]
    parts = [{k: v[i * rows:(i + 1) * rows] for k, v in batch.items()}
             for i in range(len(ADAPTERS))]

    def mixed():
        return model(**batch, adapter_names=names).logits

    def separate():
        out = []
        for name, part in zip(ADAPTERS, parts):
            set_adapter(name)
            out.append(model(**part).logits)
        return torch.cat(out)

    torch.testing.assert_close(mixed(), separate(), atol=1e-5, rtol=1e-5)  # same answers
    times = {"mixed": [], "separate": []}
    for _ in range(repeats):
        for key, fn in (("mixed", mixed), ("separate", separate)):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"rows_per_adapter": rows, "batch": len(names), "tokens": length,
            "mixed_s": med["mixed"], "separate_s": med["separate"],
            "mixed_rows_per_s": len(names) / med["mixed"],
            "separate_rows_per_s": len(names) / med["separate"],
            "speedup": med["separate"] / med["mixed"], "repeats": repeats}
