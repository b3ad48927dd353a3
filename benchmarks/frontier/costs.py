"""What one training step of a method costs: FLOPs, the build of its weight-side matrices,
peak memory.  One method per fresh process (memory is read from the process's own
accounting), printed as one JSON line.

    python -m benchmarks.frontier.costs hamming-12-bs32 --task text
    python -m benchmarks.frontier.costs vision-psoft-r8 --task vision

The step is the benchmarks' own: forward, cross-entropy, backward, AdamW step, on
:data:`TEXT_BATCH` (MiniLM, 32 sequences of 32 tokens, the trade-off's batch and padded
length) or :data:`VISION_BATCH` (the vision ViT, 32 images of 1 x 28 x 28).

* ``flops_per_step``: :class:`torch.utils.flop_counter.FlopCounterMode` over one forward and
  backward (matrix products, convolutions, attention; element-wise ops and the optimizer
  count zero, as the counter defines FLOPs; FFTs, which it counts as zero, count
  ``5 P log2 P`` per complex transform of ``P`` points, half that for a real one:
  :func:`fft_formulas`).  It does not depend on the machine or its load.
* ``build_flops`` / ``build_s``: materialising the method's weight-side matrices from its
  parameters once, forward and backward, summed over the adapted layers: for Hamming the
  blocks of ``D`` (``Parametrization.blocks``: ``Q`` and its compounds, which every Hamming
  training step rebuilds); for a peft method its ``get_delta_weight`` where the layer has
  one.  ``build_in_forward`` says whether the method's forward runs that build (Hamming:
  yes; a peft layer: whether its forward called ``get_delta_weight``); where it does not,
  the build is what a merge costs, not a step.  ``build_s`` is the median of
  :data:`BUILD_REPEATS` wall-clock builds, on whatever machine runs this.
* ``peak_growth_mib``: the resident-set high-water mark over :data:`MEMORY_STEPS` steps
  minus the resident set before them (model, method, batch and AdamW built), as
  :mod:`benchmarks.speed.memory` measures it (Linux; run with
  ``MALLOC_MMAP_THRESHOLD_=65536``, which :func:`measure_in_subprocess` sets).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch

#: (batch, tokens) of the text step; (batch, channels, height, width) of the vision step.
TEXT_BATCH, VISION_BATCH = (32, 32), (32, 1, 28, 28)
TEXT_LABELS, VISION_LABELS = 26, 10
MEMORY_STEPS, BUILD_REPEATS = 2, 5


def batch(task: str, seed: int = 0) -> dict:
    """A random batch of the task's shape (costs do not depend on the values)."""
    gen = torch.Generator().manual_seed(seed)
    if task == "text":
        b, t = TEXT_BATCH
        ids = torch.randint(1000, 30000, (b, t), generator=gen)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.randint(0, TEXT_LABELS, (b,), generator=gen)}
    if task == "vision":
        return {"pixel_values": torch.randn(*VISION_BATCH, generator=gen),
                "labels": torch.randint(0, VISION_LABELS, (VISION_BATCH[0],), generator=gen)}
    raise ValueError(f"task={task!r}; valid: 'text', 'vision'")


def load_model(task: str):
    """The benchmark's pretrained backbone with a fresh head (seed 0)."""
    if task == "text":
        from ..common.data import load_minilm
        return load_minilm(TEXT_LABELS, seed=0)[0]
    from ..vision.model import load_backbone
    return load_backbone(VISION_LABELS, seed=0)


def _fft_flops(complex_input: bool, real_output: bool):
    """A FlopCounterMode formula for one of aten's FFT ops: ``c * P * log2(P)`` per
    transform of ``P`` points (the product of the transformed lengths), ``c = 5`` for a
    complex transform and ``2.5`` for a real one (input or output real), the usual count of
    a radix-2 FFT; times the number of transforms (the other axes)."""
    def formula(self_shape, dim, *args, out_shape=None, **kwargs) -> int:
        shape = out_shape if real_output else self_shape
        points = math.prod(shape[d] for d in dim)
        transforms = math.prod(shape) // max(points, 1)
        c = 5.0 if complex_input and not real_output else 2.5
        return int(c * transforms * points * math.log2(max(points, 2)))
    return formula


