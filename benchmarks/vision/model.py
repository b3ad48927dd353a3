"""The vision benchmark's backbones: small ViTs pretrained on Fashion-MNIST, one file each.

``transformers.ViTForImageClassification`` built from :data:`VIT` (28x28 one-channel images,
4-pixel patches: a 7x7 grid of 49 patch tokens plus CLS; width 128, depth 6, 4 heads, MLP
256; 805k parameters).  :mod:`benchmarks.vision.pretrain` trains it on Fashion-MNIST's
60,000 training images and writes :data:`CHECKPOINT` (safetensors, float32, about 3 MB) and
its SHA-256 in :data:`CHECKPOINT_SHA256`; every vision run starts from those weights, with a
fresh head for the task.

A second backbone has a finer grid (:data:`BACKBONES`, ``"14x14"``): the same ViT with
2-pixel patches, so a 14x14 grid of 196 patch tokens plus CLS (the grid of a ViT-B/16 at
224 pixels), in :data:`CHECKPOINT_14`; :mod:`benchmarks.vision.pretrain` makes it with
``--backbone 14x14`` (see its docstring for how it starts).

>>> model = load_backbone(num_labels=4, seed=0)           # doctest: +SKIP
>>> model(pixel_values=torch.zeros(2, 1, 28, 28)).logits.shape   # doctest: +SKIP
torch.Size([2, 4])
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
CHECKPOINT = CHECKPOINT_DIR / "vit-fashion-mnist.safetensors"
CHECKPOINT_SHA256 = CHECKPOINT_DIR / "vit-fashion-mnist.sha256"
#: The ViTConfig keyword arguments (the head's ``num_labels`` is set per task).
VIT = dict(image_size=28, patch_size=4, num_channels=1, hidden_size=128, num_hidden_layers=6,
           num_attention_heads=4, intermediate_size=256, hidden_dropout_prob=0.0,
           attention_probs_dropout_prob=0.0)
#: CLS + 7x7 patches: the physics adapters' grid and its one bypassing token.
GRID, EXTRA_TOKENS = (7, 7), 1
CHECKPOINT_14 = CHECKPOINT_DIR / "vit14-fashion-mnist.safetensors"


@dataclass(frozen=True)
class Backbone:
    """A pretrained ViT of the benchmark: its config changes to :data:`VIT`, its patch grid
    and its committed checkpoint (safetensors, with a ``.sha256`` beside it)."""
    name: str
    overrides: dict
    grid: tuple
    checkpoint: Path

    @property
    def digest(self) -> Path:
        return self.checkpoint.with_suffix(".sha256")

    @property
    def tokens(self) -> int:
        """Tokens the encoder sees: the grid's patches plus CLS."""
        return self.grid[0] * self.grid[1] + EXTRA_TOKENS


#: name -> :class:`Backbone`: 4-pixel patches (7x7 grid) and 2-pixel patches (14x14 grid).
BACKBONES: dict[str, Backbone] = {
    "7x7": Backbone("7x7", {}, GRID, CHECKPOINT),
    "14x14": Backbone("14x14", {"patch_size": 2}, (14, 14), CHECKPOINT_14),
}


def get_backbone(name: str) -> Backbone:
    """The :class:`Backbone` called ``name``; a clear error naming the valid ones."""
    if name not in BACKBONES:
        raise ValueError(f"backbone={name!r} is not valid; valid: {list(BACKBONES)}")
    return BACKBONES[name]


class CheckpointError(RuntimeError):
    """The pretrained checkpoint is missing or is not the committed one."""


def build_vit(num_labels: int, seed: int = 0, **overrides):
    """A randomly initialised ``ViTForImageClassification`` (``torch.manual_seed(seed)``)."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    return ViTForImageClassification(ViTConfig(**{**VIT, **overrides}, num_labels=num_labels))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_checkpoint(path: Path = CHECKPOINT, digest: Path = CHECKPOINT_SHA256) -> Path:
    """``path`` when it exists and matches the committed SHA-256, else a clear error."""
    if not Path(path).is_file():
        which = next((f" --backbone {b.name}" for b in BACKBONES.values()
                      if b.checkpoint == Path(path) and b.name != "7x7"), "")
        raise CheckpointError(f"{path} not found; make it with `python -m "
                              f"benchmarks.vision.pretrain{which}`")
    expected = Path(digest).read_text().split()[0] if Path(digest).is_file() else None
    if expected is not None and sha256(path) != expected:
        raise CheckpointError(f"{path} does not match {digest.name} (SHA-256 {expected}); "
                              f"it is not the committed checkpoint")
    return Path(path)


def load_backbone(num_labels: int, seed: int = 0, path: Path | None = None,
                  backbone: str = "7x7"):
    """The pretrained ViT ``backbone`` (a key of :data:`BACKBONES`) with a fresh
    ``num_labels``-way head initialised by ``seed`` (the encoder weights are the checkpoint's
    whatever the seed); ``path`` replaces the backbone's checkpoint.  The checkpoint must
    match the SHA-256 in the ``.sha256`` file beside it, when there is one."""
    from safetensors.torch import load_file

    spec = get_backbone(backbone)
    model = build_vit(num_labels, seed, **spec.overrides)
    path = spec.checkpoint if path is None else Path(path)
    state = load_file(str(check_checkpoint(path, Path(path).with_suffix(".sha256"))))
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
        raise CheckpointError(f"{path} does not fit backbone {backbone!r}: missing {missing}, "
                              f"unexpected {unexpected}")
    return model
