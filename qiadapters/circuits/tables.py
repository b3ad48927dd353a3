"""Compile-time index tables: everything about a circuit that does not depend on its angles.

The compiled op never writes ``cos`` or ``sin`` itself: every number it uses is an entry of a
gate class's own 2x2 matrix (:meth:`~qiadapters.circuits.gates.Gate.compute_matrix`), read
from the *factor table* of :func:`factor_values`.  The tables below say which entry goes where:

* :func:`weight1_tables` -- the positions of the four entries ``(i,i), (i,j), (j,i), (j,j)`` of
  every gate inside its layer's ``n x n`` matrix, to build all layer matrices with one scatter.
* :func:`layer_tables` -- each layer as a sparse operator ``L`` on the weight-k basis.  A layer's
  gates commute, so row ``T`` of ``L`` is found by branching over the gates that see exactly
  one excitation on their wires (stay: entry ``M[a, a]``, move: entry ``M[1-a, a]``, with
  ``a`` the local state and the parity read off the branch's current state).  Every entry of
  ``L`` is a product of at most ``F`` factors.

All are builders for :func:`qiadapters.circuits.cache.tables` (plain Python, int64 on CPU).
"""
from __future__ import annotations

import torch

from .basis import basis_position, hamming_basis

ONE, ZERO = 0, 1  # fixed slots of the factor value table


def gate_kinds(circuit) -> tuple[type, ...]:
    """The gate classes of ``circuit``, by name: the order of their slots in the factor table."""
    return tuple(sorted({type(g) for g in circuit.gates}, key=lambda cls: cls.name))


def factor_values(theta: torch.Tensor, kinds, max_parity: int = 1) -> torch.Tensor:
    """``theta: (..., P)`` -> ``(..., 2 + 4 P len(kinds) (max_parity + 1))``: ``[1, 0]``, then
    for each parity ``0..max_parity`` and each gate kind its matrices
    ``compute_matrix(theta_p, parity)`` flattened over ``(p, a, b)``.  Parity-0 slots do not
    depend on ``max_parity`` (the weight-1 block reads only those)."""
    one = theta.new_ones(*theta.shape[:-1], 1)  # filled on theta's device: no host copy
    mats = [cls.compute_matrix(theta, parity).flatten(-3)
            for parity in range(max_parity + 1) for cls in kinds]  # (..., 4P) each
    return torch.cat([one, torch.zeros_like(one)] + mats, -1)


def _entry(kinds, P: int, gate, parity: int, a: int, b: int) -> int:
    """Slot in :func:`factor_values` of ``gate``'s matrix entry ``[a, b]`` at ``parity``."""
    return 2 + 4 * P * (parity * len(kinds) + kinds.index(type(gate))) + gate.param * 4 + a * 2 + b


def weight1_tables(circuit) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter positions for all layer matrices ``(depth, n, n)`` flattened.

    Returns ``(position, factor, idle)``: ``position: (4G,)`` flat indices of each gate's
    entries ``[(i,i), (i,j), (j,i), (j,j)]``, ``factor: (4G,)`` the slots of its matrix entries
    ``[0,0], [0,1], [1,0], [1,1]`` at parity 0 (one excitation: nothing lies between), and
    ``idle: (k,)`` flat diagonal positions of wires no gate of that layer touches (value 1).
    """
    n, P, kinds = circuit.n_qubits, circuit.n_params, gate_kinds(circuit)
    pos, fac, idle = [], [], []
    for t, layer in enumerate(circuit.layers):
        base, busy = t * n * n, set()
        for g in layer:
            i, j = g.wires
            busy |= {i, j}
            pos += [base + i * n + i, base + i * n + j, base + j * n + i, base + j * n + j]
            fac += [_entry(kinds, P, g, 0, a, b) for a in (0, 1) for b in (0, 1)]
        idle += [base + w * n + w for w in range(n) if w not in busy]
    return (torch.tensor(pos, dtype=torch.long), torch.tensor(fac, dtype=torch.long),
            torch.tensor(idle, dtype=torch.long))


def _branch(state: frozenset, layer, kinds, P: int):
    """All ``(T, factors)`` with ``L[T, S] = prod(factors)`` for the column ``S = state``."""
    branches = [(state, [])]
    for g in layer:
        i, j = g.wires
        nxt = []
        for s, facs in branches:
            if (i in s) == (j in s):
                nxt.append((s, facs))
                continue
            a, parity = (0 if i in s else 1), g.parity(s)
            moved = (s - {i}) | {j} if a == 0 else (s - {j}) | {i}
            nxt.append((s, facs + [_entry(kinds, P, g, parity, a, a)]))
            nxt.append((moved, facs + [_entry(kinds, P, g, parity, 1 - a, a)]))
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


def layer_tables(circuit, k: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """Per layer of ``circuit``, its sparse weight-k operator ``L`` by rows: ``(src, fac)``.

    ``src[T, e]: (m, E)`` the states ``S`` with ``L[T, S] != 0`` and ``fac[T, e]: (m, E, F)``
    their factor slots (``L[T, S]`` is the product of the factor values); padding entries
    point at ``T`` itself with a zero factor.  ``L M`` is then ``E`` row gathers of ``M``.
    """
    n, P, kinds = circuit.n_qubits, circuit.n_params, gate_kinds(circuit)
    basis, pos = hamming_basis(n, k), basis_position(n, k)
    out = []
    for layer in circuit.layers:
        rows = [[] for _ in basis]
        for s in basis:
            for t, facs in _branch(frozenset(s), layer, kinds, P):
                rows[pos[tuple(sorted(t))]].append((pos[s], facs))  # L[T, S]
        out.append(_pad(rows, len(basis)))
    return tuple(out)
