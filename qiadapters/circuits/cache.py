"""The one cache of index tables.

Everything about a circuit or a compound route that does not depend on the angles (which
basis state a gate pairs with which, where each matrix entry goes) is an integer table built
once with plain Python by a *builder* function and kept here, keyed by
``(builder, arguments, device)``: :func:`tables` returns the builder's tensors on ``device``.
:meth:`~qiadapters.Circuit.hamming_block`, :mod:`~qiadapters.circuits.compound` and
:class:`~qiadapters.circuits.compiled.CompiledCircuit` (which registers the cached tensors as
non-persistent buffers, so they follow ``.to(device)``) all read their tables from here.

A miss is built outside any ``torch.compile`` trace (inside one, :func:`_fill` is called
through ``torch.compiler.disable``); a hit is a plain dict read that ``torch.compile`` treats
as a constant.  The disabled wrapper is made the first time a trace misses, not at import:
``torch.compiler.disable`` imports ``torch._dynamo``, which costs about a second and which
nothing needs before a ``torch.compile``.  Under ``fullgraph=True`` a miss cannot be built inside the trace, which is why the
compiled op holds every table it reads as a buffer and looks nothing up in ``forward``.

Builders return a tuple of CPU integer tensors (nested tuples allowed) and must be pure
functions of their (hashable) arguments.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

_TABLES: dict[tuple, tuple] = {}
#: Most entries kept: beyond it the oldest is dropped when a new one is built (a bound on
#: memory for programs that meet many sizes or devices).  Modules that read tables in their
#: forward hold them as buffers (:class:`TableBuffers`), so dropping an entry never breaks one.
CACHE_SIZE = 512


def _to(tables, device):
    if isinstance(tables, torch.Tensor):
        return tables.to(device)
    return tuple(_to(t, device) for t in tables)


def _fill(key: tuple, build: Callable, args: tuple, device) -> None:
    while len(_TABLES) >= CACHE_SIZE:  # bookkeeping only here: a hit stays a plain dict read
        del _TABLES[next(iter(_TABLES))]
    _TABLES[key] = _to(build(*args), device)


_fill_untraced: Optional[Callable] = None


def _untraced() -> Callable:
    """:func:`_fill` behind ``torch.compiler.disable``, wrapped on first use (only a trace
    needs it, and the wrapper imports ``torch._dynamo``)."""
    global _fill_untraced
    if _fill_untraced is None:
        _fill_untraced = torch.compiler.disable(_fill)
    return _fill_untraced


def tables(build: Callable, *args, device=None) -> tuple:
    """``build(*args)`` moved to ``device`` (default CPU), built once and then cached."""
    key = (build, args, str(torch.device("cpu") if device is None else device))
    if key not in _TABLES:
        (_untraced() if torch.compiler.is_compiling() else _fill)(key, build, args, device)
    return _TABLES[key]


def clear() -> None:
    """Forget every cached table (they are rebuilt on the next use)."""
    _TABLES.clear()


class TableBuffers(nn.Module):
    """Tables held as non-persistent buffers, by group: they follow ``.to(device)``, are never
    saved, and reading them inside ``torch.compile`` is a plain attribute read.

    ``hold(group, tables)`` registers a (nested) tuple of tensors from :func:`tables`;
    ``tables(group)`` returns them flattened, in the builder's order.
    """

    def __init__(self):
        super().__init__()
        self._groups: dict[str, tuple[str, ...]] = {}

    def hold(self, group: str, tables) -> None:
        flat = [leaf for t in tables for leaf in (t if isinstance(t, tuple) else (t,))]
        names = tuple(f"{group}_{i}" for i in range(len(flat)))
        for name, t in zip(names, flat):
            self.register_buffer(name, t, persistent=False)
        self._groups[group] = names

    def tables(self, group: str) -> tuple[torch.Tensor, ...]:
        """The buffers of one group, in the builder's (flattened) order."""
        return tuple(getattr(self, name) for name in self._groups[group])

    @property
    def groups(self) -> list[str]:
        return list(self._groups)
