"""The route-cost benchmark's measurement: forward + backward of the block route and the
mode-wise route of one case (:mod:`benchmarks.route_costs.run` says more)."""
from __future__ import annotations

from math import comb

import torch

from qiadapters.circuits import cache
from qiadapters.circuits.blockdiag import apply_block
from qiadapters.circuits.compound import compound
from qiadapters.circuits.modewise import apply_compound, mode_tables

GRID = [(2, n) for n in (6, 10, 15, 22, 31, 44)] + [(3, n) for n in (6, 8, 10)]
TOKENS = (16, 256, 2048)
BLOCKS = 3


def routes(n: int, k: int, tokens: int, device: str) -> dict:
    """Forward + backward of both routes on random ``U``, ``x`` and output gradient."""
    gen = torch.Generator().manual_seed(n * 10 + k)
    U = torch.randn(BLOCKS, n, n, generator=gen).to(device).requires_grad_()
    x = torch.randn(tokens, BLOCKS, comb(n, k), generator=gen).to(device).requires_grad_()
    g = torch.randn(x.shape, generator=gen).to(device)
    tables = cache.tables(mode_tables, n, k, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def block():
        apply_block(x, compound(U, k)).backward(g)
        sync()

    def mode():
        apply_compound(x, U, k, tables).backward(g)
        sync()
    return {"block": block, "mode": mode}
