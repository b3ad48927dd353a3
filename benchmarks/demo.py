"""The demo (``make demo``): a Hamming adapter vs LoRA on a real model and real data, on CPU.

Fine-tunes the pretrained all-MiniLM-L6-v2 on WordNet noun glosses (26 lexicographer
classes) twice with the same budget, seed, data order and fresh classification head:

1. ``hamming-default``: a qiadapters HammingAdapter on ``query``/``value`` with the library's
   default layout (``HammingConfig(target_modules=["query", "value"])``: orders {1, 2},
   Cayley, blocks of 32 features: 12 blocks of 7 qubits per layer);
2. ``lora-r8``: Hugging Face ``peft`` LoRA r=8 on ``query``/``value`` (``lora_alpha = r``,
   the registry's one LoRA convention);

(both registry entries, :mod:`benchmarks.common.registry`; ``--methods`` takes any registry names),
then prints trainable adapter parameters, head parameters, held-out test accuracy and
seconds per step, saves each qiadapters adapter with ``save_pretrained`` and reloads it onto
a fresh copy of the model to show the reloaded model scores the same.

    python -m benchmarks.demo                  # ~8 CPU-minutes: under 8 min on 2 idle cores
    python -m benchmarks.demo --steps 40       # a quick smoke run

Nothing is committed: the numbers in README.md and docs/demo.md come from the first command
(``runs/demo/results.json``).

The demo prints its progress and its table, nothing else.  Importing transformers' model
classes and peft loads the quantization backends that happen to be installed (torchao,
bitsandbytes and its kernel hub), which log warnings about kernels this CPU run never uses
("Failed to load ... .so", offline kernel downloads, torch's pytree deprecations);
:func:`quiet_backends` raises those loggers to ERROR first.  qiadapters itself imports none
of them unless a layer of theirs is adapted.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from .common import cli, registry
from .common.registry import head_parameters
from .common.constants import REPO_ROOT
from .data import (NUM_CLASSES, WordNetMissingError, ensure_wordnet, load_minilm,
                   load_minilm_tokenizer, load_wordnet_splits, tokenize_splits)
from .common.training import count_trainable, evaluate, train

#: Loggers of optional backends that warn at import about kernels the demo does not use.
QUIET_LOGGERS = ("torchao", "bitsandbytes", "kernels", "torch.utils._pytree")


def quiet_backends() -> None:
    """Show only errors from :data:`QUIET_LOGGERS` (their import-time warnings are noise)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


#: The demo's methods and learning rates: LoRA's the best of a short sweep at 200 steps; the
#: Hamming adapter's half of its best at 100 steps in the trade-off (2e-2), as the paper's
#: layout's best was at 300 steps (1e-2 against 2e-2; docs/demo.md says what else was tried).
DEFAULT_LRS = {"hamming-default": 1e-2, "lora-r8": 5e-3}


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser(__doc__, prog="python -m benchmarks.demo")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per method")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="split, head init and data order")
    p.add_argument("--lr", action="append", default=[], metavar="NAME=LR",
                   help=f"learning rate of a method (repeatable; defaults {DEFAULT_LRS}, "
                        "1e-2 for any other)")
    p.add_argument("--warmup-frac", type=float, default=0.1)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "demo",
                   help="where the qiadapters adapters (<name>/) and results.json go")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch intra-op threads (default: all cores; use 1 on a busy machine)")
    p.add_argument("--methods", default=",".join(DEFAULT_LRS),
                   help="comma-separated registry names, run in that order")
    p.add_argument("--no-install", action="store_true",
                   help="do not run apt-get when WordNet is missing; just say what to install")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in registry.METHODS]
    if unknown or not args.methods:
        p.error(f"--methods {unknown or args.methods}: choose from {sorted(registry.METHODS)}")
    try:
        args.lrs = dict(DEFAULT_LRS, **{k: float(v) for k, v in
                                        (item.split("=", 1) for item in args.lr)})
    except ValueError:
        p.error(f"--lr {args.lr}: write NAME=LR, e.g. --lr lora-r8=5e-3")
    return args


