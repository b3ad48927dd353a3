"""Old home of :mod:`qiadapters.context`, kept so existing imports work.

The context a running :class:`~qiadapters.AdapterModel` publishes to its layers now lives in
the leaf module :mod:`qiadapters.context` (below both the adapters and the model machinery).
Reading a name from here still works and warns (``DeprecationWarning``) naming its new module.
"""
from __future__ import annotations

import warnings

from .. import context as _context


def __getattr__(name: str):
    if name.startswith("__") or not hasattr(_context, name):  # dunders are this module's own
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_context, name)
    warnings.warn(f"qiadapters.model.context.{name} moved to qiadapters.context.{name}; import "
                  f"it from there", DeprecationWarning, stacklevel=2)
    return value


def __dir__():
    return sorted(_context.__all__)
