"""A plain-PyTorch training loop for the demo and every benchmark, single process or DDP.

Data is a dict of tensors sharing their first dimension (``N``), one of them ``labels: (N,)``;
the rest are passed to the model as keyword arguments (``model(input_ids=..., ...)``). The
model returns logits ``(B, C)``, or an object with ``.logits`` (Hugging Face), or a tuple whose
first element is the logits. The loss is cross-entropy plus an optional auxiliary scalar.

Sampling is defined on the *global* batch: a seeded stream of epoch permutations is cut into
global batches of ``batch_size``. Under ``torchrun --nproc_per_node=W`` (gloo backend), rank
``r`` takes the ``r``-th of ``W`` equal slices of each global batch and DDP averages the
gradients, so the update equals a single-process step on the same global batch (up to float
summation order). Nothing here depends on qiadapters: any ``nn.Module`` trains.
"""
from __future__ import annotations

import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .constants import HEAD


def maybe_init_distributed(backend: str = "gloo") -> bool:
    """Join the process group described by torchrun's environment, if any.

    Returns True when running distributed (``WORLD_SIZE > 1``). A group that is already
    initialised is reused.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group(backend=backend)
    return True


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0, or when not distributed."""
    return _world()[0] == 0


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimiser updates: those with ``requires_grad``."""
    return [p for p in model.parameters() if p.requires_grad]


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in trainable_parameters(model))


def warmup_cosine(steps: int, warmup_frac: float):
    """LR multiplier for step ``s`` (0-based): linear warm-up over
    ``w = round(warmup_frac * steps)`` steps reaching 1 at step ``w - 1``, then a cosine decay
    from 1 towards 0 over the remaining steps."""
    warmup = int(round(warmup_frac * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def global_batches(num_examples: int, batch_size: int, steps: int, seed: int):
    """Yield ``steps`` index tensors of length ``batch_size``: consecutive slices of a stream of
    seeded random permutations of ``range(num_examples)`` (a batch may straddle two epochs)."""
    gen = torch.Generator().manual_seed(seed)
    stream = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while stream.numel() < batch_size:
            stream = torch.cat([stream, torch.randperm(num_examples, generator=gen)])
        yield stream[:batch_size]
        stream = stream[batch_size:]


def logits_of(output) -> torch.Tensor:
    """Logits from a model output: a tensor, an object with ``.logits``, or a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def _split_batch(data: dict[str, torch.Tensor], index: torch.Tensor, device=None):
    inputs = {k: v[index].to(device) for k, v in data.items() if k != "labels"}
    return inputs, data["labels"][index].to(device)


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def _check_data(data: dict[str, torch.Tensor], name: str) -> int:
    if "labels" not in data:
        raise KeyError(f"{name} must contain a 'labels' tensor; has {sorted(data)}")
    sizes = {k: v.shape[0] for k, v in data.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{name} tensors disagree on the number of examples: {sizes}")
    return sizes["labels"]


def _show_progress(progress: bool) -> bool:
    return progress and is_main_process() and sys.stderr.isatty()


@torch.no_grad()
def evaluate(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int = 256) -> float:
    """Accuracy of ``argmax(logits)`` against ``data["labels"]``.

    Under DDP every rank scores a contiguous shard and the counts are summed, so all ranks must
    call it and all get the same number. The model's train/eval mode is restored afterwards.
    """
    n = _check_data(data, "data")
    rank, world = _world()
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    lo, hi = n * rank // world, n * (rank + 1) // world
    device = _device_of(module)
    was_training = module.training
    module.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        for start in range(lo, hi, batch_size):
            index = torch.arange(start, min(start + batch_size, hi))
            inputs, labels = _split_batch(data, index, device)
            pred = logits_of(module(**inputs)).argmax(dim=-1)
            correct += (pred == labels).sum()
    finally:
        module.train(was_training)
    if world > 1:
        dist.all_reduce(correct)
    return correct.item() / n


def _lr_groups(model: nn.Module, lr: float, adapter_lr_scale: float,
               scale_lr_scale: float | None = None) -> list:
    """AdamW parameter groups: the head at ``lr``, the other trainable parameters at
    ``lr * adapter_lr_scale``, and, when ``scale_lr_scale`` is given, the Hamming adapters'
    learned scales (:func:`qiadapters.optimizers.hamming_parameters`) at
    ``lr * scale_lr_scale`` (one group when every rate is ``lr``).  Unlike
    :func:`qiadapters.optimizers.hamming_param_groups`, ``adapter_lr_scale`` applies to any
    adapter (peft's too), not only Hamming angles."""
    from qiadapters.optimizers import hamming_parameters

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    scales = ({id(p) for p in hamming_parameters(model)[1]} if scale_lr_scale is not None
              else set())
    if scale_lr_scale is not None and not scales:
        raise ValueError(f"scale_lr_scale={scale_lr_scale!r} is set but the model has no "
                         "learned scale (a Hamming adapter with scale=True)")
    if adapter_lr_scale == 1 and scale_lr_scale in (None, 1):
        return [{"params": [p for _, p in named]}]
    head = [p for n, p in named if f".{HEAD}." in f".{n}"]
    rest = [p for n, p in named if f".{HEAD}." not in f".{n}" and id(p) not in scales]
    groups = [{"params": head, "lr": lr}, {"params": rest, "lr": lr * adapter_lr_scale}]
    if scales:
        groups.append({"params": [p for _, p in named if id(p) in scales],
                       "lr": lr * scale_lr_scale})
    return [g for g in groups if g["params"]]


def train(model: nn.Module, train_data: dict[str, torch.Tensor],
          val_data: dict[str, torch.Tensor] | None = None, steps: int = 300,
          batch_size: int = 32, lr: float = 1e-3, warmup_frac: float = 0.1, seed: int = 0,
          aux_loss_fn=None, progress: bool = True, weight_decay: float = 0.0,
          max_grad_norm: float | None = None, eval_batch_size: int = 256,
          eval_every: int | None = None, find_unused_parameters: bool = False,
          desc: str = "train", adapter_lr_scale: float = 1.0,
          scale_lr_scale: float | None = None, monitor=None,
          monitor_every: int | None = None) -> dict:
    """Train ``model`` in place for ``steps`` optimiser steps; return metrics.

    AdamW over the parameters with ``requires_grad`` (``weight_decay`` 0 by default), linear
    warm-up for ``warmup_frac`` of the steps then cosine decay. ``aux_loss_fn()`` (e.g.
    ``adapter_model.aux_loss``), if given, returns a scalar added to the cross-entropy; under
    DDP each rank adds its own and the gradients are averaged. ``max_grad_norm`` clips the
    (averaged) gradient norm. ``eval_every`` records validation accuracy during training.
    ``progress``: a tqdm bar on rank 0 when stderr is a terminal, otherwise a printed line
    every tenth of the run; False for silence.  ``adapter_lr_scale``: every trainable
    parameter outside the classification head (:data:`~benchmarks.common.constants.HEAD`) trains at
    ``lr * adapter_lr_scale``, the head at ``lr`` (one lr for all when 1);
    ``scale_lr_scale``: the Hamming adapters' learned scales at ``lr * scale_lr_scale``
    instead (None: with the rest of the adapter).  ``monitor(step)``,
    if given, returns a JSON-able dict describing the model after ``step`` optimiser steps
    (e.g. its router weights); it is called before the first step, every ``monitor_every``
    steps (default: a tenth of the run) and after the last, and its dicts are returned in
    ``history`` as ``{"step": step, **monitor(step)}``.

    Runs under ``torchrun`` with DDP on gloo: the process group is joined from the
    environment, ``batch_size`` is the global batch and must divide by the world size.
    ``find_unused_parameters`` is passed to DDP; leave it False unless some trainable
    parameter gets no gradient in a step (e.g. routed experts).

    Returns a dict: ``steps``, ``batch_size``, ``world_size``, ``lr``, ``trainable_params``,
    ``losses`` (per-step cross-entropy averaged over ranks), ``aux_losses``, ``train_loss``
    (mean of the last 10% of steps), ``val_accuracy`` (None without ``val_data``),
    ``val_history`` (``[(step, accuracy)]``), ``history`` (the monitor's dicts, ``[]``
    without one), ``step_times`` (seconds of each step, this
    process), ``seconds_per_step`` (mean), ``median_seconds_per_step``, ``train_seconds``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    n = _check_data(train_data, "train_data")
    if val_data is not None:
        _check_data(val_data, "val_data")
    maybe_init_distributed()
    rank, world = _world()
    if batch_size % world:
        raise ValueError(f"global batch_size {batch_size} must divide by the world size {world}")
    local = batch_size // world

    params = trainable_parameters(model)
    if not params:
        raise ValueError("the model has no parameters with requires_grad=True")
    device = params[0].device  # batches are moved to the model; data may stay on the CPU
    # Dropout masks differ per rank, as they would across the slices of one large batch.
    torch.manual_seed(seed + rank)
    runner = model
    if world > 1:
        runner = nn.parallel.DistributedDataParallel(
            model, find_unused_parameters=find_unused_parameters)
    optimizer = torch.optim.AdamW(_lr_groups(model, lr, adapter_lr_scale, scale_lr_scale),
                                  lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, warmup_frac))

    from tqdm.auto import tqdm

    show_bar = _show_progress(progress)
    bar = tqdm(total=steps, desc=desc, disable=not show_bar, leave=True, dynamic_ncols=True)
    # Without a terminal (logs, CI) a line every tenth of the run replaces the bar.
    log_every = max(1, steps // 10) if progress and is_main_process() and not show_bar else 0
    losses, aux_losses, step_times, val_history, history = [], [], [], [], []
    every = max(1, monitor_every or steps // 10)
    if monitor is not None:
        history.append({"step": 0, **monitor(0)})
    model.train()
    started = time.perf_counter()
    for step, index in enumerate(global_batches(n, batch_size, steps, seed)):
        t0 = time.perf_counter()
        inputs, labels = _split_batch(train_data, index[rank * local:(rank + 1) * local],
                                      device)
        loss = F.cross_entropy(logits_of(runner(**inputs)), labels)
        total = loss
        if aux_loss_fn is not None:
            aux = aux_loss_fn()
            total = loss + aux
            aux_losses.append(float(aux.detach()))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        scheduler.step()
        step_times.append(time.perf_counter() - t0)
        losses.append(loss.item())
        bar.update(1)
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            print(f"{desc}: step {step + 1}/{steps}  loss {losses[-1]:.3f}  "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
        if val_data is not None and eval_every and (step + 1) % eval_every == 0 \
                and step + 1 < steps:
            val_history.append((step + 1, evaluate(model, val_data, eval_batch_size)))
        if monitor is not None and ((step + 1) % every == 0 or step + 1 == steps):
            history.append({"step": step + 1, **monitor(step + 1)})
    bar.close()
    train_seconds = time.perf_counter() - started

    if world > 1:
        # Per-step loss of the global batch: mean of the ranks' (equal-sized) slice losses.
        mean_losses = torch.tensor(losses, dtype=torch.float64)
        dist.all_reduce(mean_losses)
        losses = (mean_losses / world).tolist()
    val_accuracy = None
    if val_data is not None:
        val_accuracy = evaluate(model, val_data, eval_batch_size)
        val_history.append((steps, val_accuracy))
    tail = losses[-max(1, steps // 10):]
    sorted_times = sorted(step_times)
    return {
        "steps": steps,
        "batch_size": batch_size,
        "world_size": world,
        "lr": lr,
        "trainable_params": sum(p.numel() for p in params),
        "losses": losses,
        "aux_losses": aux_losses,
        "train_loss": sum(tail) / len(tail),
        "val_accuracy": val_accuracy,
        "val_history": val_history,
        "history": history,
        "step_times": step_times,
        "seconds_per_step": sum(step_times) / len(step_times),
        "median_seconds_per_step": sorted_times[len(sorted_times) // 2],
        "train_seconds": train_seconds,
    }
