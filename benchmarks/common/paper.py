r"""The paper's construction of Hamming-weight blocks, written the slow, literal way.

The paper builds the weight-``k`` block of an orthogonal ``Q`` (the ``k``-th compound matrix)
from minors: ``C_k(Q)[I, J] = det Q[I, J]`` for every pair of ``k``-subsets ``I, J`` of
``{0..n-1}``, listed by ``itertools.combinations``.  This module is the one place the
benchmarks write it down:

* :func:`minors_compound`: all minors of a batch of ``Q`` through one batched
  ``torch.linalg.det`` (the fastest form of this construction; the same numbers as the
  library's test reference :func:`qiadapters.compound_by_minors`, which loops in Python);
* :class:`DenseCompoundLinear`: an ``nn.Linear`` adapted the paper's way, the dense ``d x d``
  ``D`` rebuilt from minors on every forward and applied as ``y @ D``.

The library computes the same blocks without determinants (``qiadapters.compound``); the
circuits and speed benchmarks time it against this.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from qiadapters.adapters.hamming import plan_blocks


def subsets(n: int, k: int) -> torch.Tensor:
    """``(C(n, k), k)``: the ``k``-subsets of ``range(n)`` in ``itertools.combinations`` order."""
    return torch.tensor(list(itertools.combinations(range(n), k)), dtype=torch.long)


def minors_compound(Q: torch.Tensor, k: int, index: torch.Tensor | None = None) -> torch.Tensor:
    """``Q: (r, n, n) -> (r, C(n,k), C(n,k))``: the determinant of every ``k x k`` minor.

    ``index`` is :func:`subsets` ``(n, k)``, passed in by callers that build it once.
    """
    sub = subsets(Q.shape[-1], k) if index is None else index
    return torch.linalg.det(Q[:, sub[:, None, :, None], sub[None, :, None, :]])


class DenseCompoundLinear(nn.Module):
    r"""``y = (x W_0^T) D + b`` with ``D`` rebuilt densely from minors on every forward.

    ``D = ⊕_i [⊕_k C_k(Q_i) ⊕ I_pad] ⊕ I_tail`` with ``Q_i = (I - S_i)(I + S_i)^{-1}``
    (Cayley, ``S_i`` skew-symmetric from ``weight[i]``) and ``C_k`` from
    :func:`minors_compound`: the block layout of :class:`qiadapters.HammingAdapter`
    (:func:`~qiadapters.adapters.hamming.plan_blocks`), so both have the same parameters and
    the same function, but built and applied the paper's way.
    """

    def __init__(self, linear: nn.Linear, orders=(1, 2), blocks: int = 3):
        super().__init__()
        self.base_layer = linear.requires_grad_(False)
        self.layout = plan_blocks(linear.out_features, orders, blocks=blocks)
        n = self.layout.n
        self.weight = nn.Parameter(torch.zeros(self.layout.blocks, n * (n - 1) // 2))
        self.register_buffer("triu", torch.triu_indices(n, n, 1), persistent=False)
        for k in self.layout.orders:
            self.register_buffer(f"subsets_{k}", subsets(n, k), persistent=False)

    def cayley(self) -> torch.Tensor:
        """``(blocks, n, n)``: the orthogonal ``Q`` of each block."""
        r, n = self.layout.blocks, self.layout.n
        upper = self.weight.new_zeros(r, n, n)
        upper[:, self.triu[0], self.triu[1]] = self.weight
        S = upper - upper.transpose(-1, -2)
        eye = torch.eye(n, dtype=S.dtype, device=S.device)
        return torch.linalg.solve(eye + S, eye - S)

    def dense(self) -> torch.Tensor:
        """``(d, d)``: the whole ``D``, assembled with ``torch.block_diag``."""
        Q = self.cayley()
        lay = self.layout
        minors = {k: minors_compound(Q, k, getattr(self, f"subsets_{k}")) for k in lay.orders}
        parts = []
        eye_pad = torch.eye(lay.pad, dtype=Q.dtype, device=Q.device)
        for i in range(lay.blocks):
            parts += [minors[k][i] for k in lay.orders] + [eye_pad]
        parts.append(torch.eye(lay.tail, dtype=Q.dtype, device=Q.device))
        return torch.block_diag(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        y = F.linear(x, base.weight) @ self.dense().to(x.dtype)
        return y if base.bias is None else y + base.bias


def replace_linears(model: nn.Module, suffixes, orders=(1, 2), blocks: int = 3) -> int:
    """Swap every ``nn.Linear`` whose name ends in one of ``suffixes`` for a
    :class:`DenseCompoundLinear`; returns how many were swapped."""
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and n.split(".")[-1] in suffixes]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, DenseCompoundLinear(getattr(parent, child), orders, blocks))
    return len(names)
