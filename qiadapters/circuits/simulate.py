"""Exact simulation of a circuit in its weight-k basis (any connectivity, RBS or FBS).

Every gate acting on ``(i, j)`` pairs each weight-k state ``S`` with ``i in S, j not in S`` to
``S' = S - {i} + {j}`` and, with ``c = cos(theta)``, ``s = sigma * sin(theta)`` (``sigma`` the
gate's parity sign on ``S``), maps ``|S> -> c|S> - s|S'>`` and ``|S'> -> s|S> + c|S'>``; every
other state is left alone.  The block is built by applying these row updates to the identity,
gate by gate in circuit order.  This is the exact reference route: the fast compiled routes
are proven equal to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .basis import basis_position, hamming_basis


@dataclass(frozen=True)
class GateTable:
    """Index tables of one gate in the weight-k basis.

    ``src``: rows ``S`` (``i in S, j not in S``); ``dst``: rows ``S'``; ``sign``: ``sigma``
    per pair (+1 for RBS).  All three have shape ``(n_pairs,)``.
    """

    src: torch.Tensor
    dst: torch.Tensor
    sign: torch.Tensor
    param: int


def gate_tables(circuit, k: int) -> tuple[GateTable, ...]:
    """Per-gate index tables of ``circuit`` on the weight-k basis (built once, CPU int64)."""
    n = circuit.n_qubits
    pos = basis_position(n, k)
    tables = []
    for gate in circuit.gates:
        i, j = gate.wires
        src, dst, sign = [], [], []
        for s in hamming_basis(n, k):
            if i in s and j not in s:
                partner = tuple(sorted((set(s) - {i}) | {j}))
                src.append(pos[s])
                dst.append(pos[partner])
                sign.append(gate.sign(s))
        tables.append(GateTable(torch.tensor(src, dtype=torch.long),
                                torch.tensor(dst, dtype=torch.long),
                                torch.tensor(sign, dtype=torch.float64), gate.param))
    return tuple(tables)


def simulate_block(tables, theta: torch.Tensor, dim: int) -> torch.Tensor:
    """Weight-k block ``(..., dim, dim)`` for angles ``theta: (..., n_params)``."""
    batch = theta.shape[:-1]
    # A real copy, not an expanded view: Inductor miscompiles index_copy on expanded inputs.
    block = torch.eye(dim, dtype=theta.dtype, device=theta.device).expand(*batch, dim, dim).clone()
    for t in tables:
        if t.src.numel() == 0:
            continue
        src, dst = t.src.to(theta.device), t.dst.to(theta.device)
        sign = t.sign.to(device=theta.device, dtype=theta.dtype)[:, None]
        c = torch.cos(theta[..., t.param])[..., None, None]
        s = torch.sin(theta[..., t.param])[..., None, None] * sign
        rows_s, rows_p = block[..., src, :], block[..., dst, :]
        block = block.index_copy(-2, src, c * rows_s + s * rows_p)
        block = block.index_copy(-2, dst, c * rows_p - s * rows_s)
    return block
