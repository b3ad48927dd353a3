r"""Block-diagonal orthogonal maps built from Hamming blocks, applied without a dense matrix.

Layout of the ``d x d`` map ``D`` used by every Hamming adapter (``docs/conventions.md``):

.. math:: D = \bigoplus_{i<r} \Big[ \bigoplus_{k \in K} B_{i,k} \oplus I_{\text{pad}} \Big]
              \oplus I_{\text{tail}},

``r`` blocks of size ``b = sum_k C(n,k) + pad`` each, then an identity tail of
``d - r b`` dimensions.  ``B_{i,k}: (C(n,k), C(n,k))`` is the weight-k block of block ``i``.

Row-vector convention: :func:`apply_blocks` returns ``x D`` (``(..., d)`` -> ``(..., d)``),
:func:`apply_blocks` with ``transpose=True`` returns ``x D^T``.  Cost
``O(tokens * r * sum_k C(n,k)^2)``; the dense ``d x d`` matrix is never formed
(:func:`dense` builds it for tests and merging only).

:func:`apply_blocks` is the one way ``D`` is applied.  It splits ``x`` into the per-order
pieces ``(..., r, C(n,k))``, applies one batched product per order and passes the pad and the
tail through.  A later route that applies a Hamming block without building it (gate by gate,
or mode-wise: ``C_k(U)`` acting on the antisymmetric k-tensor, ``v -> U Omega(v) U^T`` for
``k = 2``) plugs in as another form of :func:`apply_block`, the per-order product, and takes
whatever it needs (the angles, ``U``) in place of the built block: the splitting, the layout
and the callers stay as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .. import checks
from .basis import block_dim


@dataclass(frozen=True)
class BlockLayout:
    """Sizes of the block-diagonal map: ``n`` qubits, ``orders``, ``blocks`` = r, ``pad``
    identity dims per block, ``dim`` = d in total (the identity tail is what is left)."""

    n: int
    orders: tuple[int, ...]
    blocks: int
    pad: int
    dim: int

    def __post_init__(self):
        checks.integer("blocks", self.blocks, low=1)
        checks.integer("pad", self.pad, low=0)
        if self.blocks * self.block_size > self.dim:
            raise ValueError(f"blocks={self.blocks} of size {self.block_size} need "
                             f"{self.blocks * self.block_size} dims but dim={self.dim}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """``C(n, k)`` for each order."""
        return tuple(block_dim(self.n, k) for k in self.orders)

    @property
    def active(self) -> int:
        """Dims per block acted on by Hamming blocks: ``sum_k C(n,k)``."""
        return sum(self.sizes)

    @property
    def block_size(self) -> int:
        return self.active + self.pad

    @property
    def tail(self) -> int:
        """Identity dims after the last block."""
        return self.dim - self.blocks * self.block_size


def apply_block(x: torch.Tensor, B: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``x B`` (or ``x B^T``) per diagonal block: ``x: (..., r, m)``, ``B: (r, m, m)`` ->
    ``(..., r, m)``.  The per-order product of :func:`apply_blocks`, and the seam where a
    route that does not build ``B`` plugs in (see the module docstring)."""
    eq = "...rm,rnm->...rn" if transpose else "...rm,rmn->...rn"
    return torch.einsum(eq, x, B.to(x.dtype))


def apply_blocks(x: torch.Tensor, blocks: Sequence[torch.Tensor], layout: BlockLayout,
                 transpose: bool = False) -> torch.Tensor:
    """``x D`` (or ``x D^T``) for ``x: (..., d)`` and ``blocks[o]: (r, C(n,k_o), C(n,k_o))``.

    Each order is one batched product over the r blocks (:func:`apply_block`); the identity
    pad and tail pass through untouched.
    """
    r, b = layout.blocks, layout.block_size
    head, tail = x[..., : r * b], x[..., r * b:]
    head = head.unflatten(-1, (r, b))
    pieces = head.split(list(layout.sizes) + [layout.pad], dim=-1)
    out = [apply_block(p, B, transpose) for p, B in zip(pieces, blocks)]
    if layout.pad:
        out.append(pieces[-1])
    out = torch.cat(out, -1).flatten(-2)
    return torch.cat([out, tail], -1) if layout.tail else out  # one copy fewer without a tail


def dense(blocks: Sequence[torch.Tensor], layout: BlockLayout) -> torch.Tensor:
    """The dense ``d x d`` matrix ``D`` (for merging weights and for tests)."""
    ref = blocks[0]
    parts = []
    for i in range(layout.blocks):
        parts += [B[i] for B in blocks]
        parts.append(torch.eye(layout.pad, dtype=ref.dtype, device=ref.device))
    parts.append(torch.eye(layout.tail, dtype=ref.dtype, device=ref.device))
    return torch.block_diag(*parts)
