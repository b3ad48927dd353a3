"""Parameter count vs accuracy, qiadapters against Hugging Face peft in one run.

all-MiniLM-L6-v2 (``AutoModelForSequenceClassification``, fresh 26-way head, trainable and
counted separately for every method) on WordNet noun glosses (seeded stratified split
8,000 / 2,000 / 2,000, max length 32). Every method (a row of :data:`METHODS`) gets the same
protocol (the methods themselves are registry entries, :mod:`benchmarks.registry`):

1. learning-rate sweep: one run per lr of its grid at seed 0, scored on VALIDATION (the test
   accuracy of the same run is recorded too, but never looked at for the choice); while the
   best lr is the grid's largest, the grid grows by x2.5 (at most twice, ``--extend``);
2. the lr with the best validation accuracy is run at the remaining seeds (seed 0 is the
   sweep run itself), and the row reports mean / std of TEST accuracy over the seeds.

Same steps, batch, AdamW (no weight decay), linear warm-up + cosine for every method
(:func:`benchmarks.training.train`). A seed sets the head's initialisation, the data order
and dropout; the split is always the seed-0 split.

Resumable: every finished training run is one JSON line in ``tradeoff_runs.jsonl``; a rerun
reads it and skips runs already there (keyed by method, lr, seed, steps, batch size), then
rebuilds ``tradeoff.csv`` and ``tradeoff.png`` from everything recorded.

After scoring, every run is also probed for what it cost the pretrained encoder (sentence
similarity on held-out WordNet verb glosses, :mod:`benchmarks.forgetting`; 1,000 synsets, 200
in ``--quick``; ``--no-probe`` skips it): the ``probe_*`` fields of the run's record.

    python -m benchmarks.tradeoff --threads 1           # the committed files (hours on 2 cores)
    python -m benchmarks.tradeoff --quick               # smoke check, < 10 min, results/quick/
    python -m benchmarks.tradeoff --methods lora-r8 hamming-12-b3 --seeds 0 1 2
    python -m benchmarks.tradeoff --report-only         # rebuild csv / png from the jsonl
    python -m benchmarks.tradeoff --list                # the method table
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from .constants import RESULTS, results_dir
from . import forgetting
from .registry import head_parameters
from .tradeoff_methods import METHODS, QUICK, Method, family_available
from .tradeoff_sweep import (EXTEND_FACTOR, MAX_EXTEND, append_run, choose_lr, load_runs, plan,
                             record_key, run_key, sweep_grid)


# ----------------------------------------------------------------------------------- running

def train_one(method: Method, lr: float, seed: int, splits_to_score, data: dict,
              load_model: Callable[[int], nn.Module], steps: int, batch_size: int,
              warmup_frac: float, progress: bool = True,
              probe_n: Optional[int] = None) -> dict:
    """Build ``method`` on a fresh model (head seeded by ``seed``), train, score; one record.

    ``probe_n``: also run the forgetting probe on that many held-out synsets
    (:func:`benchmarks.forgetting.probe`, its fields added to the record); None: no probe. A
    probe that fails records ``probe_error`` instead, so the training run is kept."""
    from .training import count_trainable, evaluate, train

    model, aux_loss_fn, record = method.build(load_model(seed))
    trainable = count_trainable(model)
    head = head_parameters(model)
    desc = f"{method.name} lr={lr:g} seed={seed}"
    cpu0 = time.process_time()
    metrics = train(model, data["train"], None, steps=steps, batch_size=batch_size, lr=lr,
                    warmup_frac=warmup_frac, seed=seed, aux_loss_fn=aux_loss_fn,
                    progress=progress, desc=desc, adapter_lr_scale=method.adapter_lr_scale)
    cpu_seconds = time.process_time() - cpu0
    scores = {split: evaluate(model, data[split]) for split in splits_to_score}
    probe = {}
    if probe_n:
        try:
            probe = forgetting.probe(model, n=probe_n)
        except Exception as err:
            print(f"probe failed for {desc}: {type(err).__name__}: {err}", flush=True)
            probe = {"probe_error": f"{type(err).__name__}: {err}"[:300]}
    return {
        "method": method.name, "family": method.family, "label": method.label,
        "lr": lr, "seed": seed, "steps": steps, "batch_size": batch_size,
        "adapter_lr_scale": method.adapter_lr_scale,
        "warmup_frac": warmup_frac,
        "val_accuracy": scores.get("validation"), "test_accuracy": scores.get("test"),
        "adapter_params": trainable - head, "head_params": head,
        "train_loss": metrics["train_loss"], "final_loss": metrics["losses"][-1],
        "seconds_per_step": metrics["seconds_per_step"],
        "median_seconds_per_step": metrics["median_seconds_per_step"],
        "train_seconds": metrics["train_seconds"], "threads": torch.get_num_threads(),
        # CPU seconds of this process per step: unlike wall time, hardly inflated by other
        # load on a shared machine (with 1 thread it is the single-core cost of a step).
        "cpu_seconds_per_step": cpu_seconds / steps,
        "config": record, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **probe,
    }


ACC_FIELD = {"validation": "val_accuracy", "test": "test_accuracy"}


def run_all(methods: list[Method], data: dict, load_model, runs_path: Path, seeds, steps: int,
            batch_size: int, warmup_frac: float, lrs_override=None, progress=True,
            deadline: Optional[float] = None, extend: int = 0,
            probe_n: Optional[int] = None) -> int:
    """Train every missing run of ``methods`` (method by method), appending each to
    ``runs_path``. Stops before starting a run after ``deadline`` (``time.time()``).
    ``probe_n``: see :func:`train_one`."""
    trained = 0
    for method in methods:
        why = family_available(method)
        if why is not None:
            print(f"skip {method.name}: {why}", flush=True)
            continue
        lrs = tuple(lrs_override or method.lrs)
        while True:
            if deadline is not None and time.time() > deadline:
                print("deadline reached; rerun the same command to continue", flush=True)
                return trained
            nxt = plan(load_runs(runs_path), method, lrs, seeds, steps, batch_size, extend)
            if nxt is None:
                break
            lr, seed, splits = nxt
            t0 = time.perf_counter()
            try:
                run = train_one(method, lr, seed, splits, data, load_model, steps, batch_size,
                                warmup_frac, progress, probe_n)
            except Exception as err:
                print(f"FAILED {method.name} lr={lr:g} seed={seed}: {type(err).__name__}: "
                      f"{err}", flush=True)
                break
            append_run(runs_path, run)
            trained += 1
            acc = ", ".join(f"{split} {100 * run[ACC_FIELD[split]]:.2f}" for split in splits)
            if "probe_recall1" in run:
                acc += (f"; probe R@1 {100 * run['probe_recall1']:.1f} (base "
                        f"{100 * run['probe_base_recall1']:.1f}), drift "
                        f"{run['probe_drift']:.4f}")
            print(f"done {method.name} lr={lr:g} seed={seed}: {acc}; "
                  f"{run['adapter_params']:,d}+{run['head_params']:,d} params; "
                  f"{run['median_seconds_per_step']:.3f} s/step; "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    return trained


# ---------------------------------------------------------------------------------- summary

def summarize(runs: list[dict], methods: list[Method], seeds, steps: int, batch_size: int,
              lrs_override=None, extend: int = 0) -> list[dict]:
    """One row per method with a finished sweep: chosen lr and test mean / std over seeds."""
    rows = []
    for method in methods:
        lrs = sweep_grid(runs, method.name, tuple(lrs_override or method.lrs), steps,
                         batch_size, seeds[0], extend)
        best = choose_lr(runs, method.name, lrs, steps, batch_size, seeds[0])
        if best is None:
            continue
        done = {record_key(r): r for r in runs}
        chosen = [done[k] for k in (run_key(method.name, best, s, steps, batch_size)
                                    for s in seeds) if k in done]
        tests = [r["test_accuracy"] for r in chosen]
        sweep = {lr: done[run_key(method.name, lr, seeds[0], steps, batch_size)]["val_accuracy"]
                 for lr in lrs}
        rows.append({
            "method": method.name, "label": method.label, "family": method.family,
            "chosen_lr": best,
            "val_acc_at_lr": sweep[best],
            "test_acc_mean": statistics.mean(tests),
            "test_acc_std": statistics.stdev(tests) if len(tests) > 1 else float("nan"),
            "n_seeds": len(tests), "seeds": " ".join(str(r["seed"]) for r in chosen),
            "adapter_params": chosen[0]["adapter_params"],
            "head_params": chosen[0]["head_params"],
            "s_per_step": statistics.median(r["median_seconds_per_step"] for r in chosen),
            "cpu_s_per_step": _median_or_nan([r.get("cpu_seconds_per_step") for r in chosen]),
            "steps": steps, "batch_size": batch_size,
            "val_acc_sweep": " ".join(f"{lr:g}:{100 * v:.2f}" for lr, v in sweep.items()),
            "config": json.dumps(chosen[0]["config"], sort_keys=True),
            # Forgetting probe: over the chosen-lr runs that have it (older records do not).
            "probe_recall1_mean": _mean_or_nan([r.get("probe_recall1") for r in chosen]),
            "probe_drift_mean": _mean_or_nan([r.get("probe_drift") for r in chosen]),
            "probe_base_recall1": _mean_or_nan([r.get("probe_base_recall1") for r in chosen]),
        })
    return rows


def _median_or_nan(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def _mean_or_nan(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else float("nan")


CSV_FIELDS = ("method", "label", "family", "chosen_lr", "val_acc_at_lr", "test_acc_mean",
              "test_acc_std", "n_seeds", "seeds", "adapter_params", "head_params",
              "s_per_step", "cpu_s_per_step", "steps", "batch_size", "val_acc_sweep", "config",
              "probe_recall1_mean", "probe_drift_mean", "probe_base_recall1")
#: Columns written with 4 decimals, empty when NaN (a row without them: empty too).
_FLOAT4 = ("val_acc_at_lr", "test_acc_mean", "test_acc_std", "probe_recall1_mean",
           "probe_base_recall1")


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            out = dict(row)
            for key in _FLOAT4:
                value = row.get(key, float("nan"))
                out[key] = f"{value:.4f}" if not math.isnan(value) else ""
            drift = row.get("probe_drift_mean", float("nan"))
            out["probe_drift_mean"] = "" if math.isnan(drift) else f"{drift:.6f}"
            out["s_per_step"] = f"{row['s_per_step']:.3f}"
            cpu = row["cpu_s_per_step"]
            out["cpu_s_per_step"] = "" if math.isnan(cpu) else f"{cpu:.3f}"
            writer.writerow(out)


def claim_lines(rows: list[dict], reference: str = "lora-r8") -> list[str]:
    """The paper's claim, checked row by row: >= 99% of LoRA r=8's accuracy with >= 40x
    fewer adapter parameters."""
    by_name = {r["method"]: r for r in rows}
    ref = by_name.get(reference)
    if ref is None:
        return [f"(no finished {reference} row: the claim cannot be checked yet)"]
    out = []
    for r in rows:
        if r["family"] not in {"qiadapters", "mixture"}:
            continue
        ratio = ref["adapter_params"] / r["adapter_params"]
        rel = r["test_acc_mean"] / ref["test_acc_mean"]
        holds = ratio >= 40 and rel >= 0.99
        seeds = f" [{r['n_seeds']} seed{'s' if r['n_seeds'] > 1 else ''}]"
        size = (f"{ratio:.1f}x fewer" if ratio >= 1 else f"{1 / ratio:.1f}x more")
        out.append(f"{r['label']}{seeds}: {100 * rel:.1f}% of LoRA r=8's accuracy with "
                   f"{size} adapter parameters -> "
                   f"{'holds' if holds else 'does not hold'}"
                   f"{'' if ratio >= 40 else ' (fewer than 40x)'}"
                   f"{'' if rel >= 0.99 else ' (below 99%)'}")
    return out


#: Single-expert families a mixture is compared with, and the parameter slack of "equal".
SINGLE_FAMILIES = {"qiadapters", "physics"}
EQUAL_PARAMS = 1.10


def _mean_std(r: dict) -> str:
    """A row's test accuracy in %, "mean ± std" (the std left out for a single seed)."""
    std = "" if math.isnan(r["test_acc_std"]) else f" ± {100 * r['test_acc_std']:.2f}"
    return f"{100 * r['test_acc_mean']:.2f}{std}"


