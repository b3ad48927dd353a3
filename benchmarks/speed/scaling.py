"""Scaling part of the speed benchmark: a stack of frozen ``nn.Linear(d, d)`` layers.

Contenders per ``(d, tokens)``, each a fresh stack of 4 frozen layers with the same weights,
each configured by its registry entry (:mod:`benchmarks.common.registry`):

* ``hamming-12-b3``: every layer wrapped by ``qiadapters.HammingAdapter(linear, orders=(1, 2),
  blocks=3)``;
* ``lora-r8``: peft's LoRA (``inject_adapter_in_model``, the registry's ``LoraConfig``) on
  the 4 layers;
* ``paper-dense-12-b3``: :class:`~benchmarks.common.paper.DenseCompoundLinear` (dense ``D`` from
  minors every step, applied as ``y @ D``) with the same block layout.

One call = forward, ``loss = mean(out^2)``, backward, AdamW step on the adapter parameters,
zero_grad.  Block building (the parametrization's ``blocks()`` forward and backward) is timed
separately, alone and split out of a real step at every token count.
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import qiadapters as qa
from qiadapters.circuits.blockdiag import apply_blocks

from ..common import registry
from ..common.paper import replace_linears
from ..common.timing import interleaved

LAYERS = 4


class Stack(nn.Module):
    """``LAYERS`` frozen ``nn.Linear(d, d)`` applied in sequence."""

    def __init__(self, d: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.ModuleList(nn.Linear(d, d) for _ in range(LAYERS))
        self.requires_grad_(False)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


LAYER_NAMES = [str(i) for i in range(LAYERS)]
HAMMING, LORA, DENSE = "hamming-12-b3", "lora-r8", "paper-dense-12-b3"


def _orders_blocks(name: str) -> tuple:
    config = registry.get(name).config
    return tuple(config["orders"]), config["blocks"]


def hamming_stack(stack: Stack) -> Stack:
    orders, blocks = _orders_blocks(HAMMING)
    for i, layer in enumerate(stack.layers):
        stack.layers[i] = qa.HammingAdapter(layer, orders=orders, blocks=blocks)
    return stack


def dense_stack(stack: Stack) -> Stack:
    replace_linears(stack, LAYER_NAMES, *_orders_blocks(DENSE))
    return stack


def lora_stack(stack: Stack) -> Stack:
    from peft import inject_adapter_in_model

    config = registry.peft_config(registry.get(LORA), LAYER_NAMES, modules_to_save=None)
    stack = inject_adapter_in_model(config, stack)
    for name, p in stack.named_parameters():
        p.requires_grad_("lora_" in name)
    return stack


STACKS = {HAMMING: hamming_stack, LORA: lora_stack, DENSE: dense_stack}


def _perturb(model: nn.Module, scale: float = 0.02) -> None:
    """Move trainable parameters off their identity init (LoRA B = 0, S = 0) so the timed
    computation is the general one."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * scale)


def stack_steps(d: int, tokens: int, names=tuple(STACKS)) -> dict[str, Callable[[], None]]:
    """One training-step closure per contender, same frozen weights and same input."""
    base = Stack(d)
    x = torch.randn(tokens, d, generator=torch.Generator().manual_seed(2))
    fns = {}
    for name in names:
        model = STACKS[name](copy.deepcopy(base))
        _perturb(model)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)

        def step(model=model, opt=opt):
            loss = model(x).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        fns[name] = step
    return fns


def trainable(d: int, name: str) -> int:
    model = STACKS[name](Stack(d))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------- block building
def hamming_layer(d: int, orders=(1, 2), blocks: int = 3) -> qa.HammingAdapter:
    layer = qa.HammingAdapter(nn.Linear(d, d), orders=orders, blocks=blocks)
    _perturb(layer, 0.05)
    return layer


def build_fn(layer: qa.HammingAdapter) -> Callable[[], None]:
    """``blocks()`` forward + backward alone (upstream gradient of ones)."""
    p = layer.hamming["default"]

    def call():
        blocks = p.blocks(torch.float32)
        torch.autograd.backward(blocks, [torch.ones_like(b) for b in blocks])
        p.weight.grad = None
    return call


def split_step(layer: qa.HammingAdapter, tokens: int, seed: int = 3) -> Callable[[], tuple]:
    """A Hamming layer's adapter step split in three timed parts, same math as autograd's:
    build blocks (forward), apply to ``tokens`` rows and backpropagate to the blocks as
    leaves, then backpropagate the blocks' gradient through the build.  Returns
    ``(build_s, apply_s)`` with ``build_s`` = parts 1 + 3."""
    p = layer.hamming["default"]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, layer.base_layer.in_features, generator=gen)
    with torch.no_grad():
        y = F.linear(x, layer.base_layer.weight)
    g = torch.randn(y.shape, generator=gen)
    y.requires_grad_()

    def timed():
        t0 = time.perf_counter()
        blocks = p.blocks(torch.float32)
        t1 = time.perf_counter()
        leaves = [b.detach().requires_grad_() for b in blocks]
        apply_blocks(y, leaves, p.block_layout).backward(g)
        t2 = time.perf_counter()
        torch.autograd.backward(blocks, [b.grad for b in leaves])
        t3 = time.perf_counter()
        p.weight.grad = None
        y.grad = None
        return (t1 - t0) + (t3 - t2), t2 - t1

    def call():
        timed()  # same-size call first: the timed one does not inherit another size's caches
        return timed()
    return call


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log(y) against log(x)."""
    lx = [math.log(v) for v in xs]
    ly = [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den


def split_times(layer, token_list, reps: int = 7) -> dict[int, dict[str, float]]:
    """Per token count (interleaved): median and minimum build seconds, median apply seconds.

    The minimum is reported because a build of a few ms is often hit by a whole scheduler
    time slice (~4 ms) on a loaded machine; preemption only ever adds time, so the minimum
    over rounds estimates the cost of the computation itself."""
    calls = {t: split_step(layer, t) for t in token_list}
    parts = interleaved(calls, reps=reps, warmup=1).results
    return {t: {"build": statistics.median(s[0] for s in v), "build_min": min(s[0] for s in v),
                "apply": statistics.median(s[1] for s in v)} for t, v in parts.items()}
