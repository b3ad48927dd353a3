"""The trade-off benchmark's outputs: ``tradeoff.csv``, the markdown table, the paper's claim
checked row by row, mixtures against single experts, and :func:`report` (all of them, from
the recorded runs)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from ..common.plotting import plot
from ..common.summary import summarize
from ..common.sweep import load_runs


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
    has_reference = any(m.name == "lora-r8" for m in methods)  # what the claim compares to
    sections = {"The paper's claim (>= 99% of LoRA r=8 with >= 40x fewer adapter parameters)":
                claim_lines(rows) if has_reference else [],
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
