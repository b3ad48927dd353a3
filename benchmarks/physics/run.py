"""Physics benchmark: solver accuracy against the references, and PhysicsAdapter step time.

Run from the repository root::

    .venv/bin/python -m benchmarks.physics                          # physics.{json,csv,png}
    .venv/bin/python -m benchmarks.physics --threads 1 --tag threads1  # physics_threads1.*
    .venv/bin/python -m benchmarks.physics --quick    # smoke run, a few reps, results/quick/

(the full runs take ~15 min on 2 busy cores).

Part 1 (accuracy, float64): max-abs error of explicit Euler and Crank–Nicolson (heat) and
leapfrog (wave) against the exact spectral solution, for a range of step sizes, on a 1D and a
2D Neumann grid; the fitted order (slope of log error against log dt); Poisson against the
sparse direct solve for every boundary and zero-mode rule.

Part 2 (speed, float32, ``torch.set_num_threads(threads)``): one training step = forward,
backward and AdamW on the adapters, for a stack of 4 residual blocks, batch 32, dim 384, with
(a) 197 tokens = CLS + a 14x14 grid and (b) a 1D sequence of 128 tokens.  Two settings:

* ``blocks``: each block is a frozen ViT-S-like ``nn.TransformerEncoderLayer`` (6 heads, MLP
  1536, pre-norm) with the adapter in parallel, ``h = layer(h) + adapter(h)``;
* ``adapter-only``: ``h = h + adapter(h)``, nothing else (the adapters' own cost).

Each PhysicsAdapter (rank 8, all three priors, every router) is timed against a plain
bottleneck adapter of the same rank (down, GELU, up) built on the same input, both trained by
AdamW (the fused CPU kernel where available); A and B steps alternate after warm-up
(:func:`benchmarks.common.timing.interleaved`, the order reversed every other round), and the
medians of wall time and process CPU time, their ratios and the median per-pair ratio are
reported.  A short profile of
the PhysicsAdapter step and a transform micro-benchmark (cached basis matmul vs an FFT-based
DCT-II) say where the time goes.

Writes ``benchmarks/results/physics.json`` (everything), ``physics.csv`` (the timing rows) and
``physics.png`` (error vs dt, and the step-time ratios).
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import physics

from ..common import cli
from ..common.constants import results_dir
from ..common.reporting import write_csv
from ..common.timing import Timings, interleaved
DIM, RANK, BATCH, DEPTH = 384, 8, 32, 4
LAYOUTS = {"vit-197-cls-14x14": dict(tokens=197, grid="auto", extra_tokens=1),
           "seq-128": dict(tokens=128, grid="sequence", extra_tokens=0)}


# -- part 1: accuracy ---------------------------------------------------------------------

def accuracy(steps_list=(10, 20, 40, 80, 160, 320, 640)) -> dict:
    f64 = torch.float64
    gen = torch.Generator().manual_seed(0)
    rows, orders = [], []
    cases = {"1d-32": (32,), "2d-12x12": (12, 12)}
    for grid_name, shape in cases.items():
        u0 = torch.randn(2, *shape, 2, dtype=f64, generator=gen)
        v0 = torch.randn(2, *shape, 2, dtype=f64, generator=gen)
        kappa, c = torch.tensor([1.0, 0.5], dtype=f64), torch.tensor([1.0, 0.5], dtype=f64)
        t_heat, t_wave = 1.0, 4.0
        exact_heat = physics.heat(u0, kappa, t_heat, "neumann").numpy()
        exact_wave = physics.wave(u0, v0, c, t_wave, "neumann").numpy()
        methods = {
            "euler": lambda s: physics.heat_euler(u0, kappa, t_heat, s) - exact_heat,
            "crank_nicolson": lambda s: physics.heat_crank_nicolson(u0, kappa, t_heat, s)
            - exact_heat,
            "leapfrog": lambda s: physics.wave_leapfrog(u0, v0, c, t_wave, s) - exact_wave,
        }
        for method, err_fn in methods.items():
            t_end = t_wave if method == "leapfrog" else t_heat
            errs = []
            for s in steps_list:
                err = float(np.abs(err_fn(s)).max())
                errs.append(err)
                rows.append(dict(grid=grid_name, method=method, steps=s, dt=t_end / s, error=err))
            # fit on the finer half, where the leading error term dominates
            half = len(steps_list) // 2
            dts = np.array([t_end / s for s in steps_list])[half:]
            slope = float(np.polyfit(np.log(dts), np.log(errs[half:]), 1)[0])
            orders.append(dict(grid=grid_name, method=method, order=slope))
    poisson_rows = []
    for boundary in physics.BOUNDARIES:
        for zero_mode in physics.ZERO_MODES:
            eps = 0.1 if zero_mode == "screened" else None
            f = torch.randn(4, 14, 14, 8, dtype=f64, generator=gen)
            ours = physics.poisson(f, boundary, zero_mode, eps).numpy()
            ref = physics.poisson_sparse(f, boundary, zero_mode, eps)
            poisson_rows.append(dict(boundary=boundary, zero_mode=zero_mode, grid="14x14",
                                     max_abs_error=float(np.abs(ours - ref).max()),
                                     max_abs_solution=float(np.abs(ref).max())))
    return dict(convergence=rows, orders=orders, poisson=poisson_rows)


# -- part 2: speed ------------------------------------------------------------------------

class Bottleneck(nn.Module):
    """The plain adapter baseline: ``up(gelu(down(x)))``, rank ``r``."""

    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.down, self.up = nn.Linear(dim, rank), nn.Linear(rank, dim)

    def forward(self, x):
        return self.up(torch.nn.functional.gelu(self.down(x)))


class Stack(nn.Module):
    """``DEPTH`` residual blocks; ``frozen`` layers (or none) plus one adapter per block."""

    def __init__(self, adapters, frozen=None):
        super().__init__()
        self.adapters = nn.ModuleList(adapters)
        self.frozen = frozen

    def forward(self, h):
        for i, adapter in enumerate(self.adapters):
            base = h if self.frozen is None else self.frozen[i](h)
            h = base + adapter(h)
        return h

    def aux_loss(self):
        return sum(a.aux_loss() for a in self.adapters if hasattr(a, "aux_loss"))


def frozen_layers(seed=0):
    torch.manual_seed(seed)
    layers = nn.ModuleList([nn.TransformerEncoderLayer(DIM, 6, 4 * DIM, dropout=0.0,
                                                       batch_first=True, norm_first=True)
                            for _ in range(DEPTH)]).eval()
    layers.requires_grad_(False)
    return layers


def make_adapter(kind, layout, router):
    if kind == "bottleneck":
        a = Bottleneck(DIM, RANK)
    else:
        cfg = LAYOUTS[layout]
        a = physics.PhysicsAdapter(DIM, RANK, grid=cfg["grid"], router=router,
                                   extra_tokens=cfg["extra_tokens"])
    nn.init.normal_(a.up.weight, std=0.02)  # timing a trained state, not the zero init
    return a


def train_step(model, opt, x, target):
    opt.zero_grad(set_to_none=True)
    loss = (model(x) - target).square().mean() + model.aux_loss()
    loss.backward()
    opt.step()


def make_optimizer(model):
    params = [p for p in model.parameters() if p.requires_grad]
    try:  # the fused CPU kernel (torch >= 2.4) avoids a Python loop over parameter tensors
        return torch.optim.AdamW(params, lr=1e-3, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=1e-3)


def time_pair(model_a, model_b, x, target, warmup, reps, desc) -> Timings:
    """Alternating A/B training steps (``"a"``, ``"b"``): wall-clock and process-CPU seconds.

    Process CPU time (all threads) is reported beside wall time because on a shared machine a
    descheduled process still accrues wall time; the per-pair ratio ``A_i / B_i`` compares
    two steps taken back to back, under the same load.
    """
    opt_a, opt_b = make_optimizer(model_a), make_optimizer(model_b)
    steps = {"a": lambda: train_step(model_a, opt_a, x, target),
             "b": lambda: train_step(model_b, opt_b, x, target)}
    # alternate which goes first so drift and cache effects hit both equally
    return interleaved(steps, reps=reps, warmup=warmup, alternate=True, desc=desc)


def speed(routers, settings, warmup, reps_adapter, reps_blocks) -> list[dict]:
    rows = []
    frozen = frozen_layers() if "blocks" in settings else None
    for setting in settings:
        reps = reps_blocks if setting == "blocks" else reps_adapter
        for layout, cfg in LAYOUTS.items():
            gen = torch.Generator().manual_seed(1)
            x = torch.randn(BATCH, cfg["tokens"], DIM, generator=gen)
            target = torch.randn(BATCH, cfg["tokens"], DIM, generator=gen)
            for router in routers:
                torch.manual_seed(2)
                fz = frozen if setting == "blocks" else None
                phys = Stack([make_adapter("physics", layout, router) for _ in range(DEPTH)], fz)
                base = Stack([make_adapter("bottleneck", layout, router)
                              for _ in range(DEPTH)], fz)
                t = time_pair(phys, base, x, target, warmup, reps,
                              f"{setting} {layout} {router}")
                rows.append(dict(
                    setting=setting, layout=layout, router=router, reps=reps,
                    physics_ms=round(1e3 * t.median("a"), 2),
                    bottleneck_ms=round(1e3 * t.median("b"), 2),
                    ratio=round(t.median("a") / t.median("b"), 4),
                    paired_ratio=round(t.paired_ratio("a", "b"), 4),
                    physics_cpu_ms=round(1e3 * t.cpu_median("a"), 2),
                    bottleneck_cpu_ms=round(1e3 * t.cpu_median("b"), 2),
                    cpu_ratio=round(t.cpu_median("a") / t.cpu_median("b"), 4),
                    physics_params=sum(p.numel() for p in phys.adapters.parameters()),
                    bottleneck_params=sum(p.numel() for p in base.adapters.parameters()),
                    threads=t.threads))
                r = rows[-1]
                tqdm.write(f"{setting:12s} {layout:18s} {router:7s} "
                           f"physics {r['physics_ms']:8.1f} ms"
                           f"  bottleneck {r['bottleneck_ms']:8.1f} ms  ratio {r['ratio']:.3f}"
                           f"  paired {r['paired_ratio']:.3f}  cpu-time ratio {r['cpu_ratio']:.3f}")
    return rows


def profile_step(router="token", layout="vit-197-cls-14x14", steps=5, top=12) -> list[dict]:
    """Self CPU time per op for adapter-only PhysicsAdapter training steps."""
    from torch.profiler import ProfilerActivity, profile

    cfg = LAYOUTS[layout]
    model = Stack([make_adapter("physics", layout, router) for _ in range(DEPTH)])
    opt = make_optimizer(model)
    x = torch.randn(BATCH, cfg["tokens"], DIM)
    target = torch.randn_like(x)
    for _ in range(2):
        train_step(model, opt, x, target)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            train_step(model, opt, x, target)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    events = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [dict(op=e.key, shapes=str(e.input_shapes)[:80], calls=e.count // steps,
                 self_ms_per_step=round(e.self_cpu_time_total / 1e3 / steps, 3),
                 share=round(e.self_cpu_time_total / total, 4)) for e in events]


def dct2_fft(u: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II along dim 1 of ``(batch, N, C)`` via one FFT (Makhoul's reordering)."""
    n = u.shape[1]
    v = torch.cat([u[:, 0::2], u[:, 1::2].flip(1)], dim=1)
    spec = torch.fft.fft(v, dim=1)
    k = torch.arange(n, dtype=u.dtype, device=u.device)
    phase = torch.exp(-1j * math.pi * k / (2 * n))[None, :, None]
    out = 2 * (spec * phase).real
    scale = torch.full((n,), math.sqrt(1 / (2 * n)), dtype=u.dtype, device=u.device)
    scale[0] = math.sqrt(1 / (4 * n))
    return out * scale[None, :, None]


