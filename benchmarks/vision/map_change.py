r"""How far each method moves the ViT's adapted maps in the suite's 60 steps.

For every row, one run is retrained (the task's chosen lr in ``vision.csv``, seed 0, the
suite's protocol) and each adapted query / value map is read off the trained layer as
``W_eff = (f(I) - f(0))^T`` (``f`` the layer with its adapter, ``I`` the identity: exact
for any adapter whose layer is affine in its input, merged or not).  Against the pretrained
``W0`` of the same layer it reports, averaged over the twelve maps,

* ``rel_change``: ``||W_eff - W0||_F / ||W0||_F`` (0: untouched; a rotation of ``W0`` alone
  is at most 2),
* ``top_sv``: the largest singular value of ``W_eff - W0`` over ``||W0||_F``,
* ``eff_rank``: ``exp(H(p))``, ``p`` the normalised singular values of ``W_eff - W0``.

The accuracy of the retrained run is printed beside them (it equals the committed seed-0 run
when the machine's arithmetic is the same).  Results: ``vision_map_change.{json,md}``.

    python -m benchmarks.vision.map_change                      # mnist, the default rows
    python -m benchmarks.vision.map_change --task rotation --methods vision-oft
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import torch
from torch import nn

from ..common import cli
from ..common.constants import RESULTS

#: The rows the docs compare: the sparse additive leader, ours, and the references.
ROWS = ("vision-waveft-n40", "vision-shira-r1", "vision-hamming-12-bs32-scale",
        "vision-hamming-12-bs32-scale-at-3lr", "vision-lora-r1", "vision-oft")
#: The adapted maps (the suite's targets).
TARGETS = ("q_proj", "v_proj")


def adapted_maps(model: nn.Module, targets=TARGETS) -> dict[str, torch.Tensor]:
    """``{path: W_eff}`` for every module of ``model`` whose path ends with one of
    ``targets`` (the outermost such module: an adapter's wrapper, not the base layer inside
    it), keyed by the path from ``layers.`` on so that a base model and its adapted copy
    share keys.  ``W_eff``: ``(out, in)``."""
    out = {}
    for name, module in model.named_modules():
        if not name.endswith(targets) or ".base_layer" in name:
            continue
        key = name[name.index("layers."):] if "layers." in name else name
        if key in out:
            continue
        d_in = _in_features(module)
        with torch.no_grad():
            eye = torch.eye(d_in)
            out[key] = (module(eye) - module(torch.zeros(1, d_in))).T.clone()
    return out


def _in_features(module: nn.Module) -> int:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
    raise ValueError(f"no nn.Linear inside {type(module).__name__}")


def change(w0: torch.Tensor, w: torch.Tensor) -> dict:
    """``rel_change``, ``top_sv`` and ``eff_rank`` of ``w - w0`` (module docstring)."""
    d = (w - w0).double()
    s = torch.linalg.svdvals(d)
    norm0 = w0.double().norm()
    if s.sum() == 0:
        return {"rel_change": 0.0, "top_sv": 0.0, "eff_rank": 0.0}
    p = s[s > 0] / s.sum()
    return {"rel_change": float(d.norm() / norm0), "top_sv": float(s[0] / norm0),
            "eff_rank": float((-(p * p.log()).sum()).exp())}


def chosen_lr(rows: list[dict], method: str, task: str) -> float:
    """The lr ``vision.csv`` chose for ``method`` on ``task``."""
    for r in rows:
        if r["method"] == method and r["task"] == task:
            return float(r["lr"])
    raise KeyError(f"{method} on {task} is not in vision.csv: run the suite for it first")


def measure(method_name: str, task: str, lr: float, splits: dict, classes: int,
            base: dict[str, torch.Tensor]) -> dict:
    """Retrain ``method_name`` on ``task`` (its ``splits`` and number of ``classes``, as
    :func:`benchmarks.vision.data.load_task` gives them) at ``lr``, seed 0, and measure its
    maps against ``base`` (:func:`adapted_maps` of the pretrained backbone)."""
    from ..common.runs import train_one
    from .methods import METHODS
    from .model import load_backbone
    from .worker import BATCH_SIZE, STEPS, WARMUP_FRAC, _capture

    holder: dict = {}
    run = train_one(_capture(METHODS[method_name], holder), lr, 0, ("validation", "test"),
                    splits, lambda s: load_backbone(classes, seed=s), STEPS, BATCH_SIZE,
                    WARMUP_FRAC, progress=False)
    trained = adapted_maps(holder["model"])
    if set(trained) != set(base):
        raise RuntimeError(f"{method_name}: adapted maps {sorted(trained)} do not match the "
                           f"backbone's {sorted(base)}")
    per_map = [change(base[k], trained[k]) for k in sorted(base)]
    mean = {k: sum(m[k] for m in per_map) / len(per_map) for k in per_map[0]}
    return {"method": method_name, "task": task, "lr": lr, "seed": 0,
            "val_accuracy": run["val_accuracy"], "test_accuracy": run["test_accuracy"],
            "max_rel_change": max(m["rel_change"] for m in per_map), **mean}


def markdown(records: list[dict], command: str) -> str:
    lines = ["# How far each method moves the ViT's q/v maps\n",
             f"`{command}` (seed 0, the task's chosen lr; mean over the twelve maps)\n",
             "`dW = W_eff - W0`; norms are Frobenius norms.\n",
             "| method | task | lr | test % | norm of dW / norm of W0 (max) "
             "| top singular value of dW / norm of W0 | eff. rank of dW |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['method']} | {r['task']} | {r['lr']:g} | "
                     f"{100 * r['test_accuracy']:.1f} | {r['rel_change']:.2f} "
                     f"({r['max_rel_change']:.2f}) | {r['top_sv']:.2f} | {r['eff_rank']:.1f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = cli.parser(__doc__, prog="python -m benchmarks.vision.map_change")
    p.add_argument("--task", default="mnist")
    p.add_argument("--methods", nargs="+", default=list(ROWS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", type=Path, default=RESULTS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with open(args.results / "vision.csv") as f:
        rows = list(csv.DictReader(f))
    from .data import load_task
    from .model import load_backbone

    splits, classes = load_task(args.task, n_test=1000)
    base = adapted_maps(load_backbone(classes, seed=0))
    records = []
    for name in args.methods:
        record = measure(name, args.task, chosen_lr(rows, name, args.task), splits, classes,
                         base)
        print(f"{name}: test {100 * record['test_accuracy']:.1f}, ||dW||/||W0|| "
              f"{record['rel_change']:.2f}, eff. rank {record['eff_rank']:.1f}", flush=True)
        records.append(record)
    command = "python -m benchmarks.vision.map_change " + " ".join(argv or sys.argv[1:])
    (args.results / "vision_map_change.json").write_text(json.dumps(records, indent=1) + "\n")
    (args.results / "vision_map_change.md").write_text(markdown(records, command.strip()))
    print(f"wrote {args.results / 'vision_map_change.json'}, vision_map_change.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
