"""Peak memory of one method's training step, measured in a fresh process.

    python -m benchmarks.speed_memory hamming-12-b3 [--steps 2] [--targets all-linear]

prints one JSON line (``python -m benchmarks.speed --only memory`` runs it once per method,
``--only targets`` once per method and case).  On CUDA, :func:`measure_cuda` reads
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


def measure(method: str, steps: int = 2, batch: int = 32, seq: int = 64,
            targets=None) -> dict:
    import torch

    from .data import load_minilm
    from .speed_minilm import attach, minilm_batch, train_step_fn, trainable_count

    torch.set_num_threads(2)
    model, _ = load_minilm(num_labels=26)
    model, info = attach(method, model, targets)
    step = train_step_fn(model, minilm_batch(batch, seq))
    gc.collect()
    baseline = _status_kib("VmRSS")
    reset = reset_peak()
    for _ in range(steps):
        step()
    peak = _status_kib("VmHWM")
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

    from .speed_minilm import attach, minilm_batch, train_step_fn

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--targets", default=None,
                        help="comma-separated module names or all-linear (default: the "
                             "method's own)")
    args = parser.parse_args()
    targets = args.targets
    if targets is not None and targets != "all-linear":
        targets = targets.split(",")
    print("RESULT " + json.dumps(measure(args.method, args.steps, args.batch, args.seq,
                                         targets)), flush=True)


if __name__ == "__main__":
    main()
