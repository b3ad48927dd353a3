r"""Circuits compiled into batched PyTorch ops.

:class:`CompiledCircuit` turns a symbolic :class:`~qiadapters.Circuit` into an ``nn.Module``
without parameters of its own: it holds index buffers built once at compile time and maps
angles ``theta: (r, n_params)`` to all ``r x len(orders)`` Hamming blocks in one batched
computation, or applies the block-diagonal map to activations directly.

Routes (each exact; the tests prove every one equal to :meth:`Circuit.hamming_block`):

* **weight-1 block** ``U: (r, n, n)``: every layer's ``n x n`` matrix is written by one scatter
  of ``cos / ±sin`` (:func:`~qiadapters.circuits.tables.weight1_tables`), then the ``depth``
  layer matrices are multiplied by a balanced product tree (``log2 depth`` batched matmuls).
* **compound route** (FBS gates on any wires, RBS gates on adjacent wires):
  ``block_k = compound(U, k)``, the fast antisymmetrised-outer-product route for k = 2, 3
  (:mod:`~qiadapters.circuits.compound`).
* **simulation route** (RBS gates on non-adjacent wires, where the compound identity fails):
  each layer is a sparse operator on the weight-k basis with at most ``E`` entries per row
  (:func:`~qiadapters.circuits.tables.layer_tables`); ``block_k = L_D ... L_1`` by ``E``
  row gathers per layer.
* **apply**: ``x D`` for ``x: (..., d)``.  Either build the blocks and multiply
  (``"blocks"``: cost ``build + N r sum_k C(n,k)^2``) or push ``x`` through the layers'
  sparse operators (``"gates"``: cost ``N r depth sum_k C(n,k) E_k F_k``), ``N`` the number of
  tokens.  ``route="auto"`` takes the cheaper by that count, charging each kernel launch as
  :data:`LAUNCH_COST` multiply-adds (Python/launch overhead dominates tiny problems).
"""
from __future__ import annotations

from math import comb, prod

import torch
from torch import nn

from .. import _checks
from .blockdiag import BlockLayout, apply_blocks
from .compound import compound, compounds
from .tables import factor_values, layer_tables, weight1_tables

#: Multiply-adds one extra kernel launch is worth in the route cost model.
LAUNCH_COST = 20_000

ROUTES = ("auto", "blocks", "gates")


def product_tree(mats: torch.Tensor) -> torch.Tensor:
    """``M_{D-1} ... M_1 M_0`` for ``mats: (..., D, n, n)`` by a balanced tree of matmuls."""
    while mats.shape[-3] > 1:
        if mats.shape[-3] % 2:
            eye = torch.eye(mats.shape[-1], dtype=mats.dtype, device=mats.device)
            mats = torch.cat([mats, eye.expand(*mats.shape[:-3], 1, *eye.shape)], -3)
        mats = mats[..., 1::2, :, :] @ mats[..., 0::2, :, :]
    return mats[..., 0, :, :]


