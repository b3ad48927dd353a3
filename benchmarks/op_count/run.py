"""Kernel launches per training step, counted as the ATen ops it dispatches (no timing).

On a GPU a small step is bound by kernel launches, not arithmetic, and launches can be
counted on a CPU, exactly: :class:`qiadapters.op_count.OpCounter` records every ATen op of one
step (forward, backward, ``torch.optim.AdamW(foreach=True)``: the multi-tensor AdamW PyTorch
picks on CUDA), leaving out views, metadata queries, bare allocations and the optimizer's
host-side step counters (its docstring says which ops and why). Every op counted is at least
one kernel launch.

MiniLM's architecture (all-MiniLM-L6-v2's BERT config, random weights: the op count does
not depend on them), train mode with dropout off (:data:`DROPOUT`), one sequence of 32
tokens, 26 labels; each registry method (:mod:`benchmarks.common.registry`) on every linear layer
below the head (peft's ``"all-linear"``: the encoder's 36 and the pooler's) and on
``query``/``value``; the head (``classifier``) is trained by every method, and ``head``
trains it alone. The Hamming adapters choose their routes as on CUDA (:func:`routes_as`).
The second step is counted (the first creates the optimizer's state). What to read is the
ops each method adds over the head-only step. Rows named ``...+fold`` run the Hamming layers
by the fold route (:mod:`qiadapters.adapters.hamming.fold_route`: each layer's adapted
weight folded for all layers of a shape at once, then one linear per layer).

    python -m benchmarks.op_count                          # results/op_count.csv, .json, .png
    python -m benchmarks.op_count --layers 2 --out /tmp/ops  # the counts tests/test_op_count.py pins
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
from types import SimpleNamespace

import torch

from qiadapters.op_count import count_train_step

from ..common.constants import RESULTS
from ..common.reporting import write_csv
from ..mixed_batch import minilm_architecture
from ..speed.minilm import attach, minilm_batch, trainable_count

#: (registry name, the targets it runs on: None = both target sets)
#: ``hamming-12-bs128`` is the library's default layout on MiniLM (3 blocks of 128 on the
#: 384-wide layers, 12 on the 1536-wide FFN); ``hamming-12-b3`` is 3 blocks on every layer.
METHODS = [("head", None), ("lora-r8", None), ("oft", None), ("hamming-12-bs128", None),
           ("hamming-12-b3", None), ("hamming-12-bs32", None), ("hamming-12-bs64", None),
           ("physics-qv-r4", ("query", "value"))]
#: The Hamming rows again with the fold route (``name + FOLD``: the registry method, then
#: :func:`qiadapters.adapters.hamming.set_route` ``(model, "fold")``): the default layout
#: and blocks of 32.
FOLD = "+fold"
FOLD_METHODS = [("hamming-12-bs128" + FOLD, None), ("hamming-12-bs32" + FOLD, None)]
#: Not a method: the targets' own weights trained (full fine-tuning of those layers, biases
#: frozen), the least any method that gives each adapted layer a weight-sized gradient can
#: dispatch: the backward through the encoder from the first target on and one ``mm`` per
#: target (every row pays the first part; the head-only step runs no backward below the head).
FULL = "targets-full-ft"
TARGET_SETS = {"all-linear": "all-linear", "query,value": ("query", "value")}
REFERENCE = "lora-r8"
NUM_LABELS, TOKENS = 26, 32
#: Dropout off: with dropout the CPU's scaled-dot-product attention falls back to its math
#: path (``bmm``, softmax, dropout as ``bernoulli_``/``div_``/``mul``, each way) where CUDA
#: runs one fused kernel each way; without it the CPU runs its fused attention too (one op
#: each way), so the base model dispatches CUDA's ops.  On CUDA, dropout adds one
#: ``native_dropout`` per dropout site and per site back-propagated through, the same for
#: every method that adapts the first layer.
DROPOUT = 0.0


class _SeenOn:
    """What :func:`~qiadapters.circuits.compound.pair_route` reads of a tensor, with another
    device type."""

    def __init__(self, tensor: torch.Tensor, device_type: str):
        self.shape, self.device = tensor.shape, SimpleNamespace(type=device_type)
        self.numel, self.element_size = tensor.numel, tensor.element_size


@contextlib.contextmanager
def routes_as(device_type: str):
    """Inside, the Hamming adapters choose their routes as they would on ``device_type``
    (``"cuda"``): the two choices the library makes by device type -- how an order-2
    compound is built (:func:`~qiadapters.circuits.compound.pair_route`) and the route cost
    model's constants (:func:`~qiadapters.circuits.route_cost.costs_for`) -- are asked for
    that device type; the ops then run on the CPU tensors as usual."""
    compound = importlib.import_module("qiadapters.circuits.compound")  # the package
    route_cost = importlib.import_module("qiadapters.circuits.route_cost")  # exports compound()
    pair_route, costs_for = compound.pair_route, route_cost.costs_for
    compound.pair_route = lambda U: pair_route(_SeenOn(U, device_type))
    route_cost.costs_for = lambda _: costs_for(device_type)
    try:
        yield
    finally:
        compound.pair_route, route_cost.costs_for = pair_route, costs_for


def count_method(name: str, targets, layers: int = 6, tokens: int = TOKENS,
                 routes: str = "cuda") -> dict:
    """One row: the counted ops of a step of registry method ``name`` on ``targets``, the
    adapters' routes chosen as on ``routes`` (:func:`routes_as`)."""
    base = minilm_architecture(num_labels=NUM_LABELS, layers=layers, dropout=DROPOUT)
    entry = name[: -len(FOLD)] if name.endswith(FOLD) else name
    if name == FULL:
        model, record = attach("head", base, None)
        for module_name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and _targeted(module_name, targets):
                module.weight.requires_grad_(True)
        adapted = sum(1 for n, m in model.named_modules()
                      if isinstance(m, torch.nn.Linear) and _targeted(n, targets))
    else:
        model, record = attach(entry, base, None if name == "head" else targets)
        adapted = None
    if name.endswith(FOLD):
        from qiadapters.adapters.hamming import set_route

        set_route(model, "fold")
    model.train()
    if adapted is None:
        adapted = sum(1 for m in model.modules() if _is_adapted(m))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            foreach=True)
    with routes_as(routes):
        counter = count_train_step(model, minilm_batch(1, tokens, NUM_LABELS), opt)
    phases = counter.by_phase()
    return {"method": name, "ops": counter.total,
            "forward": phases.get("forward", 0), "backward": phases.get("backward", 0),
            "optimizer": phases.get("optimizer", 0), "adapted_layers": adapted,
            "trainable": trainable_count(model), "config": record, "routes": routes,
            "host_ops": sum(counter.host.values()),
            "by_op": dict(sorted(counter.by_op().items()))}


