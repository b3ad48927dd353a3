"""Mixed-adapter batches: one adapter per row of a batch, as peft's ``adapter_names=[...]``.

While :class:`~qiadapters.AdapterModel` runs a call with ``adapter_names`` (one name per
row, :data:`BASE` for the base model), the names are published here, per thread, and every
adapter layer's forward serves its rows group by group (:meth:`AdapterLayer.mixed_forward
<qiadapters.adapters.layer.AdapterLayer.mixed_forward>`): the base module runs once on the
whole batch and each distinct adapter once on its rows, so the cost grows with the number
of distinct adapters, not of rows.  A row whose adapter does not adapt a layer gets that
layer's base output there, as the adapter alone would.

During ``generate`` a layer may see each row repeated (beam search, several sequences per
prompt: transformers repeats each row ``k`` times in place), so a batch of ``k`` times the
rows takes each name ``k`` times.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional, Sequence

import torch

__all__ = ["BASE", "rows_context", "current_rows", "batch_rows", "row_groups"]

#: The name of a row that runs the base model (peft's spelling).
BASE = "__base__"


class _Rows(threading.local):
    def __init__(self):
        self.names: Optional[tuple[str, ...]] = None
        self.generating = False


_ROWS = _Rows()


@contextlib.contextmanager
def rows_context(names: Sequence[str], generating: bool = False) -> Iterator[None]:
    """Inside, adapter layers serve row ``i`` with adapter ``names[i]`` (module docstring)."""
    previous = (_ROWS.names, _ROWS.generating)
    _ROWS.names, _ROWS.generating = tuple(names), generating
    try:
        yield
    finally:
        _ROWS.names, _ROWS.generating = previous


def current_rows() -> Optional[tuple[str, ...]]:
    """The adapter name of each row of the running call, or None (no mixed batch)."""
    return _ROWS.names


def batch_rows(layer, x) -> tuple[str, ...]:
    """The published names fitted to the batch ``x`` that ``layer`` received: as given, or,
    during ``generate``, each repeated ``k`` times for a batch ``k`` times as large."""
    rows = _ROWS.names
    n = x.shape[0] if isinstance(x, torch.Tensor) and x.ndim else None
    if n == len(rows):
        return rows
    if n and _ROWS.generating and n % len(rows) == 0:
        k = n // len(rows)
        return tuple(name for name in rows for _ in range(k))
    shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
    raise ValueError(f"adapter_names has {len(rows)} names, one per row, but a "
                     f"{type(layer).__name__} (around {type(layer.base_layer).__name__}) "
                     f"received an input of shape {shape} whose first axis is not those rows; "
                     f"mixed-adapter batches need modules that keep the batch axis first")


def row_groups(rows: Sequence[str], held: Sequence[str],
               device: torch.device) -> list[tuple[str, torch.Tensor]]:
    """``(adapter, row indices)`` for each adapter of ``held`` that some row names, in the
    order the rows first name them; rows of other names (:data:`BASE`, adapters that do not
    adapt this layer) are in no group."""
    order: dict[str, list[int]] = {}
    held = set(held)
    for i, name in enumerate(rows):
        if name in held and name != BASE:
            order.setdefault(name, []).append(i)
    return [(name, torch.tensor(idx, device=device)) for name, idx in order.items()]
