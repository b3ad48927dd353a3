"""Size bounds: what one adapter config may make the library build.

A saved adapter folder is untrusted input: a few bytes of ``adapter_config.json`` (a high
Hamming order, a huge physics rank) would otherwise make loading build index tables or
tensors for minutes and gigabytes before the saved tensors are compared with anything.
Every layer's planned size is checked against these bounds before anything of it is
built, for configs read from a file and configs written in Python alike:

* :data:`MAX_TABLE_ENTRIES` -- the integer index tables of one Hamming block (compound and
  mode-wise routes, a circuit's gate tables: :func:`hamming_table_entries`), about a
  quarter of a second of plain Python at the bound;
* :data:`MAX_RANK_RATIO` -- a physics adapter's bottleneck ``rank`` at most this many
  times its width ``dim`` (its projections then hold at most ``2 * MAX_RANK_RATIO`` times
  a square ``dim x dim`` weight), and :data:`MAX_WIDTH` for ``dim`` itself;
* :data:`MAX_EXPERTS` -- the experts of one mixture.

Whoever really wants a larger block builds it inside :func:`unbounded` (never around the
loading of a downloaded adapter)::

    with qiadapters.bounds.unbounded():
        model = AdapterModel(base, HammingConfig(target_modules=["fc"], orders=(1, 9)))
"""
from __future__ import annotations

import contextlib
import contextvars
from math import comb, factorial
from typing import Iterable, Iterator

__all__ = ["MAX_TABLE_ENTRIES", "MAX_RANK_RATIO", "MAX_WIDTH", "MAX_EXPERTS", "unbounded",
           "is_unbounded", "check", "hamming_table_entries"]

#: Most integer index-table entries one Hamming block may need (:func:`hamming_table_entries`).
MAX_TABLE_ENTRIES = 4_000_000
#: The largest ``n`` whose order-2 tables include the flat gather's
#: (:class:`~qiadapters.circuits.compound.PairMinorsFlat`, ``4 C(n,2)^2`` entries: 240k at
#: ``n = 23``; that table grows as ``n^4``, the others as ``n^2``).
FLAT_PAIR_MAX_N = 23
#: A physics adapter's ``rank`` is at most this many times its width ``dim``.
MAX_RANK_RATIO = 4
#: Widest hidden state a physics adapter may be told to read (``dim``).
MAX_WIDTH = 1 << 16
#: Most experts in one mixture.
MAX_EXPERTS = 64

_UNBOUNDED = contextvars.ContextVar("qiadapters_unbounded", default=False)


@contextlib.contextmanager
def unbounded() -> Iterator[None]:
    """Lift the size bounds of this module inside the ``with`` block (this thread or task)."""
    token = _UNBOUNDED.set(True)
    try:
        yield
    finally:
        _UNBOUNDED.reset(token)


def is_unbounded() -> bool:
    """Whether the bounds are lifted here (inside :func:`unbounded`)."""
    return _UNBOUNDED.get()


def check(arg: str, value, size: int, bound: int, what: str, bound_name: str,
          fix: str) -> None:
    """ValueError naming ``arg=value``, ``what`` it makes (``size``) and the ``bound``
    (``bound_name``, how it is set), unless ``size <= bound`` or the bounds are lifted
    (:func:`unbounded`)."""
    if size > bound and not is_unbounded():
        raise ValueError(f"{arg}={value!r}: {what} {size:,}, above the bound {bound:,} "
                         f"({bound_name}); {fix}, or build it inside "
                         f"qiadapters.bounds.unbounded() if you trust the config")


def hamming_table_entries(n: int, orders: Iterable[int], gates: int = 0,
                          gate_tables: bool = False) -> int:
    """Integer index-table entries one block of ``n`` qubits with Hamming weights ``orders``
    needs: the Laplace route's tables of every weight ``2 <= j <= max k < n``
    (``(2 + 2j) C(n,j)``), the flat order-2 gather's while ``n <=``
    :data:`FLAT_PAIR_MAX_N` (``4 C(n,2)^2``), the mode-wise
    route's of every order ``2 <= k < n``
    (``2 k! C(n,k)``) and, for a circuit of ``gates`` gates, its weight-1 tables
    (``gates n``) and, when its higher blocks are simulated gate by gate rather than taken
    as compounds (``gate_tables``), their tables (``2 gates C(n,k)``).  Pure arithmetic on
    Python integers: nothing is built."""
    ks = [k for k in orders if 2 <= k < n]
    top = max(ks, default=1)
    total = gates * n + sum((2 + 2 * j) * comb(n, j) for j in range(2, top + 1))
    if top >= 2 and n <= FLAT_PAIR_MAX_N:
        total += 4 * comb(n, 2) ** 2
    for k in ks:
        total += 2 * comb(n, k) * (factorial(k) + (gates if gate_tables else 0))
    return total
