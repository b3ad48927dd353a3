"""One row of the fold-route benchmark, measured in the process that runs it: peak memory
growth and CPU time of MiniLM training steps (:mod:`benchmarks.fold_route.run` says more)."""
from __future__ import annotations

import os
import time


#: (registry method, route): the route is set with qiadapters.adapters.hamming.set_route
ROWS = [("lora-r8", None), ("hamming-12-bs32", "activation"), ("hamming-12-bs32", "fold"),
        ("hamming-12-bs128", "activation"), ("hamming-12-bs128", "fold")]
TARGETS = {"all-linear": "all-linear", "query,value": "query,value"}
COLUMNS = ["method", "route", "targets", "batch", "seq", "threads", "peak_growth_mib",
           "growth_vs_lora", "cpu_ms_per_step", "cpu_vs_lora", "wall_ms_per_step",
           "trainable", "load_average"]


def worker(method: str, route: str | None, targets: str, batch: int, seq: int,
           steps: int, threads: int) -> dict:
    """One row, in this process (run by :func:`main` in a fresh one)."""
    import torch

    from ..common.data import load_minilm
    from ..speed.memory import peak_growth_kib
    from ..speed.minilm import attach, minilm_batch, train_step_fn, trainable_count

    torch.set_num_threads(threads)
    model, _ = load_minilm(num_labels=26)
    model, _ = attach(method, model, targets if targets == "all-linear" else targets.split(","))
    if route is not None:
        from qiadapters.adapters.hamming import set_route

        set_route(model, route)
    step = train_step_fn(model, minilm_batch(batch, seq))
    baseline, peak, _ = peak_growth_kib(step, 2)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        step()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"method": method, "route": route or "", "targets": targets, "batch": batch,
            "seq": seq, "threads": threads, "peak_growth_mib": round((peak - baseline) / 1024, 1),
            "cpu_ms_per_step": round(1e3 * cpu / steps, 1),
            "wall_ms_per_step": round(1e3 * wall / steps, 1),
            "trainable": trainable_count(model), "load_average": round(os.getloadavg()[0], 2)}
