"""The op-count benchmark's counting: the methods and target sets, the routes chosen as on
another device type, and the ATen ops of one training step per method
(:mod:`benchmarks.op_count.run` says what is counted and why)."""
from __future__ import annotations

import contextlib
import importlib
from types import SimpleNamespace

import torch

from qiadapters.op_count import count_train_step

from ..common.architecture import minilm_architecture
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
