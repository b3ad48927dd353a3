"""Peak memory of one method's training step, measured in a fresh process.

    python -m benchmarks.speed.memory hamming-12-b3 [--steps 2] [--targets all-linear]
    python -m benchmarks.speed.memory --recompute [--quick] [--threads 2]

The first prints one JSON line (``python -m benchmarks.speed --only memory`` runs it once per
method, ``--only targets`` once per method and case).  ``--recompute`` is the study of
``HammingConfig(recompute_base=True)`` (:func:`run_recompute`): blocks of 32 with and without
it against peft's LoRA r=8, peak memory growth and step time, on query/value and all-linear,
written to ``speed_recompute.csv``.  On CUDA, :func:`measure_cuda` reads
``torch.cuda.max_memory_allocated`` in the calling process instead (the peak over the steps
minus what is allocated before them).

Method (Linux): PyTorch's CPU allocator keeps no statistics and ``tracemalloc`` does not see
its buffers, so we read the kernel's resident-set accounting of this process.

1. Build everything first: model, method, batch, AdamW (``gc.collect()``); read ``VmRSS``
   = the *setup* baseline.
2. Reset the high-water mark: writing ``5`` to ``/proc/self/clear_refs`` sets ``VmHWM`` to
   the current RSS (so the peak of loading the checkpoint is forgotten).
3. Run ``steps`` training steps (forward, backward, AdamW step, zero_grad); the first step
   allocates AdamW's two moment buffers; read ``VmHWM``.

``peak_growth = VmHWM - baseline`` is the memory the training step needs above the loaded
model (activations kept for backward, gradients, optimizer state).  The parent launches this
with ``MALLOC_MMAP_THRESHOLD_=65536`` so every tensor above 64 KiB is its own ``mmap`` and is
returned to the kernel when freed: RSS then tracks live tensors instead of glibc's cached
heap, which makes the numbers reproducible between processes.
"""
from __future__ import annotations

import argparse
import gc
import json

#: ``--recompute``: LoRA r=8 (the reference), blocks of 32, blocks of 32 keeping ``x``.
RECOMPUTE_METHODS = ["lora-r8", "hamming-12-bs32", "hamming-12-bs32-recompute"]
#: ``(targets, batch, seq)`` of ``--recompute`` (``--quick``: 8 x 32 instead).
RECOMPUTE_CASES = [(("query", "value"), 32, 64), ("all-linear", 32, 64)]


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_growth_kib(step, steps: int) -> tuple[int, int, bool]:
    """``(baseline, peak, reset)``: this process's resident set (KiB) before ``steps`` calls
    of ``step`` (after a garbage collection) and its high-water mark over them (the mark
    reset first where the kernel allows it: ``reset``)."""
    gc.collect()
    baseline = _status_kib("VmRSS")
    reset = reset_peak()
    for _ in range(steps):
        step()
    return baseline, _status_kib("VmHWM"), reset


def measure(method: str, steps: int = 2, batch: int = 32, seq: int = 64,
            targets=None) -> dict:
    import torch

    from ..common.data import load_minilm
    from .minilm import attach, minilm_batch, train_step_fn, trainable_count

    torch.set_num_threads(2)
    model, _ = load_minilm(num_labels=26)
    model, info = attach(method, model, targets)
    step = train_step_fn(model, minilm_batch(batch, seq))
    baseline, peak, reset = peak_growth_kib(step, steps)
    gc.collect()
    after = _status_kib("VmRSS")
    mib = 1024.0
    return {"method": method, "config": info, "trainable": trainable_count(model),
            "baseline_mib": baseline / mib, "peak_mib": peak / mib,
            "peak_growth_mib": (peak - baseline) / mib,
            "retained_growth_mib": (after - baseline) / mib,
            "hwm_reset": reset, "steps": steps, "batch": batch, "seq": seq}


