"""Exact simulation of a circuit in its weight-k basis (any connectivity, any gate kind).

A gate on wires ``(i, j)`` pairs each weight-k state ``S`` with ``i in S, j not in S`` (local
state ``e_i``) with ``S' = S - {i} + {j}`` (local state ``e_j``) and acts on the pair by its
class's 2x2 matrix ``M = compute_matrix(theta, parity(S))``
(:mod:`~qiadapters.circuits.gates`); every other state is left alone.  The block is built
from the identity by the row updates ``(row_S, row_S') <- M (row_S, row_S')``, gate by gate
in circuit order.  This is the exact reference route: the compiled routes are proven equal to
it, and it is proven equal to PennyLane.
"""
from __future__ import annotations

from math import comb

import torch

from . import cache
from .basis import basis_position, hamming_basis


def gate_tables(circuit, k: int) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]:
    """Per gate of ``circuit``, the pairs it mixes in the weight-k basis (int64 builder).

    For each gate ``(src, dst, parity)``, each ``(n_pairs,)``: rows ``S`` (``i in S, j not in
    S``), rows ``S'`` and the parity of the occupied wires strictly between ``i`` and ``j``.
    """
    n = circuit.n_qubits
    pos = basis_position(n, k)
    out = []
    for gate in circuit.gates:
        i, j = gate.wires
        pairs = [(pos[s], pos[tuple(sorted((set(s) - {i}) | {j}))], gate.parity(s))
                 for s in hamming_basis(n, k) if i in s and j not in s]
        out.append(tuple(torch.tensor(col, dtype=torch.long).reshape(-1)
                         for col in (zip(*pairs) if pairs else ((), (), ()))))
    return tuple(out)


def simulate_block(circuit, theta: torch.Tensor, k: int) -> torch.Tensor:
    """Weight-k block ``(..., C(n,k), C(n,k))`` of ``circuit`` for ``theta: (..., n_params)``."""
    dim = comb(circuit.n_qubits, k)
    batch = theta.shape[:-1]
    # A real copy, not an expanded view: Inductor miscompiles index_copy on expanded inputs.
    block = torch.eye(dim, dtype=theta.dtype, device=theta.device).expand(*batch, dim, dim).clone()
    mats = {cls: torch.stack([cls.compute_matrix(theta, parity) for parity in (0, 1)], -3)
            for cls in {type(g) for g in circuit.gates}}  # (..., P, parity, 2, 2)
    for gate, (src, dst, parity) in zip(circuit.gates,
                                        cache.tables(gate_tables, circuit, k, device=theta.device)):
        if src.numel() == 0:
            continue
        M = mats[type(gate)][..., gate.param, :, :, :][..., parity, :, :, None]  # (..., pairs, 2, 2, 1)
        rows_s, rows_p = block[..., src, :], block[..., dst, :]
        block = block.index_copy(-2, src, M[..., 0, 0, :] * rows_s + M[..., 0, 1, :] * rows_p)
        block = block.index_copy(-2, dst, M[..., 1, 0, :] * rows_s + M[..., 1, 1, :] * rows_p)
    return block
