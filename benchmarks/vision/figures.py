"""What each physics prior does to a real feature map: ``docs/images/vision/priors.png``.

    python -m benchmarks.vision.figures        # needs Fashion-MNIST and the checkpoint, ~5 s

For a few Fashion-MNIST test images, the pretrained ViT (:mod:`benchmarks.vision.model`) is
run up to its first attention block; the block's input (after ``layernorm_before``) is what
an adapter placed before attention reads: 49 patch tokens on the 7x7 grid plus CLS, 128
channels.  One channel (the one varying most over that image's grid) is shown before and
after the exact solvers the adapter uses, at the adapter's initial constants (Neumann
boundary): heat ``κ t = 1``, wave ``c t = 1`` with zero initial velocity, screened Poisson
``(-Δ + 0.1) u = 0.1 f`` (``poisson_gain = poisson_eps = 0.1``).  In the adapter the
operator acts on the ``rank`` down-projected channels instead of a raw one.

It lives here rather than in ``docs/figures.py`` because it needs the Fashion-MNIST package
and the pretrained checkpoint, which the documentation tests do not have.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from physics import solvers

from .data import fashion_mnist, normalise
from .model import EXTRA_TOKENS, GRID, load_backbone

OUT = Path(__file__).resolve().parents[2] / "docs" / "images" / "vision" / "priors.png"
ITEMS = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle boot")
#: Indices of the Fashion-MNIST test images drawn (a boot, a trouser, a bag).
IMAGES = (0, 2, 30)


def feature_maps(images: torch.Tensor) -> torch.Tensor:
    """The input of the first attention block on the patch grid: ``(n, 7, 7, 128)``."""
    model = load_backbone(num_labels=10).eval()
    seen = {}
    hook = model.vit.layers[0].attention.register_forward_pre_hook(
        lambda module, args: seen.__setitem__("x", args[0]))
    with torch.no_grad():
        model(pixel_values=images)
    hook.remove()
    x = seen["x"][:, EXTRA_TOKENS:]
    return x.reshape(x.shape[0], *GRID, x.shape[-1]).double()


def priors(u: torch.Tensor) -> dict[str, torch.Tensor]:
    """``u: (1, 7, 7, 1)`` through each prior at the adapter's initial constants."""
    return {"heat, κt = 1": solvers.heat(u, 1.0, 1.0),
            "wave, ct = 1, v0 = 0": solvers.wave(u, torch.zeros_like(u), 1.0, 1.0),
            "Poisson, (-Δ+0.1)u = 0.1 f": 0.1 * solvers.poisson(u, zero_mode="screened",
                                                                  eps=0.1)}


def draw(path: Path = OUT) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images, labels = fashion_mnist("test")
    picked = torch.as_tensor(images[list(IMAGES)])
    maps = feature_maps(normalise(picked.numpy()))
    fig, axes = plt.subplots(len(IMAGES), 5, figsize=(11, 2.3 * len(IMAGES)))
    for row, (img, fmap, index) in enumerate(zip(picked, maps, IMAGES)):
        channel = int(fmap.reshape(-1, fmap.shape[-1]).std(0).argmax())
        u = fmap[None, :, :, channel:channel + 1]
        panels = [(f"image {index} ({ITEMS[labels[index]]})", img.numpy(), "gray"),
                  (f"feature map, channel {channel}", u[0, :, :, 0].numpy(), "RdBu_r")]
        panels += [(title, v[0, :, :, 0].numpy(), "RdBu_r") for title, v in priors(u).items()]
        for ax, (title, a, cmap) in zip(axes[row], panels):
            lim = abs(a).max()
            ax.imshow(a, cmap=cmap, **({} if cmap == "gray" else {"vmin": -lim, "vmax": lim}))
            ax.set_title(title, fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("input of the first attention block of the Fashion-MNIST ViT on its 7x7 patch "
                 "grid (CLS left out), before and after each prior; colour scale per panel",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(draw())
    sys.exit(0)
