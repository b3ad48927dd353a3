"""Where a MiniLM training step goes: torch.profiler self time split by what it computes.

    python -m benchmarks.speed.breakdown --targets query,value --batch 8 --seq 32
    python -m benchmarks.speed.breakdown --targets all-linear --batch 8 --seq 32

Forward ops are assigned to the innermost of these ranges (record_function, added around
the library's functions for the profile only): ``build Q`` (the weight-1 blocks: Cayley
solve, matrix exponential), ``build blocks`` (the compounds and the whole blocks' assembly;
the batched build of all layers), ``apply`` (an order's or a whole block's product, either
route), ``adapter glue`` (the rest of the output-side rotation and of ``apply_blocks``:
casts, bias, the pieces' split and concatenation; an input-side adapter's casts count as
base), and ``base model`` (everything outside).  A backward op is
assigned to the category of the forward op it differentiates (autograd sequence numbers), and
the optimizer step and ``zero_grad`` to ``optimizer``.  Self CPU time, so nothing is counted
twice; one thread (``--threads``) unless given.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from .minilm import attach, minilm_batch, train_step_fn

BACKWARD = "autograd::engine::evaluate_function:"


def _ranged(owner, attr: str, label: str, stack: contextlib.ExitStack) -> None:
    """Wrap ``owner.attr`` in ``record_function(label)`` until ``stack`` closes."""
    original = getattr(owner, attr)

    def wrapped(*args, **kwargs):
        with record_function(label):
            return original(*args, **kwargs)

    setattr(owner, attr, wrapped)
    stack.callback(setattr, owner, attr, original)


@contextlib.contextmanager
def labelled():
    """The library's functions wrapped in the ranges the breakdown reads."""
    from qiadapters.adapters.hamming import batched, layer, parametrizations
    from qiadapters.circuits import about_point, apply, operands

    with contextlib.ExitStack() as stack:
        for cls in (parametrizations.Cayley, parametrizations.Expm):
            _ranged(cls, "orthogonal", "build Q", stack)
        _ranged(operands.Compounds, "build", "build blocks", stack)
        _ranged(batched, "_build", "build blocks", stack)  # batched: Q inside counts as build Q
        _ranged(parametrizations.CircuitPair, "blocks", "build blocks", stack)
        _ranged(apply, "apply_block", "apply", stack)
        _ranged(apply, "per_block_product", "apply", stack)  # whole blocks too
        # the output side's one node (products, bias, and its backward by hand)
        _ranged(about_point, "apply_about", "apply", stack)
        _ranged(operands, "assemble", "build blocks", stack)
        _ranged(layer.HammingAdapter, "_rotate_output", "adapter glue", stack)
        _ranged(parametrizations.Parametrization, "forward", "adapter glue", stack)
        yield


def _category(event, ranges=("build Q", "build blocks", "apply", "adapter glue")) -> str:
    node = event
    while node is not None:
        if node.name in ranges:
            return node.name
        if node.name.startswith("Optimizer."):
            return "optimizer"
        node = node.cpu_parent
    return "base model"


def split(events) -> dict[str, float]:
    """Self CPU microseconds per category (module docstring) over profiler ``events``."""
    forward, totals = {}, defaultdict(float)
    backward = []
    for e in events:
        top = e
        while top.cpu_parent is not None and not top.name.startswith(BACKWARD):
            top = top.cpu_parent
        if top.name.startswith(BACKWARD):
            backward.append((e, top))
            continue
        cat = _category(e)
        if e.sequence_nr >= 0:
            forward.setdefault(e.sequence_nr, cat)
        totals[f"{cat} (fwd)" if cat != "optimizer" else cat] += e.self_cpu_time_total
    for e, top in backward:
        cat = forward.get(top.sequence_nr, "base model")
        totals[f"{cat} (bwd)" if "AccumulateGrad" not in top.name else "optimizer"] += \
            e.self_cpu_time_total
    return dict(totals)


def step_for(name: str, base, batch, targets):
    model, _ = attach(name, copy.deepcopy(base), targets)
    return train_step_fn(model, batch)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="hamming-12-b3,lora-r8")
    parser.add_argument("--targets", default="query,value",
                        help="comma-separated module names, or all-linear")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    from ..common.data import load_minilm

    torch.set_num_threads(args.threads)
    targets = args.targets if args.targets == "all-linear" else args.targets.split(",")
    base, _ = load_minilm(num_labels=26)
    batch = minilm_batch(args.batch, args.seq)
    print(f"MiniLM step, batch {args.batch} x {args.seq}, targets {args.targets}, "
          f"{args.threads} thread(s), {args.steps} profiled steps after 2 warm-ups; "
          f"self CPU ms per step")
    for name in args.methods.split(","):
        step = step_for(name, base, batch, targets)
        with labelled():
            step(), step()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.steps):
                    step()
        totals = split(prof.events())
        whole = sum(totals.values())
        print(f"\n{name}: {whole / 1e3 / args.steps:.1f} ms per step")
        for cat, us in sorted(totals.items(), key=lambda kv: -kv[1]):
            print(f"  {cat:24s} {us / 1e3 / args.steps:8.1f} ms  {100 * us / whole:5.1f} %")


if __name__ == "__main__":
    main()
