"""Argument checks shared by the whole library.

Every public entry point validates its input *before* touching any state, and every error
names the argument, the value it got and what would have been valid.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping


def choice(arg: str, value: Any, valid: Iterable[Any] | Mapping[str, Any]) -> Any:
    """Return ``value`` if it is one of ``valid`` (a registry's keys), else raise ValueError."""
    options = list(valid.keys() if isinstance(valid, Mapping) else valid)
    if value not in options:
        raise ValueError(f"{arg}={value!r} is not valid; choose one of {options}")
    return value


def integer(arg: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as int if it is an integer in ``[low, high]``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        if not (hasattr(value, "__index__") and not isinstance(value, bool)):
            raise ValueError(f"{arg}={value!r} must be an integer")
        value = int(value.__index__())
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{arg}={value!r} is out of range; valid: {lo} <= {arg} <= {hi}")
    return value


def orders(arg: str, value: Any, n: int) -> tuple[int, ...]:
    """Validate a collection of Hamming weights: distinct integers in ``0..n``, returned sorted."""
    if isinstance(value, int):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{arg}={value!r} must be a sequence of integers in 0..{n}") from None
    if not items:
        raise ValueError(f"{arg}={value!r} is empty; give at least one order in 0..{n}")
    out = tuple(integer(arg, k, low=0, high=n) for k in items)
    if len(set(out)) != len(out):
        raise ValueError(f"{arg}={value!r} has duplicates; each order may appear once")
    return tuple(sorted(out))