def _targeted(name: str, targets) -> bool:
    """Whether the linear layer ``name`` is a target: ``"all-linear"`` is every one below the
    head (peft's rule: not the classifier), else those whose last name is listed."""
    if name.split(".")[-1] == "classifier" or "modules_to_save" in name:
        return False
    return targets == "all-linear" or name.split(".")[-1] in tuple(targets)


def _is_adapted(module) -> bool:
    """A layer that holds an adapter: ours (``AdapterLayer``) or peft's tuner layers; the
    trained head's copy (``ModulesToSave``) is not one."""
    from qiadapters.adapters.layer import AdapterLayer
    from qiadapters.model.modules_to_save import ModulesToSave
    if isinstance(module, AdapterLayer):
        return not isinstance(module, ModulesToSave)
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return False
    return isinstance(module, BaseTunerLayer)


def count_all(layers: int = 6, tokens: int = TOKENS,
              methods=METHODS + FOLD_METHODS + [(FULL, None)],
              target_sets=TARGET_SETS, cpu_routes: bool = True) -> list[dict]:
    """Every method on every target set (head-only once, the baseline of both), with the ops
    added over head-only and the ratio of those to :data:`REFERENCE`'s; with ``cpu_routes``
    also the ops of the Hamming methods with the CPU's routes (``ops_cpu_routes``)."""
    head = count_method("head", None, layers, tokens)
    rows = []
    for label, targets in target_sets.items():
        block = []
        for name, only in methods:
            if only is not None and tuple(only) != tuple(targets):
                continue
            row = dict(head) if name == "head" else count_method(name, targets, layers, tokens)
            # only the Hamming adapters choose routes by device type
            if cpu_routes:
                row["ops_cpu_routes"] = row["ops"] if not name.startswith("hamming") else \
                    count_method(name, targets, layers, tokens, routes="cpu")["ops"]
            row["targets"] = label
            row["added"] = row["ops"] - head["ops"]
            block.append(row)
        ref = next(r["added"] for r in block if r["method"] == REFERENCE)
        for row in block:
            row["ratio_to_lora"] = round(row["added"] / ref, 3) if ref else None
        rows += block
    return rows


COLUMNS = ["method", "targets", "ops", "added", "ratio_to_lora", "forward", "backward",
           "optimizer", "ops_cpu_routes", "adapted_layers", "trainable", "host_ops"]


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(dict.fromkeys(r["targets"] for r in rows))
    fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets):
        block = [r for r in rows if r["targets"] == target and r["method"] != "head"]
        names = [r["method"] for r in block]
        bottom = [0] * len(block)
        for phase in ("forward", "backward", "optimizer"):
            head = next(r[phase] for r in rows if r["method"] == "head")
            values = [r[phase] - head for r in block]
            ax.bar(names, values, bottom=bottom, label=phase)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylim(top=1.12 * max(r["added"] for r in block))
        for i, r in enumerate(block):
            ax.text(i, r["added"], str(r["added"]), ha="center", va="bottom", fontsize=8)
        ax.set_title(f"{target}: ATen ops added over head-only")
        ax.set_ylabel("ops per training step (≈ kernel launches)")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=8)
    fig.suptitle("MiniLM architecture, 1 x 32 tokens, AdamW foreach (fewer is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=6, help="encoder layers (MiniLM: 6)")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the result files")
    args = parser.parse_args(argv)
    rows = count_all(layers=args.layers)
    print(f"{'method':22s} {'targets':12s} {'ops':>6s} {'added':>6s} {'x LoRA':>7s} "
          f"{'fwd':>5s} {'bwd':>5s} {'opt':>4s}")
    for r in rows:
        print(f"{r['method']:22s} {r['targets']:12s} {r['ops']:6d} {r['added']:6d} "
              f"{r['ratio_to_lora'] if r['ratio_to_lora'] is not None else '':>7} "
              f"{r['forward']:5d} {r['backward']:5d} {r['optimizer']:4d}")
    from pathlib import Path
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "op_count.csv", rows, COLUMNS, ignore_extra=True)
    meta = {"model": "all-MiniLM-L6-v2 architecture, random init, train mode, dropout off",
            "routes": "the Hamming adapters' device-type choices made as on CUDA "
                      "(benchmarks.op_count.routes_as); ops_cpu_routes: as on the CPU",
            "layers": args.layers, "batch": 1, "tokens": TOKENS, "num_labels": NUM_LABELS,
            "optimizer": "torch.optim.AdamW(foreach=True)", "torch": torch.__version__,
            "counted": "second step; qiadapters.op_count.OpCounter (views, metadata, "
                       "allocations and host-side step-counter ops left out)"}
    (out / "op_count.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    plot(rows, out / "op_count.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
