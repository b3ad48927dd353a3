"""A row of a benchmark's table: a registry method with its learning-rate grid.

What a method *is* lives in the registry (:mod:`benchmarks.common.registry`, one JSON file
per method); a benchmark's table says which registry names it trains, in which order, with
which lr grid and at which adapter-lr scale (:class:`Method`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from . import registry

# A builder takes the freshly loaded model and returns
# (model to train, aux_loss_fn or None, record of the configuration that actually ran).
Builder = Callable[[nn.Module], tuple]


@dataclass(frozen=True)
class Method:
    """One row of a benchmark's table."""
    name: str
    family: str                      # "full", "head", "peft", "qiadapters", "physics", "mixture"
    label: str                       # what the table and plot call it
    build: Builder = field(repr=False)
    lrs: tuple = ()
    #: For a mixture: the rows that train its experts alone (mixing is compared with them).
    experts: tuple = ()
    #: The adapter's parameters train at ``lr * adapter_lr_scale``, the head at ``lr``.
    adapter_lr_scale: float = 1.0
    #: A Hamming adapter's learned scales train at ``lr * scale_lr_scale`` (None: at the
    #: adapter's rate).
    scale_lr_scale: float | None = None


def method(name: str, lrs: tuple, adapter_lr_scale: float = 1.0, rows=(),
           scale_lr_scale: float | None = None) -> Method:
    """The registry entry ``name`` as a :class:`Method` with grid ``lrs``; its ``experts``
    are those of the entry's experts that are themselves among ``rows`` (names)."""
    entry, rows = registry.get(name), set(rows)
    alone = tuple(e for e in entry.experts if e in rows)
    return Method(name, entry.group, entry.label, entry.build, tuple(lrs), alone,
                  adapter_lr_scale, scale_lr_scale)


def family_available(method: Method):
    """None when the row can be built here, else why not."""
    return registry.family_available(registry.get(method.name))
