"""Pretrain the vision benchmark's ViT on Fashion-MNIST's 60,000 training images.

    python -m benchmarks.vision.pretrain            # writes benchmarks/checkpoints/, ~15 min
    python -m benchmarks.vision.pretrain --backbone 14x14 --init 7x7 --epochs 0.5 --threads 1

:data:`benchmarks.vision.model.VIT` from ``torch.manual_seed(0)``, plain supervised
classification of the 10 items: AdamW (lr 1e-3, weight decay 0.05), batch 128, linear
warm-up over 5% of the steps then cosine, ``--epochs`` (2) passes over the data in seeded order
(:func:`benchmarks.common.training.train`), no augmentation.  Writes

* ``vit-fashion-mnist.safetensors``: the weights (float32, head included);
* ``vit-fashion-mnist.sha256``: its SHA-256 (every vision run checks it);
* ``vit-fashion-mnist.json``: the settings, the test accuracy on the 10,000 Fashion-MNIST
  test images, the wall time, the torch threads and the machine's load averages.

``--backbone 14x14`` trains the 2-pixel-patch ViT (:data:`benchmarks.vision.model.BACKBONES`)
into ``vit14-fashion-mnist.*``; ``--init 7x7`` starts it from the committed 7x7 checkpoint
resized to the finer grid (:mod:`benchmarks.vision.resize`: the ViT recipe for a new
resolution; a 14x14 step costs ~5x a 7x7 one, so it continues training rather than starting
over), ``--init random`` from ``torch.manual_seed(0)``.

The test images are only scored here; the downstream tasks draw from them, never training
on what the backbone was trained on.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

from ..common import cli
from ..common.training import evaluate, train
from .data import fashion_mnist, normalise
from .model import BACKBONES, VIT, build_vit, get_backbone, sha256


def parse_args(argv=None):
    p = cli.parser(__doc__, prog="python -m benchmarks.vision.pretrain")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    p.add_argument("--backbone", default="7x7", choices=list(BACKBONES))
    p.add_argument("--init", default="random", choices=["random", "7x7"],
                   help="random weights, or the committed 7x7 checkpoint resized")
    p.add_argument("--out", default=None,
                   help="the safetensors file to write (default: the backbone's checkpoint)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from safetensors.torch import save_file

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_x, train_y = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    data = {"pixel_values": normalise(train_x), "labels": torch.as_tensor(train_y)}
    test = {"pixel_values": normalise(test_x), "labels": torch.as_tensor(test_y)}
    steps = int(round(args.epochs * len(train_y) / args.batch_size))
    spec = get_backbone(args.backbone)
    model = build_vit(num_labels=10, seed=0, **spec.overrides)
    if args.init == "7x7":
        from safetensors.torch import load_file

        from .model import check_checkpoint
        from .resize import resize_state

        small = BACKBONES["7x7"]
        state = load_file(str(check_checkpoint(small.checkpoint, small.digest)))
        patch = {**VIT, **spec.overrides}["patch_size"]
        model.load_state_dict(resize_state(state, VIT["patch_size"], patch, VIT["image_size"]))
        init_accuracy = evaluate(model, test)
        print(f"start: the resized 7x7 checkpoint, test accuracy {100 * init_accuracy:.2f}%",
              flush=True)
    load_before = os.getloadavg()
    started = time.perf_counter()
    metrics = train(model, data, steps=steps, batch_size=args.batch_size, lr=args.lr,
                    warmup_frac=0.05, weight_decay=args.weight_decay, seed=0,
                    desc="pretrain ViT on Fashion-MNIST")
    accuracy = evaluate(model, test)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()

    out = os.path.abspath(args.out or spec.checkpoint)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, out, metadata={"format": "pt"})
    digest = sha256(out)
    if out == str(spec.checkpoint):
        spec.digest.write_text(f"{digest}  {spec.checkpoint.name}\n")
    record = {
        "vit_config": {**VIT, **spec.overrides}, "backbone": spec.name, "init": args.init,
        **({"init_test_accuracy": init_accuracy} if args.init == "7x7" else {}),
        "num_labels": 10, "seed": 0, "epochs": args.epochs,
        "steps": steps, "batch_size": args.batch_size, "lr": args.lr,
        "weight_decay": args.weight_decay, "warmup_frac": 0.05,
        "train_images": len(train_y), "test_accuracy": accuracy,
        "final_train_loss": metrics["train_loss"], "wall_seconds": round(wall, 1),
        "train_seconds": round(metrics["train_seconds"], 1),
        "median_seconds_per_step": metrics["median_seconds_per_step"],
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
        "sha256": digest, "bytes": os.path.getsize(out), "torch": torch.__version__,
        "python": platform.python_version(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"test accuracy {100 * accuracy:.2f}% after {steps} steps; {wall:.0f} s wall on "
          f"{torch.get_num_threads()} threads, load {load_before} -> {load_after}; {out} "
          f"({record['bytes']:,d} bytes, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
