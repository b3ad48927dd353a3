"""Token grids: map transformer tokens ``(batch, tokens, C)`` to ``(batch, *grid, C)`` and back.

A grid is a tuple of positive sizes: ``(L,)`` for a sequence, ``(H, W)`` for a patch grid
(row-major: token ``e + i*W + j`` sits at row ``i``, column ``j``).  The first
``extra_tokens`` tokens (CLS, registers) are not on the grid: :func:`to_grid` returns them
separately and :func:`from_grid` puts them back in front.

Grid rule for ``grid="auto"`` (with ``n = tokens - extra_tokens``): a square ``(s, s)`` grid
if ``n = s²`` with ``s >= 2``, otherwise the sequence ``(n,)``.  Text models should pass
``grid="sequence"`` (always ``(n,)``), since a sentence of 16 or 64 tokens is a perfect square
too.  A fixed grid such as ``(14, 14)`` or ``(128,)`` requires ``n`` to equal its product.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import torch

from qiadapters import checks

__all__ = ["GridSpec", "GRID_MODES", "check_grid", "infer_grid", "to_grid", "from_grid"]

GridSpec = Union[str, Sequence[int]]

#: named grid rules; a tuple of sizes is the third option.
GRID_MODES = {"auto": "square (s, s) if the token count is s*s with s >= 2, else 1D",
              "sequence": "always 1D (n,)"}


def check_grid(grid: GridSpec) -> str | tuple[int, ...]:
    """Validate a grid spec: ``"auto"``, ``"sequence"`` or 1 or 2 positive sizes."""
    if isinstance(grid, str):
        if grid not in GRID_MODES:
            raise ValueError(f"grid={grid!r} is not valid; choose one of {list(GRID_MODES)} "
                             f"or a tuple (L,) / (H, W) of positive integers")
        return grid
    try:
        sizes = tuple(grid)
    except TypeError:
        raise ValueError(f"grid={grid!r} is not valid; choose one of {list(GRID_MODES)} "
                         f"or a tuple (L,) / (H, W) of positive integers") from None
    if len(sizes) not in (1, 2):
        raise ValueError(f"grid={grid!r} has {len(sizes)} sizes; valid: (L,) or (H, W)")
    return tuple(checks.integer("grid", s, low=1) for s in sizes)


def infer_grid(tokens: int, grid: GridSpec = "auto", extra_tokens: int = 0) -> tuple[int, ...]:
    """Grid shape for ``tokens`` tokens of which the first ``extra_tokens`` bypass the grid."""
    grid = check_grid(grid)
    extra_tokens = checks.integer("extra_tokens", extra_tokens, low=0)
    n = tokens - extra_tokens
    if n < 1:
        raise ValueError(f"tokens={tokens} with extra_tokens={extra_tokens} leaves {n} grid "
                         f"tokens; valid: tokens >= extra_tokens + 1")
    if grid == "sequence":
        return (n,)
    if grid == "auto":
        # math.isqrt cannot take torch.compile's symbolic sizes; the float root can, corrected
        # to the exact integer root
        s = int(n ** 0.5)
        s = s + 1 if (s + 1) * (s + 1) <= n else s - 1 if s * s > n else s
        return (s, s) if s >= 2 and s * s == n else (n,)
    if math.prod(grid) != n:
        raise ValueError(f"tokens={tokens} with extra_tokens={extra_tokens} gives {n} grid "
                         f"tokens, which does not fit grid={grid} ({math.prod(grid)} tokens); "
                         f"valid: tokens = {extra_tokens + math.prod(grid)}")
    return grid


def to_grid(x: torch.Tensor, grid: GridSpec = "auto",
            extra_tokens: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``x: (batch, tokens, C)`` into ``extra: (batch, e, C)`` and ``(batch, *grid, C)``."""
    if x.ndim != 3:
        raise ValueError(f"x.shape={tuple(x.shape)} is not valid; valid: (batch, tokens, C)")
    shape = infer_grid(x.shape[1], grid, extra_tokens)
    extra, rest = x[:, :extra_tokens], x[:, extra_tokens:]
    return extra, rest.reshape(x.shape[0], *shape, x.shape[2])


def from_grid(extra: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_grid`: ``(batch, e + prod(grid), C)`` with the extra tokens first."""
    flat = u.reshape(u.shape[0], -1, u.shape[-1])
    return flat if extra.shape[1] == 0 else torch.cat([extra, flat], dim=1)
