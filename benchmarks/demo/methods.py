"""The demo's runs: one registry method trained and scored; a qiadapters adapter saved,
reloaded onto a fresh model and scored again."""
from __future__ import annotations

import time

import torch

from ..common import registry
from ..common.data import NUM_CLASSES, load_minilm
from ..common.registry import head_parameters
from ..common.training import count_trainable, evaluate, train


def run_method(name: str, model: torch.nn.Module, data: dict, args, lr: float,
               aux_loss_fn=None) -> dict:
    trainable = count_trainable(model)
    head = head_parameters(model)
    print(f"\n== {name}: {trainable - head:,d} adapter + {head:,d} head parameters trainable, "
          f"{args.steps} steps x batch {args.batch_size}, lr {lr:g}", flush=True)
    metrics = train(model, data["train"], data["validation"], steps=args.steps,
                    batch_size=args.batch_size, lr=lr, warmup_frac=args.warmup_frac,
                    seed=args.seed, aux_loss_fn=aux_loss_fn, desc=name)
    t0 = time.perf_counter()
    test_accuracy = evaluate(model, data["test"])
    print(f"{name}: validation {metrics['val_accuracy']:.4f}, test {test_accuracy:.4f} "
          f"({time.perf_counter() - t0:.0f}s to score the test set)", flush=True)
    return {"method": name, "adapter_params": trainable - head, "head_params": head,
            "lr": lr, "test_accuracy": test_accuracy, "val_accuracy": metrics["val_accuracy"],
            "train_loss": metrics["train_loss"], "seconds_per_step": metrics["seconds_per_step"],
            "train_seconds": metrics["train_seconds"]}


def run_registry_method(name: str, data: dict, args) -> tuple[dict, dict | None]:
    """Train one registry method; a qiadapters adapter is then saved, reloaded onto a fresh
    model and scored again (the second value; None for other methods)."""
    import qiadapters

    base, _ = load_minilm(NUM_CLASSES, seed=args.seed)
    model, aux_loss_fn, _ = registry.build(name, base)
    lr = args.lrs.get(name, 1e-2)
    row = run_method(registry.get(name).label, model, data, args, lr, aux_loss_fn=aux_loss_fn)
    if not isinstance(model, qiadapters.AdapterModel):
        return row, None
    adapter_dir = args.out / name
    model.save_pretrained(adapter_dir)
    # A different random head, so the reload has to restore the trained one.
    fresh, _ = load_minilm(NUM_CLASSES, seed=args.seed + 1)
    reloaded = qiadapters.AdapterModel.from_pretrained(fresh, adapter_dir)
    reloaded_accuracy = evaluate(reloaded, data["test"])
    probe = {k: v[:64] for k, v in data["test"].items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        max_logit_diff = (model(**probe).logits - reloaded(**probe).logits).abs().max().item()
    saved_bytes = sum(f.stat().st_size for f in adapter_dir.rglob("*") if f.is_file())
    print(f"saved to {adapter_dir} ({saved_bytes / 1024:.0f} KiB); reloaded onto a fresh "
          f"model: test {reloaded_accuracy:.4f} (max |logit difference| {max_logit_diff:.2e})",
          flush=True)
    return row, {"directory": str(adapter_dir), "bytes": saved_bytes,
                 "test_accuracy": reloaded_accuracy, "max_logit_diff": max_logit_diff}