def _acc(r: dict) -> str:
    return f"{_mean_std(r)} ({r['adapter_params']:,d} params)"


def mixture_lines(rows: list[dict], methods) -> list[str]:
    """Does mixing beat the best single expert?  Each mixture row against (a) the rows
    that train its experts alone and (b) the best single-expert row (Hamming or physics) with
    at most ``EQUAL_PARAMS`` x the mixture's adapter parameters."""
    by_name = {r["method"]: r for r in rows}
    experts_of = {m.name: m.experts for m in methods}
    singles = [r for r in rows if r["family"] in SINGLE_FAMILIES]
    out = []
    for mix in (r for r in rows if r["family"] == "mixture"):
        parts = [by_name[e] for e in experts_of.get(mix["method"], ()) if e in by_name]
        budget = [r for r in singles if r["adapter_params"] <= EQUAL_PARAMS * mix["adapter_params"]]
        for what, pool in (("its experts alone", parts),
                           (f"the best single expert with <= {EQUAL_PARAMS:g}x its parameters",
                            budget)):
            if not pool:
                out.append(f"{mix['label']}: no finished row for {what}")
                continue
            best = max(pool, key=lambda r: r["test_acc_mean"])
            diff = 100 * (mix["test_acc_mean"] - best["test_acc_mean"])
            noise = 100 * max(0.0 if math.isnan(r["test_acc_std"]) else r["test_acc_std"]
                              for r in (mix, best))
            verdict = "beats" if diff > 0 else "does not beat"
            out.append(f"{mix['label']} {_acc(mix)} {verdict} {what}: best {best['label']} "
                       f"{_acc(best)}, difference {diff:+.2f} points"
                       f"{' (within one seed std)' if abs(diff) <= noise else ''}")
    return out