def dct2_fft_2d(u: torch.Tensor) -> torch.Tensor:
    b, h, w, c = u.shape
    v = dct2_fft(u.reshape(b, h, w * c)).reshape(b, h, w, c)
    return dct2_fft(v.reshape(b * h, w, c)).reshape(b, h, w, c)


def transform_micro(reps=200) -> list[dict]:
    """Forward DCT-II of the rank-8 grid features: cached basis matmul vs FFT-based."""
    rows = []
    for name, shape in (("14x14", (14, 14)), ("128", (128,))):
        u = torch.randn(BATCH, *shape, RANK)
        fft_fn = dct2_fft_2d if len(shape) == 2 else dct2_fft
        torch.testing.assert_close(fft_fn(u), physics.transform(u, "neumann"),
                                   atol=1e-4, rtol=1e-4)
        t = interleaved({"basis-matmul": lambda: physics.transform(u, "neumann"),
                         "torch.fft": lambda: fft_fn(u)}, reps=reps, warmup=10)
        rows += [dict(grid=name, method=method, median_us=round(1e6 * t.median(method), 1))
                 for method in t.wall]
    return rows


# -- output -------------------------------------------------------------------------------

def plot(acc: dict, speed_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    ax = axes[0]
    styles = {"1d-32": "-", "2d-12x12": "--"}
    colors = {"euler": "C0", "crank_nicolson": "C1", "leapfrog": "C2"}
    orders = {(o["grid"], o["method"]): o["order"] for o in acc["orders"]}
    for (grid, method), order in orders.items():
        pts = [r for r in acc["convergence"] if r["grid"] == grid and r["method"] == method]
        ax.loglog([r["dt"] for r in pts], [r["error"] for r in pts], styles[grid], marker="o",
                  ms=3, color=colors[method], label=f"{method} {grid} (order {order:.2f})")
    ax.set_xlabel("time step dt")
    ax.set_ylabel("max |FD - exact spectral|")
    ax.set_title("Time steppers converge to the spectral solution (Neumann)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[1]
    labels = [f"{r['setting']}\n{r['layout'].split('-')[0]} {r['router']}" for r in speed_rows]
    xs = np.arange(len(speed_rows))
    for j, (key, label) in enumerate((("ratio", "median wall"), ("paired_ratio", "paired wall"),
                                      ("cpu_ratio", "median CPU time"))):
        ax.bar(xs + (j - 1) * 0.27, [r[key] for r in speed_rows], width=0.27, label=label)
    ax.axhline(1.15, color="k", ls="--", lw=1, label="target 1.15x")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(range(len(speed_rows)))
    ax.set_xticklabels(labels, fontsize=6, rotation=60)
    for tick, r in zip(ax.get_xticklabels(), speed_rows):
        tick.set_color("C3" if r["setting"] == "adapter-only" else "C0")
    ax.set_ylabel("step time: PhysicsAdapter / bottleneck")
    ax.set_title("Step-time ratio, alternating A/B steps")
    ax.set_xlabel("red: adapter-only stack; blue: adapters in 4 frozen ViT-S blocks", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(argv=None) -> dict:
    parser = cli.quick_parser(__doc__, "few reps, for a smoke test", threads=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps-adapter", type=int, default=15)
    parser.add_argument("--reps-blocks", type=int, default=7)
    parser.add_argument("--routers", default="token,sample,global")
    parser.add_argument("--settings", default="adapter-only,blocks")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default benchmarks/results; results/quick with "
                             "--quick)")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.reps_adapter, args.reps_blocks = 1, 3, 1
    torch.set_num_threads(args.threads)
    args.out = args.out or results_dir(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)

    load_before = os.getloadavg()
    started = time.time()
    acc = accuracy()
    for o in acc["orders"]:
        print(f"order {o['grid']:9s} {o['method']:15s} {o['order']:.3f}")
    for p in acc["poisson"]:
        print(f"poisson {p['boundary']:9s} {p['zero_mode']:9s} max|spectral - spsolve| "
              f"{p['max_abs_error']:.2e} (|u| <= {p['max_abs_solution']:.2f})")
    micro = transform_micro()
    for m in micro:
        print(f"transform {m['grid']:6s} {m['method']:12s} {m['median_us']:.1f} us")
    rows = speed(args.routers.split(","), args.settings.split(","), args.warmup,
                 args.reps_adapter, args.reps_blocks)
    prof = profile_step()
    result = dict(
        command=("python -m benchmarks.physics " + " ".join(argv if argv is not None
                                                            else sys.argv[1:])).strip(),
        torch=torch.__version__, threads=args.threads, machine=platform.machine(),
        cpu_count=os.cpu_count(), load_average_before=load_before,
        load_average_after=os.getloadavg(), seconds=round(time.time() - started, 1),
        accuracy=acc, transform_micro=micro, speed=rows, profile_physics_adapter_only=prof)
    stem = "physics" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    write_csv(args.out / f"{stem}.csv", rows)
    plot(acc, rows, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.json, .csv, .png "
          f"in {result['seconds']} s (load average {load_before} -> "
          f"{result['load_average_after']})")
    return result


if __name__ == "__main__":
    main()
