r"""Circuits compiled into a batched PyTorch op: angles -> Hamming blocks.

:class:`CompiledCircuit` turns a symbolic :class:`~qiadapters.Circuit` into an ``nn.Module``
without parameters of its own.  It maps angles ``theta: (r, n_params)`` to all
``r x len(orders)`` Hamming blocks in one batched computation.  Routes (each exact; the tests
prove every one equal to :meth:`Circuit.hamming_block`):

* **weight-1 block** ``U: (r, n, n)``: every layer's ``n x n`` matrix is written by one scatter
  of the gates' own matrix entries (:func:`~qiadapters.circuits.tables.weight1_tables`), then
  the ``depth`` layer matrices are multiplied by a balanced product tree (``log2 depth``
  batched matmuls).
* **compound route** (every gate compound-exact: FBS gates on any wires, RBS gates on adjacent
  wires): ``block_k = compound(U, k)`` (:mod:`~qiadapters.circuits.compound`).
* **simulation route** (some RBS gate on non-adjacent wires, where the compound identity
  fails): each layer is a sparse operator on the weight-k basis with at most ``E`` entries per
  row (:func:`~qiadapters.circuits.tables.layer_tables`); ``block_k = L_D ... L_1`` by ``E``
  row gathers per layer.

The op holds every index table it reads (from :mod:`~qiadapters.circuits.cache`) as a
non-persistent buffer: it follows ``.to(device)``, adds nothing to ``state_dict``, and its
``forward`` looks nothing up, so it traces under ``torch.compile(fullgraph=True)``.  Applying
the blocks to activations is :func:`~qiadapters.circuits.apply.apply_blocks`.
"""
from __future__ import annotations

from math import comb

import torch
from torch import nn

from .. import checks
from . import cache
from .compound import compound, compounds, held_compound_tables, hold_compound_tables
from .tables import factor_values, gate_kinds, layer_tables, weight1_tables


def product_tree(mats: torch.Tensor) -> torch.Tensor:
    """``M_{D-1} ... M_1 M_0`` for ``mats: (..., D, n, n)`` by a balanced tree of matmuls."""
    while mats.shape[-3] > 1:
        if mats.shape[-3] % 2:
            eye = torch.eye(mats.shape[-1], dtype=mats.dtype, device=mats.device)
            mats = torch.cat([mats, eye.expand(*mats.shape[:-3], 1, *eye.shape)], -3)
        mats = mats[..., 1::2, :, :] @ mats[..., 0::2, :, :]
    return mats[..., 0, :, :]


class CompiledCircuit(cache.TableBuffers):
    """Batched Hamming blocks of ``blocks`` copies of one circuit.

    Args:
        circuit: the symbolic circuit.
        orders: Hamming weights to produce, distinct integers in ``0..n``.
        blocks: ``r``, the number of independent angle sets (diagonal blocks).
        dtype, device: of the angles :meth:`forward` accepts (default: torch's default dtype,
            CPU); the tables move with ``.to(device)``.

    ``forward(theta: (r, n_params)) -> [(r, C(n,k), C(n,k)) for k in orders]`` after checking
    ``theta``; :meth:`hamming_blocks` is the same computation for angles of any floating dtype.
    """

    def __init__(self, circuit, orders=(1, 2), blocks: int = 1, dtype=None, device=None):
        super().__init__()
        n = circuit.n_qubits
        self.circuit = circuit
        self.orders = checks.orders("orders", orders, n)
        self.blocks = checks.integer("blocks", blocks, low=1)
        self.dtype = dtype or torch.get_default_dtype()
        if not self.dtype.is_floating_point:
            raise TypeError(f"dtype={self.dtype} must be a floating dtype")
        self.compound_route = circuit.compound_exact
        self.kinds = gate_kinds(circuit)
        self.hold("w1", cache.tables(weight1_tables, circuit, device=device))
        if self.compound_route:
            hold_compound_tables(self, n, self.orders, device)
        else:
            for k in self.orders:
                if k >= 2:
                    self.hold(f"k{k}", cache.tables(layer_tables, circuit, k, device=device))

    # ------------------------------------------------------------------ checks
    def _check_theta(self, theta: torch.Tensor) -> torch.Tensor:
        want = (self.blocks, self.circuit.n_params)
        if not isinstance(theta, torch.Tensor):
            raise TypeError(f"theta must be a torch.Tensor of shape {want}, got "
                            f"{type(theta).__name__}")
        if theta.dtype != self.dtype:
            raise TypeError(f"theta has dtype {theta.dtype}; this op was compiled for "
                            f"{self.dtype}")
        if tuple(theta.shape) != want:
            raise ValueError(f"theta has shape {tuple(theta.shape)}; expected (blocks, n_params)"
                             f" = {want}")
        if theta.device != self.w1_0.device:
            raise ValueError(f"theta is on {theta.device}; this op's tables are on "
                             f"{self.w1_0.device} (move it with .to(device))")
        return theta

    # ------------------------------------------------------------------ routes
    def weight1(self, theta: torch.Tensor) -> torch.Tensor:
        """The weight-1 block ``U: (r, n, n)`` (layer matrices by one scatter, product tree)."""
        return self._weight1(factor_values(theta, self.kinds, max_parity=0))

    def _weight1(self, vals: torch.Tensor) -> torch.Tensor:
        """``U: (r, n, n)`` from the factor table ``vals: (r, F)`` of :func:`factor_values`."""
        n, depth = self.circuit.n_qubits, self.circuit.depth
        pos, fac, idle = self.tables("w1")
        flat = vals.new_zeros(vals.shape[0], depth * n * n)
        flat = flat.index_fill(-1, idle, 1.0)
        flat = flat.index_copy(-1, pos, vals.index_select(-1, fac))
        return product_tree(flat.unflatten(-1, (depth, n, n)))

    def _simulate(self, vals: torch.Tensor, k: int) -> torch.Tensor:
        """Weight-k block ``(r, m, m)`` as ``L_D ... L_1`` from the identity (row gathers)."""
        m = comb(self.circuit.n_qubits, k)
        block = torch.eye(m, dtype=vals.dtype, device=vals.device).expand(vals.shape[0], m, m)
        layers = self.tables(f"k{k}")
        for src, fac in zip(layers[0::2], layers[1::2]):
            coef = vals[:, fac].prod(-1)  # (r, m, E)
            block = sum(coef[:, :, e, None] * block.index_select(-2, src[:, e])
                        for e in range(src.shape[1]))
        return block

    def hamming_blocks(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """All Hamming blocks ``[(r, C(n,k), C(n,k)) for k in orders]`` for ``theta: (r, P)`` of
        any floating dtype on this op's device (no checks: :meth:`forward` checks first)."""
        if self.compound_route:
            return compounds(self.weight1(theta), self.orders, held_compound_tables(self))
        vals = factor_values(theta, self.kinds)
        U = self._weight1(vals)
        return [compound(U, k) if k <= 1 else self._simulate(vals, k) for k in self.orders]

    def forward(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """All Hamming blocks ``[(r, C(n,k), C(n,k)) for k in orders]`` for ``theta: (r, P)`` of
        this op's dtype and device."""
        return self.hamming_blocks(self._check_theta(theta))

    def extra_repr(self) -> str:
        route = "compound" if self.compound_route else "weight-k simulation"
        return (f"circuit={self.circuit!r}, orders={self.orders}, blocks={self.blocks}, "
                f"dtype={self.dtype}, route={route}")
