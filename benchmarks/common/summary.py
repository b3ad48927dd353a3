"""A benchmark's runs summarised per method: the chosen lr and test mean / std over seeds."""
from __future__ import annotations

import json
import statistics

from .methods import Method
from .sweep import choose_lr, record_key, run_key, sweep_grid


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


def parse_sweep(text: str) -> dict[float, float]:
    """``{lr: validation accuracy %}`` from a row's ``val_acc_sweep`` field (``"0.02:61.45
    0.05:66.10 ..."``, as :func:`summarize` writes it)."""
    return {float(lr): float(acc) for lr, acc in (item.split(":") for item in text.split())}


def _median_or_nan(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def _mean_or_nan(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else float("nan")
