"""The physics benchmark's transform micro-benchmark: the cached-basis DCT-II the adapters use
against an FFT-based one."""
from __future__ import annotations

import math

import torch

import physics

from ..common.timing import interleaved
from .step_time import BATCH, RANK


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
