"""The composition benchmark's training and scoring: each task's adapter trained on its
slice of the head, then the combinations scored on both tasks."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..common.data import load_minilm
from ..common.training import global_batches, warmup_cosine
from .tasks import NOUN_CLASSES, TASKS, VERB_CLASSES

#: The learning rates the trade-off benchmark chose on validation for these two methods.
LR = {"hamming": 0.02, "lora": 0.01}


def _sliced(logits: torch.Tensor, task: str) -> torch.Tensor:
    lo, hi = TASKS[task]
    return logits[:, lo:hi]


def train(model, params, data: dict, task: str, steps: int, batch: int, lr: float) -> float:
    """AdamW with warm-up + cosine on ``params``; cross-entropy over the task's slice."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, 0.1))
    torch.manual_seed(0)
    model.train()
    lo = TASKS[task][0]
    started = time.process_time()
    n = len(data["labels"])
    for index in global_batches(n, batch, steps, seed=0):
        inputs = {k: v[index] for k, v in data.items() if k != "labels"}
        loss = F.cross_entropy(_sliced(model(**inputs).logits, task), data["labels"][index] - lo)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return time.process_time() - started


@torch.no_grad()
def accuracy(model, data: dict, task: str, batch: int = 250) -> float:
    model.eval()
    lo, correct = TASKS[task][0], 0
    for start in range(0, len(data["labels"]), batch):
        inputs = {k: v[start:start + batch] for k, v in data.items() if k != "labels"}
        pred = _sliced(model(**inputs).logits, task).argmax(-1) + lo
        correct += int((pred == data["labels"][start:start + batch]).sum())
    return 100.0 * correct / len(data["labels"])


def scores(model, tasks) -> dict[str, float]:
    return {t: accuracy(model, tasks[t]["test"], t) for t in TASKS}


def run_hamming(tasks, steps, batch) -> list[dict]:
    from qiadapters import HammingConfig, get_adapter_model
    from qiadapters.model import compose  # noqa: F401  (loaded before training starts)

    model, _ = load_minilm(num_labels=NOUN_CLASSES + VERB_CLASSES, seed=0)
    cfg = HammingConfig(target_modules=["query", "value"], orders=(1, 2), blocks=3,
                        parametrization="expm")
    am = get_adapter_model(model, cfg, adapter_name="nouns")
    am.add_adapter("verbs", cfg)
    head = am.base_model.classifier
    head.requires_grad_(True)
    rows, cpu = [], 0.0
    for task in TASKS:
        am.set_adapter(task)
        params = [p for p in am.parameters() if p.requires_grad]
        cpu += train(am, params, tasks[task]["train"], task, steps, batch, LR["hamming"])
    for task in TASKS:
        am.set_adapter(task)
        rows.append({"library": "qiadapters", "adapter": f"{task} alone", **scores(am, tasks)})
    for kind in ("product", "generator"):
        for w in (1.0, 0.5):
            name = f"{kind}-{w:g}".replace(".", "_")
            am.add_weighted_adapter(["nouns", "verbs"], [w, w], name, combination_type=kind)
            am.set_adapter(name)
            rows.append({"library": "qiadapters", "adapter": f"{kind} ({w:g}, {w:g})",
                         **scores(am, tasks)})
    with am.disable_adapter():
        rows.append({"library": "-", "adapter": "no adapter (trained heads)",
                     **scores(am, tasks)})
    for r in rows:
        r["train_cpu_s"] = round(cpu, 1)
    return rows


def run_lora(tasks, steps, batch) -> list[dict]:
    from peft import get_peft_model

    from ..common.registry import lora_config

    model, _ = load_minilm(num_labels=NOUN_CLASSES + VERB_CLASSES, seed=0)
    cfg = lora_config(8, target_modules=["query", "value"], modules_to_save=None)
    pm = get_peft_model(model, cfg, adapter_name="nouns")
    pm.add_adapter("verbs", cfg)
    head = pm.base_model.model.classifier
    rows, cpu = [], 0.0
    for task in TASKS:
        pm.base_model.set_adapter(task)
        head.requires_grad_(True)
        params = [p for p in pm.parameters() if p.requires_grad]
        cpu += train(pm, params, tasks[task]["train"], task, steps, batch, LR["lora"])
    for task in TASKS:
        pm.base_model.set_adapter(task)
        rows.append({"library": "peft LoRA r=8", "adapter": f"{task} alone", **scores(pm, tasks)})
    for kind in ("linear", "cat"):
        for w in (1.0, 0.5):
            name = f"{kind}-{w:g}".replace(".", "_")
            pm.add_weighted_adapter(["nouns", "verbs"], [w, w], name, combination_type=kind)
            pm.base_model.set_adapter(name)
            rows.append({"library": "peft LoRA r=8", "adapter": f"{kind} ({w:g}, {w:g})",
                         **scores(pm, tasks)})
    for r in rows:
        r["train_cpu_s"] = round(cpu, 1)
    return rows
