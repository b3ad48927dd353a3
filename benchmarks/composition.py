"""Combining two task adapters into one: Hamming ``add_weighted_adapter`` against peft LoRA's.

all-MiniLM-L6-v2, two WordNet tasks from the same package (``apt-get install -y
wordnet-base``): the trade-off benchmark's noun glosses (26 lexicographer classes) and verb
glosses (15 classes, ``/usr/share/wordnet/data.verb``).  One 41-way head: nouns are labels
0-25, verbs 26-40; each task's loss and argmax read its own slice, so each task trains its
own rows of the head and the two heads never interfere (the head is a plain trainable
module, not a ``modules_to_save`` copy: peft refuses to combine adapters that hold copies).

For each library: an adapter trained on nouns, one on verbs (same steps, batch, schedule;
the learning rates the trade-off benchmark chose for the method), then the combinations
(ours: ``"product"`` and ``"generator"``; peft LoRA r=8: ``"linear"`` and ``"cat"``), each
scored on both test sets.  The question: does one combined adapter keep both tasks?

    python -m benchmarks.composition --threads 1     # the committed files, ~7 CPU minutes
    python -m benchmarks.composition --quick         # smoke check, results/quick/
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import cli
from .data import (WORDNET_NOUN_PATH, load_minilm, load_wordnet_splits, stratified_split,
                   tokenize)
from .common.training import global_batches, warmup_cosine

VERB_PATH = WORDNET_NOUN_PATH.with_name("data.verb")
FIRST_VERB_FILE, VERB_CLASSES, NOUN_CLASSES = 29, 15, 26
TASKS = {"nouns": (0, NOUN_CLASSES), "verbs": (NOUN_CLASSES, NOUN_CLASSES + VERB_CLASSES)}
#: The learning rates the trade-off benchmark chose on validation for these two methods.
LR = {"hamming": 0.02, "lora": 0.01}


def read_verb_glosses(path: Path = VERB_PATH) -> tuple[list[str], list[int]]:
    """Verb glosses and their lexicographer class (files 29-43 -> 0-14)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: apt-get install -y wordnet-base")
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  ") or " | " not in line:
                continue
            head, _, gloss = line.partition(" | ")
            texts.append(gloss.strip())
            labels.append(int(head.split()[1]) - FIRST_VERB_FILE)
    return texts, labels


def load_tasks(tokenizer, n_test: int) -> dict[str, dict]:
    """``{task: {"train": tensors, "test": tensors}}``, labels already offset into the head:
    the trade-off benchmark's split (8,000 / 2,000 / 2,000, seed 0) of each task, the first
    ``n_test`` test examples (the test split is shuffled)."""
    nouns = load_wordnet_splits(0, 8000, 2000, 2000)
    verbs = stratified_split(*read_verb_glosses(), 8000, 2000, 2000, seed=0)
    out = {}
    for task, splits in (("nouns", nouns), ("verbs", verbs)):
        lo = TASKS[task][0]
        out[task] = {}
        for s, n in (("train", None), ("test", n_test)):
            texts, labels = splits[s].texts[:n], splits[s].labels[:n]
            out[task][s] = tokenize(texts, [lo + y for y in labels], tokenizer)
    return out


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

    from .common.registry import lora_config

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


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"all-MiniLM-L6-v2, WordNet noun glosses (26 classes) and verb glosses (15): "
             f"{meta['steps']} steps x batch {meta['batch']} per task, {meta['n_test']} test "
             f"examples per task, --threads {meta['threads']}.", "",
             "| library | adapter | nouns acc % | verbs acc % | mean |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['library']} | {r['adapter']} | {r['nouns']:.1f} | {r['verbs']:.1f} "
                     f"| {(r['nouns'] + r['verbs']) / 2:.1f} |")
    lines += ["", "One seed; each accuracy is over the task's first test examples (about ±2 points "
              "at 600).  Each task has its own rows of one head, trained with its adapter.  Run "
              "on a machine shared with other processes (CPU times in composition.json; the "
              "accuracies do not depend on it)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = cli.quick_parser(__doc__, "5 steps, 300 test examples")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=600)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.n_test = 5, 300
    out = cli.start(args)
    _, tokenizer = load_minilm(num_labels=NOUN_CLASSES + VERB_CLASSES, seed=0)
    tasks = load_tasks(tokenizer, args.n_test)
    started = time.process_time()
    rows = run_hamming(tasks, args.steps, args.batch) + run_lora(tasks, args.steps, args.batch)
    meta = {"steps": args.steps, "batch": args.batch, "n_test": args.n_test, "threads": args.threads or torch.get_num_threads(),
            "cpu_seconds": round(time.process_time() - started, 1),
            "lr": LR, "shared_machine": True}
    (out / "composition.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "composition.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0 if all(math.isfinite(r["nouns"]) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
