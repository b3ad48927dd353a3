"""Compile-time index tables: everything about a circuit that does not depend on its angles.

Two kinds of table, both built once per circuit with plain Python and stored as int64:

* :func:`weight1_tables` — the positions of the four entries ``(i,i), (i,j), (j,i), (j,j)`` of
  every gate inside its layer's ``n x n`` matrix, to build all layer matrices with one scatter.
* :func:`layer_tables` — each layer as a sparse operator ``L`` on the weight-k basis.  A layer's
  gates act on disjoint wires, so column ``S`` of ``L`` is found by branching over the gates
  that see exactly one excitation on their wires (keep: ``cos``, move ``i -> j``: ``-sigma sin``,
  move ``j -> i``: ``+sigma sin``; FBS parities ``sigma`` read off the branch's current state, so
  the order of the commuting gates does not matter).  Every entry of ``L`` is a product of at
  most ``F`` such factors; a factor is an index into the per-angle value table of
  :func:`factor_values`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .basis import basis_position, hamming_basis

ONE, ZERO = 0, 1  # fixed slots of the factor value table


def factor_values(theta: torch.Tensor) -> torch.Tensor:
    """``theta: (..., P)`` -> ``(..., 2 + 3P)``: ``[1, 0, cos theta, sin theta, -sin theta]``."""
    c, s = torch.cos(theta), torch.sin(theta)
    const = torch.tensor([1.0, 0.0], dtype=theta.dtype, device=theta.device)
    return torch.cat([const.expand(*theta.shape[:-1], 2), c, s, -s], -1)


def weight1_tables(circuit) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter positions for all layer matrices ``(depth, n, n)`` flattened.

    Returns ``(position, factor, idle)``: ``position: (4G,)`` flat indices of each gate's
    entries ``[(i,i), (i,j), (j,i), (j,j)]``, ``factor: (4G,)`` their indices into
    :func:`factor_values` (``cos, sin, -sin, cos``; the matrix in basis ``(e_i, e_j)``), and
    ``idle: (k,)`` flat diagonal positions of wires no gate of that layer touches (value 1).
    """
    n, P = circuit.n_qubits, circuit.n_params
    pos, fac, idle = [], [], []
    for t, layer in enumerate(circuit.layers):
        base, busy = t * n * n, set()
        for g in layer:
            i, j = g.wires
            busy |= {i, j}
            pos += [base + i * n + i, base + i * n + j, base + j * n + i, base + j * n + j]
            fac += [2 + g.param, 2 + P + g.param, 2 + 2 * P + g.param, 2 + g.param]
        idle += [base + w * n + w for w in range(n) if w not in busy]
    return (torch.tensor(pos, dtype=torch.long), torch.tensor(fac, dtype=torch.long),
            torch.tensor(idle, dtype=torch.long))


@dataclass(frozen=True)
class LayerTable:
    """One layer as a sparse operator on the weight-k basis, in both orientations.

    ``col_src[T, e]`` / ``col_fac[T, e]``: the states ``S`` and factors with ``L[S, T] != 0``
    (what ``x L`` needs); ``row_src`` / ``row_fac``: the ``S`` with ``L[T, S] != 0`` (what
    ``L M`` and ``x L^T`` need).  Shapes ``(m, E)`` and ``(m, E, F)``; padding entries point at
    ``T`` itself with a zero factor.
    """

    col_src: torch.Tensor
    col_fac: torch.Tensor
    row_src: torch.Tensor
    row_fac: torch.Tensor


def _branch(state: frozenset, layer, P: int):
    """All ``(T, factors)`` with ``L[T, S] = prod(factors)`` for the column ``S = state``."""
    branches = [(state, [])]
    for g in layer:
        i, j = g.wires
        nxt = []
        for s, facs in branches:
            if (i in s) == (j in s):
                nxt.append((s, facs))
                continue
            sign = g.sign(s)
            moved = (s - {i}) | {j} if i in s else (s - {j}) | {i}
            # G|..1_i 0_j..> = c|.> - sigma s|..0_i 1_j..>;  G|..0_i 1_j..> = c|.> + sigma s|..1_i 0_j..>
            minus = (i in s) == (sign > 0)
            nxt.append((s, facs + [2 + g.param]))
            nxt.append((moved, facs + [(2 + 2 * P if minus else 2 + P) + g.param]))
        branches = nxt
    return branches


def _pad(entries, m: int):
    E = max(len(e) for e in entries)
    F = max([len(f) for e in entries for _, f in e] + [1])
    src = torch.empty(m, E, dtype=torch.long)
    fac = torch.full((m, E, F), ONE, dtype=torch.long)
    for t, row in enumerate(entries):
        for e in range(E):
            if e < len(row):
                src[t, e] = row[e][0]
                fac[t, e, : len(row[e][1])] = torch.tensor(row[e][1], dtype=torch.long)
            else:
                src[t, e], fac[t, e, 0] = t, ZERO
    return src, fac


def layer_tables(circuit, k: int) -> tuple[LayerTable, ...]:
    """Sparse weight-k tables of every layer of ``circuit`` (see the module docstring)."""
    n, P = circuit.n_qubits, circuit.n_params
    basis, pos = hamming_basis(n, k), basis_position(n, k)
    m = len(basis)
    out = []
    for layer in circuit.layers:
        cols = [[] for _ in range(m)]
        rows = [[] for _ in range(m)]
        for s in basis:
            for t, facs in _branch(frozenset(s), layer, P):
                ti, si = pos[tuple(sorted(t))], pos[s]
                rows[ti].append((si, facs))  # L[T, S]
                cols[si].append((ti, facs))  # column S: (T, L[T, S]) ... transposed below
        # x L needs, for each output T, the entries L[S, T]: those are column T's branches.
        col_src, col_fac = _pad(cols, m)
        row_src, row_fac = _pad(rows, m)
        out.append(LayerTable(col_src, col_fac, row_src, row_fac))
    return tuple(out)