class CompiledCircuit(nn.Module):
    """Batched Hamming blocks of ``blocks`` copies of one circuit.

    Args:
        circuit: the symbolic circuit.
        orders: Hamming weights to produce, distinct integers in ``0..n``.
        blocks: ``r``, the number of independent angle sets (diagonal blocks).
        dtype, device: of the angles this op accepts (default: torch's default dtype, CPU).

    ``forward(theta: (r, n_params)) -> list of (r, C(n,k), C(n,k))`` per order;
    ``from_matrices(Q: (r, n, n))`` builds the same blocks from weight-1 orthogonal matrices;
    ``apply(theta, x, pad=0)`` returns ``x D`` without any ``d x d`` matrix.
    """

    def __init__(self, circuit, orders=(1, 2), blocks: int = 1, dtype=None, device=None):
        super().__init__()
        n = circuit.n_qubits
        self.circuit = circuit
        self.orders = _checks.orders("orders", orders, n)
        self.blocks = _checks.integer("blocks", blocks, low=1)
        self.dtype = dtype or torch.get_default_dtype()
        if not self.dtype.is_floating_point:
            raise TypeError(f"dtype={self.dtype} must be a floating dtype")
        self.compound_route = circuit.compound_exact
        pos, fac, idle = weight1_tables(circuit)
        self.register_buffer("w1_pos", pos.to(device), persistent=False)
        self.register_buffer("w1_fac", fac.to(device), persistent=False)
        self.register_buffer("w1_idle", idle.to(device), persistent=False)
        self._layer_names: dict[int, list[str]] = {}
        for k in self.orders:  # sparse weight-k layers: for simulation and for "gates" apply
            if k < 1:
                continue
            names = []
            for t, tab in enumerate(layer_tables(circuit, k)):
                for field in ("col_src", "col_fac", "row_src", "row_fac"):
                    name = f"k{k}_l{t}_{field}"
                    self.register_buffer(name, getattr(tab, field).to(device), persistent=False)
                names.append(f"k{k}_l{t}")
            self._layer_names[k] = names

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
        if theta.device != self.w1_pos.device:
            raise ValueError(f"theta is on {theta.device}; this op's tables are on "
                             f"{self.w1_pos.device} (move it with .to(device))")
        return theta

    def _layer(self, k: int, t: int, field: str) -> torch.Tensor:
        return getattr(self, f"k{k}_l{t}_{field}")

    # ------------------------------------------------------------------ weight 1
    def weight1(self, theta: torch.Tensor) -> torch.Tensor:
        """The weight-1 block ``U: (r, n, n)`` (layer matrices by one scatter, product tree)."""
        self._check_theta(theta)
        n, depth = self.circuit.n_qubits, self.circuit.depth
        vals = factor_values(theta)
        flat = theta.new_zeros(theta.shape[0], depth * n * n)
        flat = flat.index_fill(-1, self.w1_idle, 1.0)
        flat = flat.index_copy(-1, self.w1_pos, vals.index_select(-1, self.w1_fac))
        return product_tree(flat.unflatten(-1, (depth, n, n)))

    # ------------------------------------------------------------------ blocks
    def _simulate(self, vals: torch.Tensor, k: int) -> torch.Tensor:
        m = comb(self.circuit.n_qubits, k)
        block = torch.eye(m, dtype=vals.dtype, device=vals.device).expand(vals.shape[0], m, m)
        for t in range(self.circuit.depth):
            src, fac = self._layer(k, t, "row_src"), self._layer(k, t, "row_fac")
            coef = vals[:, fac].prod(-1)  # (r, m, E)
            block = sum(coef[:, :, e, None] * block.index_select(-2, src[:, e])
                        for e in range(src.shape[1]))
        return block

    def forward(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """All Hamming blocks ``[(r, C(n,k), C(n,k)) for k in orders]`` for ``theta: (r, P)``."""
        U = self.weight1(theta)
        if self.compound_route:
            return compounds(U, self.orders)
        vals = factor_values(theta)
        return [compound(U, k) if k <= 1 else self._simulate(vals, k) for k in self.orders]

    def from_matrices(self, Q: torch.Tensor) -> list[torch.Tensor]:
        """All Hamming blocks from weight-1 matrices ``Q: (r, n, n)``: ``compound(Q, k)``.

        This is what the Cayley / matrix-exponential adapters use: for orthogonal ``Q`` the
        blocks are orthogonal, and they equal a circuit's blocks when ``Q`` is its weight-1
        block and the circuit obeys the compound identity.
        """
        n = self.circuit.n_qubits
        want = (self.blocks, n, n)
        if not isinstance(Q, torch.Tensor) or tuple(Q.shape) != want:
            got = tuple(Q.shape) if isinstance(Q, torch.Tensor) else type(Q).__name__
            raise ValueError(f"Q has shape {got}; expected (blocks, n, n) = {want}")
        return compounds(Q, self.orders)

    # ------------------------------------------------------------------ apply
    def layout_for(self, dim: int, pad: int = 0) -> BlockLayout:
        return BlockLayout(self.circuit.n_qubits, self.orders, self.blocks, pad, dim)

    def route_costs(self, tokens: int) -> dict[str, float]:
        """Estimated multiply-adds (plus launches) of the two apply routes for ``tokens`` rows."""
        n, r, depth = self.circuit.n_qubits, self.blocks, self.circuit.depth
        sizes = [comb(n, k) for k in self.orders]
        build = r * (depth * n ** 3 + sum(m * n ** min(k, 3) for m, k in zip(sizes, self.orders)))
        if not self.compound_route:
            build += r * depth * sum(m * m * 4 for m in sizes)
        blocks = build + tokens * r * sum(m * m for m in sizes) + LAUNCH_COST * (8 + 4 * len(sizes))
        gates, launches = 0.0, 0
        for k, m in zip(self.orders, sizes):
            if k < 1:
                continue
            for t in range(depth):
                E, F = self._layer(k, t, "col_fac").shape[1:]
                gates += tokens * r * m * E * F
                launches += 2 * E + 2
        return {"blocks": blocks, "gates": gates + LAUNCH_COST * launches}

    def choose_route(self, tokens: int) -> str:
        costs = self.route_costs(tokens)
        return min(costs, key=costs.get)

    def apply(self, theta: torch.Tensor, x: torch.Tensor, pad: int = 0, route: str = "auto",
              transpose: bool = False) -> torch.Tensor:
        """``x D`` (``x D^T`` if ``transpose``) for ``x: (..., d)``, never forming ``D``.

        ``D`` is the block-diagonal map of :mod:`~qiadapters.circuits.blockdiag` with ``pad``
        identity dims after each block's Hamming blocks and an identity tail.
        """
        _checks.choice("route", route, ROUTES)
        self._check_theta(theta)
        layout = self.layout_for(x.shape[-1], pad)
        if route == "auto":
            route = self.choose_route(prod(x.shape[:-1]))
        if route == "blocks":
            return apply_blocks(x, self(theta), layout, transpose=transpose)
        return self._apply_gates(theta, x, layout, transpose)

    def _apply_gates(self, theta, x, layout: BlockLayout, transpose: bool) -> torch.Tensor:
        r, b = layout.blocks, layout.block_size
        vals = factor_values(theta).to(x.dtype)
        head = x[..., : r * b].unflatten(-1, (r, b))
        pieces = list(head.split(list(layout.sizes) + [layout.pad], dim=-1))
        depth = self.circuit.depth
        for o, k in enumerate(self.orders):
            if k < 1:
                continue  # the weight-0 block is [1]
            y = pieces[o]  # (..., r, m)
            # x U = x L_D ... L_1: last layer first; x U^T = x L_1^T ... L_D^T: first first.
            steps = range(depth) if transpose else reversed(range(depth))
            kind = "row" if transpose else "col"
            for t in steps:
                src, fac = self._layer(k, t, f"{kind}_src"), self._layer(k, t, f"{kind}_fac")
                coef = vals[:, fac].prod(-1)  # (r, m, E)
                y = sum(coef[:, :, e] * y.index_select(-1, src[:, e]) for e in range(src.shape[1]))
            pieces[o] = y
        out = torch.cat(pieces, -1).flatten(-2)
        return torch.cat([out, x[..., r * b:]], -1)

    def extra_repr(self) -> str:
        route = "compound" if self.compound_route else "weight-k simulation"
        return (f"circuit={self.circuit!r}, orders={self.orders}, blocks={self.blocks}, "
                f"dtype={self.dtype}, route={route}")