def markdown_table(rows: list[dict]) -> str:
    lines = ["| method | lr (chosen on val) | test acc % (mean ± std) | seeds | adapter params "
             "| head params | s/step (wall) | CPU s/step |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: r["adapter_params"]):
        cpu = "" if math.isnan(r["cpu_s_per_step"]) else f"{r['cpu_s_per_step']:.3f}"
        lines.append(f"| {r['label']} | {r['chosen_lr']:g} | {_mean_std(r)} | {r['n_seeds']} | "
                     f"{r['adapter_params']:,d} | {r['head_params']:,d} | "
                     f"{r['s_per_step']:.3f} | {cpu} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Test accuracy vs trainable adapter parameters (log x), error bars = std over seeds.
    Head-only has no adapter parameters: it is drawn as a horizontal line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.lines
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {"peft": "tab:blue", "qiadapters": "tab:red", "full": "black",
              "physics": "tab:green", "mixture": "tab:purple", "bottleneck": "tab:orange"}
    fig, ax = plt.subplots(figsize=(10, 6.5))
    for r in rows:
        y, err = 100 * r["test_acc_mean"], 100 * r["test_acc_std"]
        err = 0.0 if math.isnan(err) else err
        if r["adapter_params"] == 0:
            ax.axhline(y, color="gray", ls="--", lw=1)
            ax.text(1.02, y, f" {r['label']}", color="gray", va="bottom", fontsize=8,
                    transform=ax.get_yaxis_transform())
            continue
        color = colors.get(r["family"], "tab:orange")
        marker = "s" if r["family"] == "peft" else "o"
        ax.errorbar(r["adapter_params"], y, yerr=err, fmt=marker, color=color, capsize=3)
        # The short method name keeps neighbouring points readable; the table has the labels.
        ax.annotate(r["method"], (r["adapter_params"], y), textcoords="offset points",
                    xytext=(5, -3), fontsize=7, color=color)
    ref = next((r for r in rows if r["method"] == "lora-r8"), None)
    if ref is not None:
        # The paper's claim region: >= 40x fewer adapter parameters, >= 99% of LoRA r=8.
        x40, y99 = ref["adapter_params"] / 40, 99 * ref["test_acc_mean"]
        ax.axvline(x40, color="tab:red", ls=":", lw=1)
        ax.axhline(y99, color="tab:red", ls=":", lw=1)
        ax.text(0.01, 0.01, "dotted red: LoRA r=8's parameters / 40 and 99% of its accuracy "
                "(the paper's claim: a point left of and above both)",
                color="tab:red", fontsize=7, ha="left", va="bottom", transform=ax.transAxes)
    present = {r["family"] for r in rows if r["adapter_params"] > 0}
    handles = [matplotlib.lines.Line2D([], [], color=c, marker="s" if f == "peft" else "o",
                                       ls="", label=f) for f, c in colors.items() if f in present]
    ax.legend(handles=handles, loc="lower right", fontsize=8, title="family",
              title_fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10))
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("trainable adapter parameters (head excluded, log scale)")
    ax.set_ylabel("test accuracy % (mean ± std over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def report(runs_path: Path, csv_path: Path, png_path: Path, md_path: Path, methods, seeds,
           steps: int, batch_size: int, lrs_override=None, extend: int = 0) -> list[dict]:
    runs = load_runs(runs_path)
    rows = summarize(runs, methods, seeds, steps, batch_size, lrs_override, extend)
    write_csv(rows, csv_path)
    title = (f"all-MiniLM-L6-v2, WordNet noun glosses (26 classes): {steps} steps x batch "
             f"{batch_size}, lr chosen on validation")
    if rows:
        plot(rows, png_path, title)
    table = markdown_table(rows)
    sections = {"The paper's claim (>= 99% of LoRA r=8 with >= 40x fewer adapter parameters)":
                claim_lines(rows),
                "Mixtures against single experts": mixture_lines(rows, methods)}
    missing = [m.name for m in methods if m.name not in {r["method"] for r in rows}
               or next(r for r in rows if r["method"] == m.name)["n_seeds"] < len(seeds)]
    text = "".join(f"{head}:\n\n" + "".join(f"- {line}\n" for line in lines) + "\n"
                   for head, lines in sections.items() if lines)
    md_path.write_text(f"{title}\n\n{table}\n\n{text}"
                       f"incomplete or missing rows: {', '.join(missing) or 'none'}\n")
    print(f"\n{title}\n\n{table}\n\n{text}", end="")
    print(f"incomplete or missing rows: {', '.join(missing) or 'none'}")
    print(f"wrote {csv_path}, {png_path}, {md_path}")
    return rows


# -------------------------------------------------------------------------------------- CLI

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tradeoff", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"smoke check: methods {QUICK['methods']}, lrs {QUICK['lrs']}, seeds "
                        f"{QUICK['seeds']}, {QUICK['steps']} steps, scored on the first "
                        f"{QUICK['eval_examples']} val/test examples; writes to results/quick/")
    p.add_argument("--methods", nargs="+", metavar="NAME",
                   help=f"rows to train (default all, in this order): {list(METHODS)}")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="the first is the sweep seed; default 0 1 2")
    p.add_argument("--lrs", nargs="+", type=float, default=None,
                   help="override every method's lr grid")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 100)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup-frac", type=float, default=0.1)
    p.add_argument("--extend", type=int, default=None,
                   help=f"extend a grid whose best lr is its largest by x{EXTEND_FACTOR:g}, at "
                        f"most this many times (default {MAX_EXTEND}; 0 in --quick)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    p.add_argument("--deadline", default=None,
                   help="HH:MM local time; no new run starts after it")
    p.add_argument("--report-only", action="store_true",
                   help="only rebuild the csv / png / md from the recorded runs")
    p.add_argument("--list", action="store_true", help="print the method table and exit")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-probe", action="store_true",
                   help="skip the forgetting probe (benchmarks.forgetting) after each run")
    p.add_argument("--probe-n", type=int, default=None,
                   help="held-out verb synsets the probe uses (default 1000; 200 in --quick)")
    p.add_argument("--results", type=Path, default=None,
                   help=f"output folder (default {RESULTS}; results/quick/ with --quick)")
    return p.parse_args(argv)


