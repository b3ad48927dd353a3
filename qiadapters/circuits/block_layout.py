r"""The geometry of a Hamming adapter's block-diagonal map ``D`` (``docs/conventions.md``).

.. math:: D = \bigoplus_{i<r} \Big[ \bigoplus_{k \in K} B_{i,k} \oplus I_{\text{pad}} \Big]
              \oplus I_{\text{tail}},

``r`` blocks of size ``b = sum_k C(n,k) + pad`` each, then an identity tail of
``d - r b`` dimensions.  ``B_{i,k}: (C(n,k), C(n,k))`` is the weight-k block of block ``i``.
Sizes only: what the blocks are is :mod:`.operands`, applying them :mod:`.apply`.  Which
layout a layer of ``d`` features gets is ``qiadapters.adapters.hamming.plan_blocks``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import checks
from .basis import block_dim

__all__ = ["BlockLayout"]


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
        # the derived sizes, computed once (read on every forward; plain attributes, which
        # torch.compile reads as constants); not fields: equality, hash and repr ignore them
        sizes = tuple(block_dim(self.n, k) for k in self.orders)
        size = sum(sizes) + self.pad
        object.__setattr__(self, "_derived", (sizes, sum(sizes), size,
                                              self.dim - self.blocks * size))
        if self.blocks * self.block_size > self.dim:
            raise ValueError(f"blocks={self.blocks} of size {self.block_size} need "
                             f"{self.blocks * self.block_size} dims but dim={self.dim}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """``C(n, k)`` for each order."""
        return self._derived[0]

    @property
    def active(self) -> int:
        """Dims per block acted on by Hamming blocks: ``sum_k C(n,k)``."""
        return self._derived[1]

    @property
    def block_size(self) -> int:
        return self._derived[2]

    @property
    def tail(self) -> int:
        """Identity dims after the last block."""
        return self._derived[3]
