"""Circuit layouts: where the two-qubit gates go.

A layout is a function ``(n, **options) -> list[(i, j)]`` of wire pairs in the order the gates
act (the first acts first on the state).  Register new ones in :data:`LAYOUTS`; the
:class:`~qiadapters.Circuit` constructors and every ``layout=`` argument look them up there.

=========  ===========================  ================  =====================================
layout     gates                        depth             connectivity
=========  ===========================  ================  =====================================
pyramid    n(n-1)/2                     2n-3              nearest neighbour
brick      n(n-1)/2 (depth n default)   ``depth``         nearest neighbour
x          2n-3                         n-1 (n even)      nearest neighbour
butterfly  (n/2) log2 n                 log2 n            pairs (i, i + n/2^s), n a power of 2
=========  ===========================  ================  =====================================

:func:`gate_count` gives the gate count (the parameters of a circuit with one angle per gate)
in closed form, from :data:`GATE_COUNTS`, without listing the gates.
"""
from __future__ import annotations

from typing import Callable

from .. import checks

Pairs = list[tuple[int, int]]


def pyramid(n: int) -> Pairs:
    """Pyramid of nearest-neighbour gates (Landman et al. 2022).

    Time step ``t = 0 .. 2n-4`` holds the gates ``(i, i+1)`` with ``i = t mod 2``,
    ``i <= t`` and ``i <= 2n-4-t``; wire pair ``(i, i+1)`` appears ``n-1-i`` times.
    Universal for SO(n) on the weight-1 block.
    """
    return [(i, i + 1) for t in range(2 * n - 3) for i in range(t % 2, n - 1, 2)
            if i <= t and i <= 2 * n - 4 - t]


def brick(n: int, depth: int | None = None) -> Pairs:
    """Brick wall: alternating layers of gates on even pairs ``(0,1),(2,3),...`` and odd pairs
    ``(1,2),(3,4),...``.  ``depth`` layers (default ``n``, which gives ``n(n-1)/2`` gates)."""
    depth = n if depth is None else checks.integer("depth", depth, low=1)
    return [(i, i + 1) for t in range(depth) for i in range(t % 2, n - 1, 2)]


def x(n: int) -> Pairs:
    """X circuit: the two diagonals of the pyramid played at once, crossing in the middle.

    At step ``t = 0 .. n-2`` it has the gates at positions ``t`` (descending diagonal) and
    ``n-2-t`` (ascending diagonal); the crossing position ``(n-2)//2`` is used once, so the
    circuit has ``2n-3`` gates.
    """
    centre, used, pairs = (n - 2) // 2, set(), []
    for t in range(n - 1):
        for i in sorted({t, n - 2 - t}):
            if i == centre and i in used:
                continue
            used.add(i)
            pairs.append((i, i + 1))
    return pairs


def butterfly(n: int) -> Pairs:
    """Butterfly (FFT-like) circuit for ``n`` a power of two: ``log2 n`` layers, layer ``s``
    pairs ``(i, i + n / 2^(s+1))`` for every ``i`` whose bit of that stride is zero."""
    if n & (n - 1):
        raise ValueError(f"n={n} is not valid for layout='butterfly'; n must be a power of two "
                         f"(e.g. {1 << (n.bit_length() - 1)} or {1 << n.bit_length()})")
    pairs, stride = [], n // 2
    while stride:
        pairs += [(i, i + stride) for i in range(n) if not i & stride]
        stride //= 2
    return pairs


#: Registry of layouts by name.
LAYOUTS: dict[str, Callable[..., Pairs]] = {
    "pyramid": pyramid,
    "brick": brick,
    "x": x,
    "butterfly": butterfly,
}


def _brick_gates(n: int, depth: int | None = None) -> int:
    depth = n if depth is None else checks.integer("depth", depth, low=1)
    # even layers hold floor(n/2) gates, odd layers floor((n-1)/2)
    return (depth + 1) // 2 * (n // 2) + depth // 2 * ((n - 1) // 2)


def _butterfly_gates(n: int) -> int:
    if n & (n - 1):
        butterfly(n)  # its error names the valid sizes
    return n // 2 * (n.bit_length() - 1)


#: Closed-form gate count of each layout, ``(n, **options) -> len(LAYOUTS[name](n, **options))``.
GATE_COUNTS: dict[str, Callable[..., int]] = {
    "pyramid": lambda n: n * (n - 1) // 2,
    "brick": _brick_gates,
    "x": lambda n: 2 * n - 3,
    "butterfly": _butterfly_gates,
}


def gate_count(layout: str, n: int, **options) -> int:
    """The number of gates of ``layout`` on ``n >= 2`` qubits (``len(LAYOUTS[layout](n))``),
    in closed form: nothing is built, so it answers for any ``n`` at once."""
    name = checks.choice("layout", layout, LAYOUTS)
    return GATE_COUNTS[name](checks.integer("n", n, low=2), **options)
