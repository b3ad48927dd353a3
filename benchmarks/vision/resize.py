r"""Start a finer-grid ViT from the 7x7 checkpoint: the ViT recipe for a new resolution.

A ViT trained at one patch grid moves to a finer one by keeping every transformer weight and
interpolating its position embeddings (Dosovitskiy et al. 2021, fine-tuning at higher
resolution).  Here the image stays 28x28 and the patches shrink from 4 to 2 pixels, so the
patch-embedding kernel changes shape too:

* kernel ``W4: (d, 1, 4, 4)`` -> ``W2: (d, 1, 2, 2)``, each entry the sum of one 2x2 block:
  ``W2[o, c, i, j] = Σ_{a,b<2} W4[o, c, 2i+a, 2j+b]``.  Then a 2-pixel patch ``p`` gives
  ``W2 · p = W4 · up(p)``, with ``up`` the nearest-neighbour 2x upsampling of ``p`` to 4x4:
  the finer model's tokens are the 7x7 model's tokens of the 56x56 upsampled image.
* position embeddings ``(1, 1 + 7·7, d)``: the CLS row is kept, the 7x7 grid rows are resized
  bicubically to 14x14 (``align_corners=False``).
* everything else (blocks, final norm, head) is copied.

:func:`resize_state` maps a state dict; :mod:`benchmarks.vision.pretrain` trains from it with
``--init 7x7``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PATCH_KERNEL = "vit.embeddings.patch_embeddings.projection.weight"
POSITIONS = "vit.embeddings.position_embeddings"


def sum_pool_kernel(weight: torch.Tensor, factor: int) -> torch.Tensor:
    """``(d, c, k, k) -> (d, c, k/factor, k/factor)``: each entry the sum of a
    ``factor x factor`` block (module docstring)."""
    d, c, k, k2 = weight.shape
    if k != k2 or k % factor:
        raise ValueError(f"weight.shape={tuple(weight.shape)} is not valid for factor={factor}; "
                         f"valid: a square kernel whose side divides by the factor")
    return weight.reshape(d, c, k // factor, factor, k // factor, factor).sum((3, 5))


def resize_positions(pos: torch.Tensor, grid: int, extra: int = 1) -> torch.Tensor:
    """``(1, extra + s*s, d) -> (1, extra + grid*grid, d)``: the ``extra`` leading rows
    kept, the ``s x s`` grid rows resized bicubically to ``grid x grid``."""
    lead, rest = pos[:, :extra], pos[:, extra:]
    s = round(rest.shape[1] ** 0.5)
    if s * s != rest.shape[1]:
        raise ValueError(f"position embeddings of {pos.shape[1]} rows with extra={extra} leave "
                         f"{rest.shape[1]}, not a square grid")
    d = rest.shape[-1]
    img = rest.reshape(1, s, s, d).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([lead, img.permute(0, 2, 3, 1).reshape(1, grid * grid, d)], dim=1)


def resize_state(state: dict, old_patch: int, new_patch: int, image_size: int) -> dict:
    """The state dict of a ViT with ``old_patch``-pixel patches, mapped to ``new_patch``
    (module docstring); ``old_patch`` must be a multiple of ``new_patch``."""
    if old_patch % new_patch:
        raise ValueError(f"new_patch={new_patch} is not valid; valid: a divisor of "
                         f"old_patch={old_patch}")
    out = dict(state)
    out[PATCH_KERNEL] = sum_pool_kernel(state[PATCH_KERNEL], old_patch // new_patch)
    out[POSITIONS] = resize_positions(state[POSITIONS], image_size // new_patch)
    return out
