"""The Hamming-weight-k basis and its bookkeeping.

The weight-k basis of ``n`` qubits is the list of k-subsets of ``range(n)`` in lexicographic
order.  With PennyLane's wire order (wire 0 the most significant bit) a subset ``S`` is the
computational basis state of index ``sum(2**(n-1-w) for w in S)``, so lexicographic order is
*descending* basis index.  This is the row/column order of every Hamming block.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from math import comb

from .. import checks


@lru_cache(maxsize=256)
def hamming_basis(n: int, k: int) -> tuple[tuple[int, ...], ...]:
    """The k-subsets of ``range(n)`` in lexicographic order: ``C(n, k)`` tuples of wires."""
    n = checks.integer("n", n, low=1)
    k = checks.integer("k", k, low=0, high=n)
    return tuple(combinations(range(n), k))


@lru_cache(maxsize=256)
def basis_position(n: int, k: int) -> dict[tuple[int, ...], int]:
    """Map each k-subset (sorted tuple) to its row in the weight-k block."""
    return {s: p for p, s in enumerate(hamming_basis(n, k))}


def state_index(n: int, subset) -> int:
    """Computational-basis index of the state with ones on ``subset`` (wire 0 = MSB)."""
    return sum(2 ** (n - 1 - w) for w in subset)


def block_dim(n: int, k: int) -> int:
    """``C(n, k)``: the dimension of the weight-k block."""
    return comb(n, k)


def max_qubits(size: int, orders) -> int:
    """Largest ``n`` with ``sum(C(n, k) for k in orders) <= size`` (0 if even n=max(orders) fails)."""
    best, n = 0, max(max(orders), 1)
    while sum(comb(n, k) for k in orders) <= size:
        best, n = n, n + 1
    return best