def fft_formulas() -> dict:
    """FFT formulas for :class:`FlopCounterMode` (which counts FFTs as zero by itself):
    FourierFT, WaveFT and C3A compute theirs with ``torch.fft``."""
    aten = torch.ops.aten
    return {aten._fft_r2c: _fft_flops(False, False), aten._fft_c2r: _fft_flops(True, True),
            aten._fft_c2c: _fft_flops(True, False)}


def step_flops(model, data: dict) -> int:
    """FLOPs of one forward + backward of ``model`` on ``data`` (FlopCounterMode, FFTs
    counted by :func:`fft_formulas`)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=fft_formulas())
    with counter:
        model(**data).loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def _tensors(obj) -> list:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


def builders(model) -> tuple[list, bool]:
    """``(list of zero-argument build functions, build_in_forward)``: one per adapted layer
    (Hamming: each parametrization's ``blocks``; peft: each tuner layer's
    ``get_delta_weight`` of its active adapter)."""
    from qiadapters.adapters.hamming.parametrizations import Parametrization

    hamming = [m for m in model.modules() if isinstance(m, Parametrization)]
    if hamming:
        return [m.blocks for m in hamming], True
    from peft.tuners.tuners_utils import BaseTunerLayer

    found = []
    for m in model.modules():
        if isinstance(m, BaseTunerLayer) and hasattr(m, "get_delta_weight"):
            for name in m.active_adapters:
                found.append((m, name))
    return [lambda m=m, n=name: m.get_delta_weight(n) for m, n in found], None


def _run_builds(fns) -> None:
    outs = [t for fn in fns for t in _tensors(fn())]
    loss = sum(t.float().sum() for t in outs if t.requires_grad)
    if torch.is_tensor(loss):
        loss.backward()


def build_costs(model, data: dict) -> dict:
    """FLOPs and median wall time of every layer's build, forward and backward; whether the
    forward runs it (see the module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    fns, in_forward = builders(model)
    if not fns:
        return {"build_layers": 0, "build_flops": 0, "build_s": 0.0, "build_in_forward": None}
    if in_forward is None:  # a peft layer: does its forward call get_delta_weight?
        calls = []
        layers = {fn.__defaults__[0] for fn in fns}
        originals = {}
        for m in layers:
            originals[m] = m.get_delta_weight
            m.get_delta_weight = (lambda *a, _f=m.get_delta_weight, **k:
                                  calls.append(1) or _f(*a, **k))
        try:
            with torch.no_grad():
                model(**{k: v[:2] for k, v in data.items()})
        finally:
            for m, f in originals.items():
                m.get_delta_weight = f
        in_forward = bool(calls)
    counter = FlopCounterMode(display=False, custom_mapping=fft_formulas())
    with counter:
        _run_builds(fns)
    times = []
    for _ in range(BUILD_REPEATS):
        start = time.perf_counter()
        _run_builds(fns)
        times.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return {"build_layers": len(fns), "build_flops": int(counter.get_total_flops()),
            "build_s": statistics.median(times), "build_in_forward": in_forward}


def measure(name: str, task: str, threads: int = 1) -> dict:
    """Every cost of one step of registry method ``name`` (see the module docstring)."""
    from ..common import registry
    from ..speed.memory import peak_growth_kib

    torch.set_num_threads(threads)
    model, _, _ = registry.build(name, load_model(task))
    model.train()
    data = batch(task)
    params = [p for p in model.parameters() if p.requires_grad]
    head = registry.head_parameters(model)
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        model(**data).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    baseline, peak, reset = peak_growth_kib(step, MEMORY_STEPS)
    out = {"method": name, "task": task,
           "adapter_params": sum(p.numel() for p in params) - head,
           "flops_per_step": step_flops(model, data),
           **build_costs(model, data),
           "peak_growth_mib": round((peak - baseline) / 1024.0, 1), "hwm_reset": reset,
           "threads": threads, "batch": list(TEXT_BATCH if task == "text" else VISION_BATCH)}
    return out


def measure_in_subprocess(name: str, task: str, threads: int = 1) -> dict:
    """:func:`measure` in a fresh Python process (its own resident-set accounting)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.frontier.costs", name,
                           "--task", task, "--threads", str(threads)],
                          capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"costs of {name} ({task}) failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.frontier.costs",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="a registry method")
    p.add_argument("--task", choices=("text", "vision"), default="text")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.name, args.task, args.threads)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