def run_method(name: str, model: torch.nn.Module, data: dict, args, lr: float,
               aux_loss_fn=None) -> dict:
    trainable = count_trainable(model)
    head = head_parameters(model)
    print(f"\n== {name}: {trainable - head:,d} adapter + {head:,d} head parameters trainable, "
          f"{args.steps} steps x batch {args.batch_size}, lr {lr:g}", flush=True)
    metrics = train(model, data["train"], data["validation"], steps=args.steps,
                    batch_size=args.batch_size, lr=lr, warmup_frac=args.warmup_frac,
                    seed=args.seed, aux_loss_fn=aux_loss_fn, desc=name)
    t0 = time.perf_counter()
    test_accuracy = evaluate(model, data["test"])
    print(f"{name}: validation {metrics['val_accuracy']:.4f}, test {test_accuracy:.4f} "
          f"({time.perf_counter() - t0:.0f}s to score the test set)", flush=True)
    return {"method": name, "adapter_params": trainable - head, "head_params": head,
            "lr": lr, "test_accuracy": test_accuracy, "val_accuracy": metrics["val_accuracy"],
            "train_loss": metrics["train_loss"], "seconds_per_step": metrics["seconds_per_step"],
            "train_seconds": metrics["train_seconds"]}


def run_registry_method(name: str, data: dict, args) -> tuple[dict, dict | None]:
    """Train one registry method; a qiadapters adapter is then saved, reloaded onto a fresh
    model and scored again (the second value; None for other methods)."""
    import qiadapters

    base, _ = load_minilm(NUM_CLASSES, seed=args.seed)
    model, aux_loss_fn, _ = registry.build(name, base)
    lr = args.lrs.get(name, 1e-2)
    row = run_method(registry.get(name).label, model, data, args, lr, aux_loss_fn=aux_loss_fn)
    if not isinstance(model, qiadapters.AdapterModel):
        return row, None
    adapter_dir = args.out / name
    model.save_pretrained(adapter_dir)
    # A different random head, so the reload has to restore the trained one.
    fresh, _ = load_minilm(NUM_CLASSES, seed=args.seed + 1)
    reloaded = qiadapters.AdapterModel.from_pretrained(fresh, adapter_dir)
    reloaded_accuracy = evaluate(reloaded, data["test"])
    probe = {k: v[:64] for k, v in data["test"].items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        max_logit_diff = (model(**probe).logits - reloaded(**probe).logits).abs().max().item()
    saved_bytes = sum(f.stat().st_size for f in adapter_dir.rglob("*") if f.is_file())
    print(f"saved to {adapter_dir} ({saved_bytes / 1024:.0f} KiB); reloaded onto a fresh "
          f"model: test {reloaded_accuracy:.4f} (max |logit difference| {max_logit_diff:.2e})",
          flush=True)
    return row, {"directory": str(adapter_dir), "bytes": saved_bytes,
                 "test_accuracy": reloaded_accuracy, "max_logit_diff": max_logit_diff}


def format_table(rows: list[dict]) -> str:
    header = ("method", "adapter params", "head params", "test acc", "val acc", "s/step")
    lines = [header]
    for r in rows:
        lines.append((r["method"], f"{r['adapter_params']:,d}", f"{r['head_params']:,d}",
                      f"{100 * r['test_accuracy']:.2f}%", f"{100 * r['val_accuracy']:.2f}%",
                      f"{r['seconds_per_step']:.3f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                             for j, (c, w) in enumerate(zip(line, widths))))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_backends()
    started = time.perf_counter()
    try:
        ensure_wordnet(install=not args.no_install)
    except WordNetMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    torch.set_num_threads(max(1, args.threads))
    splits = load_wordnet_splits(seed=args.seed)
    print(f"WordNet noun glosses, {NUM_CLASSES} classes: "
          + ", ".join(f"{k} {len(v):,d}" for k, v in splits.items()), flush=True)

    data = tokenize_splits(splits, load_minilm_tokenizer())
    rows, reloads = [], {}
    for name in args.methods:
        row, reload = run_registry_method(name, data, args)
        rows.append(row)
        if reload is not None:
            reloads[row["method"]] = reload, row

    total = time.perf_counter() - started
    print(f"\nall-MiniLM-L6-v2 on WordNet glosses ({NUM_CLASSES} classes), {args.steps} steps "
          f"x batch {args.batch_size}, seed {args.seed}; test set {len(splits['test']):,d}\n")
    print(format_table(rows))
    reload_ok = True
    for label, (reload, row) in reloads.items():
        same = reload["test_accuracy"] == row["test_accuracy"]
        reload_ok &= same
        print(f"\nreloaded {label}: test {100 * reload['test_accuracy']:.2f}% "
              f"({'identical' if same else 'DIFFERENT'}, max |logit difference| "
              f"{reload['max_logit_diff']:.1e})")
    print(f"demo wall time {total / 60:.1f} min")
    results = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
               "threads": torch.get_num_threads(), "rows": rows,
               "reload": {label: r for label, (r, _) in reloads.items()},
               "wall_seconds": total}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out / 'results.json'}")
    return 0 if reload_ok else 2


if __name__ == "__main__":
    sys.exit(main())
