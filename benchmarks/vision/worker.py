"""The vision benchmark's worker: the runs one process trains, and what picks them.

:func:`run_worker` trains every missing run of its share of the (task, method) pairs
(:func:`pairs`), each as :func:`benchmarks.common.runs.train_one` on the shared sweep's plan
(:func:`benchmarks.common.sweep.plan`), appending one JSON line per run; :func:`on_grid` and
:func:`on_backbone` put a row and the recorded runs on a backbone's patch grid, and
:func:`steps_for` turns epochs into optimiser steps.  :mod:`benchmarks.vision.run` is the
command that starts the workers.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..common.runs import train_one
from ..common.sweep import append_run, plan
from .data import load_task
from .methods import DEFAULTS, Method
from .model import get_backbone
from .tables import load_all_runs

#: The protocol of every row (``experiments/default_training_params.json``).
STEPS, BATCH_SIZE = DEFAULTS["steps"], DEFAULTS["batch_size"]
WARMUP_FRAC, SEEDS = DEFAULTS["warmup_frac"], tuple(DEFAULTS["seeds"])


def _capture(method: Method, holder: dict) -> Method:
    """``method`` whose build also keeps the built model in ``holder["model"]``."""
    def build(model):
        built = method.build(model)
        holder["model"] = built[0]
        return built
    return dataclasses.replace(method, build=build)


def on_grid(method: Method, grid) -> Method:
    """``method`` with its registry config's ``grid`` (physics and mixture rows) set to
    ``grid``; any other row unchanged."""
    from ..common import registry

    entry = registry.get(method.name)
    if "grid" not in entry.config:
        return method
    entry = dataclasses.replace(entry, config={**entry.config, "grid": list(grid)})
    return dataclasses.replace(method, build=entry.build)


def steps_for(epochs: float, batch_size: int, n_train: int = 800) -> int:
    """Optimiser steps of ``epochs`` passes over ``n_train`` images at ``batch_size``."""
    if not epochs > 0:
        raise ValueError(f"epochs={epochs!r} is not valid; valid: epochs > 0")
    return max(1, int(round(epochs * n_train / batch_size)))


def on_backbone(runs: list[dict], task: str, grid) -> list[dict]:
    """The runs of ``task`` on the backbone with ``grid`` (records without a ``grid`` field
    predate the 14x14 backbone: 7x7)."""
    return [r for r in runs if r.get("task") == task
            and tuple(r.get("grid", (7, 7))) == tuple(grid)]


def pairs(tasks, methods, worker: int = 0, workers: int = 1) -> list[tuple[str, Method]]:
    """The (task, method) pairs of one worker: enumerated method by method, dealt in turn."""
    every = [(task, method) for method in methods for task in tasks]
    return every[worker::workers]


def run_worker(tasks, methods, out: Path, seeds, steps: int, batch_size: int, n_test: int,
               extend: int, worker: int = 0, workers: int = 1, backbone: str = "7x7",
               monitor_every: int | None = None) -> int:
    """Train every missing run of this worker's pairs; one JSON line per run."""
    from tqdm.auto import tqdm

    from ..common.routing import router_weights
    from .model import load_backbone
    from .priors_log import prior_state, router_monitor

    spec = get_backbone(backbone)
    methods = [on_grid(m, spec.grid) for m in methods]

    runs_path = out / f"vision_runs.w{worker}.jsonl"
    mine = pairs(tasks, methods, worker, workers)
    data, trained = {}, 0
    for task, method in tqdm(mine, desc=f"worker {worker}/{workers} (task, method) pairs",
                             position=worker, dynamic_ncols=True):
        if task not in data:
            data[task] = load_task(task, n_test=n_test)
        splits, classes = data[task]
        while True:
            done = on_backbone(load_all_runs(out), task, spec.grid)
            nxt = plan(done, method, method.lrs, seeds, steps, batch_size, extend)
            if nxt is None:
                break
            lr, seed, scored = nxt
            holder: dict = {}
            probe = {"pixel_values": splits["validation"]["pixel_values"][:64]}
            try:
                run = train_one(_capture(method, holder), lr, seed, scored, splits,
                                lambda s: load_backbone(classes, seed=s, backbone=backbone),
                                steps, batch_size, WARMUP_FRAC, progress=False,
                                monitor_for=lambda m: router_monitor(m, probe),
                                monitor_every=monitor_every)
            except Exception as err:
                print(f"FAILED {task} {method.name} lr={lr:g} seed={seed}: "
                      f"{type(err).__name__}: {err}", flush=True)
                break
            run.update(task=task, classes=classes, n_test=len(splits["test"]["labels"]),
                       router=router_weights(holder["model"], probe), grid=list(spec.grid),
                       backbone=backbone)
            priors = prior_state(holder["model"], probe)
            if priors:
                run["priors"] = priors
            append_run(runs_path, run)
            trained += 1
            accs = " ".join(f"{k[:4]} {100 * run[k]:.1f}" for k in ("val_accuracy",
                                                                     "test_accuracy")
                            if run[k] is not None)
            tqdm.write(f"done {task} {method.name} lr={lr:g} seed={seed}: {accs}; "
                       f"{run['median_seconds_per_step']:.3f} s/step, "
                       f"{run['train_seconds']:.0f}s")
    return trained