def _deadline(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    hh, mm = (int(x) for x in text.split(":"))
    now = time.localtime()
    return time.mktime(now[:3] + (hh, mm, 0) + now[6:])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for m in METHODS.values():
            print(f"{m.name:24s} {m.family:11s} lrs {' '.join(f'{x:g}' for x in m.lrs):30s} "
                  f"{m.label}")
        return 0
    out = args.results or results_dir(args.quick)
    names = args.methods or (list(QUICK["methods"]) if args.quick else list(METHODS))
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        print(f"error: unknown methods {unknown}; valid: {list(METHODS)}", file=sys.stderr)
        return 2
    methods = [METHODS[n] for n in names]
    seeds = tuple(args.seeds or (QUICK["seeds"] if args.quick else (0, 1, 2)))
    steps = args.steps or (QUICK["steps"] if args.quick else 100)
    lrs = args.lrs or (QUICK["lrs"] if args.quick else None)
    extend = args.extend if args.extend is not None else (0 if args.quick else MAX_EXTEND)
    runs_path = out / "tradeoff_runs.jsonl"
    outputs = out / "tradeoff.csv", out / "tradeoff.png", out / "tradeoff_table.md"
    probe_n = None if args.no_probe else (
        args.probe_n or (forgetting.QUICK_PROBE_N if args.quick else forgetting.PROBE_N))

    if not args.report_only:
        from .data import (NUM_CLASSES, WordNetMissingError, ensure_wordnet, load_minilm,
                           load_wordnet_splits, tokenize_splits)
        try:
            ensure_wordnet(install=False)
        except WordNetMissingError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        if probe_n:
            try:
                forgetting.load_probe_pairs(probe_n)
            except (WordNetMissingError, ValueError) as err:
                print(f"error: --probe-n {probe_n}: {err} (--no-probe skips the probe)",
                      file=sys.stderr)
                return 1
        if args.threads:
            torch.set_num_threads(args.threads)
        splits = load_wordnet_splits(seed=0)
        _, tokenizer = load_minilm(NUM_CLASSES, seed=0)
        data = tokenize_splits(splits, tokenizer)
        if args.quick:
            k = QUICK["eval_examples"]
            for split in ("validation", "test"):
                data[split] = {name: t[:k] for name, t in data[split].items()}

        def load_model(seed):
            return load_minilm(NUM_CLASSES, seed=seed)[0]

        print(f"{len(methods)} methods, seeds {seeds}, {steps} steps x batch "
              f"{args.batch_size}, {torch.get_num_threads()} threads; runs -> {runs_path}",
              flush=True)
        run_all(methods, data, load_model, runs_path, seeds, steps, args.batch_size,
                args.warmup_frac, lrs, progress=not args.no_progress,
                deadline=_deadline(args.deadline), extend=extend, probe_n=probe_n)
    report(runs_path, *outputs, methods, seeds, steps, args.batch_size, lrs, extend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