def measure_cuda(method: str, base, steps: int = 2, batch: int = 32, seq: int = 64,
                 targets=None) -> dict:
    """Peak CUDA memory growth of ``steps`` training steps of ``method`` on a copy of
    ``base`` (MiB): ``max_memory_allocated`` over the steps minus ``memory_allocated``
    before them (model, method, batch and optimizer built)."""
    import copy

    import torch

    from .minilm import attach, minilm_batch, train_step_fn

    model, info = attach(method, copy.deepcopy(base), targets)
    step = train_step_fn(model, minilm_batch(batch, seq), device="cuda")
    gc.collect()
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        step()
    peak = torch.cuda.max_memory_allocated()
    mib = 2.0 ** 20
    del step, model
    gc.collect()
    torch.cuda.empty_cache()
    return {"method": method, "config": info, "baseline_mib": baseline / mib,
            "peak_mib": peak / mib, "peak_growth_mib": (peak - baseline) / mib,
            "steps": steps, "batch": batch, "seq": seq}


def run_recompute(args) -> None:
    """Each case of :data:`RECOMPUTE_CASES`: the steps of :data:`RECOMPUTE_METHODS`
    interleaved (20 rounds after a warm-up; ``--quick`` 3) and each method's peak memory
    growth (a fresh process per method on CPU, as ``benchmarks.speed``'s targets), with
    ratios against LoRA r=8 and, for the recomputing row, against blocks of 32 without it.
    Writes ``speed_recompute.csv`` (``results/quick/`` for ``--quick``, a ``cuda/`` folder
    inside for ``--device cuda``)."""
    import torch

    from ..common.constants import results_dir
    from ..common.data import load_minilm
    from .minilm import case_name
    from .sections import _write_csv, case_row, time_case

    torch.set_num_threads(args.threads)
    lora, plain, recompute = RECOMPUTE_METHODS
    cases = [(t, 8, 32) for t, _, _ in RECOMPUTE_CASES] if args.quick else RECOMPUTE_CASES
    base, _ = load_minilm(num_labels=26)
    rows = []
    for targets, batch, seq in cases:
        case = case_name(targets, batch, seq)
        t, infos, counts, memory = time_case(args, base, RECOMPUTE_METHODS, case, targets,
                                             batch, seq, RECOMPUTE_METHODS)
        for name in RECOMPUTE_METHODS:
            rows.append({**case_row(case, name, infos, counts, t),
                         "ratio_vs_lora": round(t.paired_ratio(name, lora), 4),
                         "ratio_vs_bs32": round(t.paired_ratio(name, plain), 4),
                         "peak_growth_mib": round(memory[name], 1),
                         "growth_vs_lora": round(memory[name] / memory[lora], 4),
                         "growth_vs_bs32": round(memory[name] / memory[plain], 4),
                         "rounds": t.rounds(name), "threads": t.threads,
                         "device": args.device})
    folder = results_dir(args.quick) / ("cuda" if args.device != "cpu" else "")
    _write_csv(folder / "speed_recompute.csv", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", nargs="?", help="a registry method (not with --recompute)")
    parser.add_argument("--recompute", action="store_true",
                        help="the recompute_base study (run_recompute) instead of one method")
    parser.add_argument("--quick", action="store_true",
                        help="--recompute: batch 8 x 32, 3 rounds, into results/quick/")
    parser.add_argument("--threads", type=int, default=2, help="--recompute: torch threads")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="--recompute: where the steps run")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--targets", default=None,
                        help="comma-separated module names or all-linear (default: the "
                             "method's own)")
    args = parser.parse_args()
    if args.recompute == (args.method is not None):
        parser.error("give one method, or --recompute")
    if args.recompute:
        run_recompute(args)
        return
    targets = args.targets
    if targets is not None and targets != "all-linear":
        targets = targets.split(",")
    print("RESULT " + json.dumps(measure(args.method, args.steps, args.batch, args.seq,
                                         targets)), flush=True)


if __name__ == "__main__":
    main()
