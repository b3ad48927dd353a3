"""What each of the step's speed-ups gives: the same Hamming model timed with them on and off.

    python -m benchmarks.speed.ablation --threads 2            # the committed run (~6 min)
    python -m benchmarks.speed.ablation --cases "query,value 8x32" --rounds 5
    python -m benchmarks.speed.ablation --device cuda          # on a GPU (results/cuda/)

Per case of the speed targets (:data:`benchmarks.speed.minilm.CASES`), one model per method
(``hamming-12-b3`` on query/value, ``hamming-12-bs128`` -- the default layout since 0.3.0 --
on all-linear), timed interleaved with peft LoRA r=8 and OFT in four variants:

* ``all``: as the library runs (batched block building, whole blocks where chosen);
* ``no batching``: every layer builds its own blocks (:mod:`qiadapters.adapters.hamming.batched`
  switched off);
* ``no whole blocks``: the orders applied one by one (:func:`qiadapters.circuits.route_cost.use_whole`
  switched off);
* ``neither``.

The output side's ``f(x) D + (b - b D)`` (one autograd node keeping its output), the second
compound's routes and the assembly as one node are in every variant (they have no switch).  Writes ``speed_ablation.csv``
(median ms, paired ratios vs LoRA and OFT) and ``speed_ablation.png`` (the ratios vs LoRA,
bars per case) to ``benchmarks/results/`` (``--out``); ``--plot`` redraws the figure from an
existing CSV.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import statistics
from pathlib import Path

import torch

from qiadapters.adapters.hamming import batched
from qiadapters.circuits import operands

from ..common.data import load_minilm
from .minilm import CASES, attach, case_name, minilm_batch, train_step_fn
from ..common.constants import RESULTS
from ..common.reporting import write_csv
from ..common.timing import interleaved

VARIANTS = {"all": (True, True), "no batching": (False, True),
            "no whole blocks": (True, False), "neither": (False, False)}


@contextlib.contextmanager
def switched(batching: bool, whole: bool):
    """Batched building and the whole-block route on or off, restored on exit."""
    saved = batched.may_batch, operands.use_whole
    if not batching:
        batched.may_batch = lambda: False
    if not whole:  # plan_route, the one place the route is chosen, reads operands.use_whole
        operands.use_whole = lambda block_size, sizes: False
    try:
        yield
    finally:
        batched.may_batch, operands.use_whole = saved


def _variant(step, batching: bool, whole: bool):
    def run():
        with switched(batching, whole):
            step()
    return run


def run_case(base, targets, batch: int, seq: int, rounds: int,
             device: str = "cpu") -> list[dict]:
    ours = "hamming-12-bs128" if targets == "all-linear" else "hamming-12-b3"
    data = minilm_batch(batch, seq)
    fns = {}
    for name in (ours, "lora-r8", "oft"):
        model, _ = attach(name, copy.deepcopy(base), targets)
        step = train_step_fn(model, data, device=device)  # on CUDA each step synchronizes
        if name == ours:
            fns.update({f"{ours} ({v})": _variant(step, *flags) for v, flags in VARIANTS.items()})
        else:
            fns[name] = step
    t = interleaved(fns, reps=rounds, warmup=2, alternate=True,
                    desc=case_name(targets, batch, seq))
    return [{"case": case_name(targets, batch, seq), "method": k,
             "median_ms": round(statistics.median(t.wall[k]) * 1e3, 2),
             "ratio_vs_lora": round(t.paired_ratio(k, "lora-r8"), 4),
             "ratio_vs_oft": round(t.paired_ratio(k, "oft"), 4),
             "rounds": len(t.wall[k]), "threads": t.threads, "device": device} for k in fns]


def plot(rows: list[dict], path: Path) -> None:
    """Step time vs LoRA r=8 per case: one bar per variant and OFT, the 1.05x target dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r["case"] for r in rows))
    labels = [f"Hamming ({v})" for v in VARIANTS] + ["peft OFT"]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        want = "oft" if label == "peft OFT" else f"({label[9:-1]})"
        values = [float(next(r["ratio_vs_lora"] for r in rows if r["case"] == c
                             and (r["method"] == want or r["method"].endswith(want))))
                  for c in cases]
        ax.bar([i + (j - (len(labels) - 1) / 2) * width for i in range(len(cases))], values,
               width, label=label)
    ax.axhline(1.05, color="k", ls="--", lw=1, label="target: 1.05x LoRA")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(cases)), cases)
    ax.set_ylabel("training step / peft LoRA r=8 (paired)")
    ax.set_ylim(0.9, max(float(r["ratio_vs_lora"]) for r in rows) * 1.05)
    ax.legend(fontsize=8, ncol=2)
    where = ("CUDA" if rows[0].get("device") == "cuda" else f"CPU, {rows[0]['threads']} threads")
    ax.set_title(f"MiniLM training step, {where}, {rows[0]['rounds']} interleaved rounds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cases", default=None,
                    help='";"-separated case names, e.g. "query,value 8x32;all-linear 8x32"')
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default benchmarks/results, its cuda/ on a GPU)")
    ap.add_argument("--plot", action="store_true",
                    help="only redraw speed_ablation.png from the CSV in --out")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available on this machine")
    args.out = args.out or (RESULTS / "cuda" if args.device == "cuda" else RESULTS)
    if args.plot:
        with (args.out / "speed_ablation.csv").open() as f:
            plot(list(csv.DictReader(f)), args.out / "speed_ablation.png")
        return
    torch.set_num_threads(args.threads)
    wanted = None if args.cases is None else set(args.cases.split(";"))
    base = load_minilm(num_labels=26)[0]
    rows = []
    for targets, batch, seq in CASES:
        if wanted is None or case_name(targets, batch, seq) in wanted:
            rows += run_case(base, targets, batch, seq, args.rounds, args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "speed_ablation.csv"
    write_csv(path, rows)
    plot(rows, args.out / "speed_ablation.png")
    for r in rows:
        print(f"{r['case']:18s} {r['method']:36s} {r['median_ms']:9.1f} ms  "
              f"vs LoRA {r['ratio_vs_lora']:.3f}  vs OFT {r['ratio_vs_oft']:.3f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
