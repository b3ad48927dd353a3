"""Renamed arguments that keep working for one version.

>>> import warnings
>>> @renamed_keyword("linear", "base_layer")
... def wrap(base_layer, scale=1):
...     return base_layer * scale
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     wrap(linear=3)
3
>>> str(caught[0].message)
'wrap(linear=...) is deprecated; pass base_layer=... (the old name goes in qiadapters 0.5)'
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable

__all__ = ["renamed_keyword"]


def renamed_keyword(old: str, new: str) -> Callable[[Callable], Callable]:
    """Decorate a function (or ``__init__``) whose argument ``new`` was called ``old``: a
    call passing ``old=`` warns (``DeprecationWarning``) and is passed on as ``new=``; a call
    passing both raises TypeError naming them.  Positional calls are unchanged."""
    def decorate(fn: Callable) -> Callable:
        name = fn.__qualname__.removesuffix(".__init__")

        @functools.wraps(fn)
        def call(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{name}() got {old}= and {new}=, two names for one "
                                    f"argument; pass {new}= only")
                warnings.warn(f"{name}({old}=...) is deprecated; pass {new}=... (the old name "
                              f"goes in qiadapters 0.5)", DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)
        return call
    return decorate
