"""One training run of a sweep and the loop over a benchmark's missing runs.

:func:`train_one` builds a method on a fresh model, trains it with
:func:`benchmarks.common.training.train`, scores it on the requested splits and returns one
JSON-able record; :func:`run_all` trains every run the sweep protocol
(:mod:`benchmarks.common.sweep`) still misses, appending each record to a JSONL file.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from . import forgetting
from .methods import Method, family_available
from .registry import head_parameters
from .sweep import append_run, load_runs, plan


def train_one(method: Method, lr: float, seed: int, splits_to_score, data: dict,
              load_model: Callable[[int], nn.Module], steps: int, batch_size: int,
              warmup_frac: float, progress: bool = True,
              probe_n: Optional[int] = None, monitor_for: Optional[Callable] = None,
              monitor_every: Optional[int] = None) -> dict:
    """Build ``method`` on a fresh model (head seeded by ``seed``), train, score; one record.

    ``monitor_for(model)``: None, or a ``monitor(step) -> dict`` for the built model, called
    during training (:func:`benchmarks.common.training.train`, every ``monitor_every`` steps);
    its dicts go into the record as ``history`` (left out when there are none).

    ``probe_n``: also run the forgetting probe on that many held-out synsets
    (:func:`benchmarks.common.forgetting.probe`, its fields added to the record); None: no probe. A
    probe that fails records ``probe_error`` instead, so the training run is kept."""
    from .training import count_trainable, evaluate, train

    model, aux_loss_fn, record = method.build(load_model(seed))
    trainable = count_trainable(model)
    head = head_parameters(model)
    desc = f"{method.name} lr={lr:g} seed={seed}"
    monitor = None if monitor_for is None else monitor_for(model)
    cpu0 = time.process_time()
    metrics = train(model, data["train"], None, steps=steps, batch_size=batch_size, lr=lr,
                    warmup_frac=warmup_frac, seed=seed, aux_loss_fn=aux_loss_fn,
                    progress=progress, desc=desc, adapter_lr_scale=method.adapter_lr_scale,
                    scale_lr_scale=method.scale_lr_scale,
                    monitor=monitor, monitor_every=monitor_every)
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
        **({"scale_lr_scale": method.scale_lr_scale}
           if method.scale_lr_scale is not None else {}),
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
        **({"history": metrics["history"]} if metrics["history"] else {}),
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
