"""Part 2 of the physics benchmark (float32): PhysicsAdapter training steps against a plain
bottleneck adapter of the same rank, interleaved, and a profile of the adapter's step
(:mod:`benchmarks.physics.run` says more)."""
from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

import physics

from ..common.timing import Timings, interleaved

DIM, RANK, BATCH, DEPTH = 384, 8, 32, 4
LAYOUTS = {"vit-197-cls-14x14": dict(tokens=197, grid="auto", extra_tokens=1),
           "seq-128": dict(tokens=128, grid="sequence", extra_tokens=0)}


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
