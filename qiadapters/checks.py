"""Argument checks shared by the whole library and by packages built on it (``physics``).

Every public entry point validates its input *before* touching any state, and every error
names the argument, the value it got and what would have been valid.  Each check returns the
value normalised (an ``int``, a ``float``, a sorted tuple), so callers store what it returns.

>>> from qiadapters import checks
>>> checks.number("kappa", 0.5, low=0, strict=True)
0.5
>>> checks.choice("boundary", "neumann", {"neumann": 1, "dirichlet": 2})
'neumann'
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

__all__ = ["choice", "integer", "number", "flag", "orders"]


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


def number(arg: str, value: Any, *, low: float = -math.inf, strict: bool = False) -> float:
    """Return ``value`` as float if it is a finite real number ``> low`` (``strict``) or
    ``>= low``, else raise ValueError (booleans are refused: ``True`` is no number here)."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and (value > low if strict else value >= low))
    if not ok:
        bound = "" if low == -math.inf else f" {'>' if strict else '>='} {low:g}"
        raise ValueError(f"{arg}={value!r} is not valid; valid: a finite number{bound}")
    return float(value)


def flag(arg: str, value: Any, error: type[Exception] = ValueError) -> bool:
    """Return ``value`` if it is ``True`` or ``False``, else raise ``error`` (ValueError for a
    config field; the model API's boolean arguments raise TypeError)."""
    if not isinstance(value, bool):
        raise error(f"{arg}={value!r} must be True or False")
    return value


def orders(arg: str, value: Any, n: int, low: int = 0) -> tuple[int, ...]:
    """Validate a collection of Hamming weights: distinct integers in ``low..n``, returned
    sorted (one integer counts as a collection of one; a string is refused, not read digit by
    digit)."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{arg}={value!r} is a string, not a sequence of orders; give a tuple "
                         f"of integers, e.g. {arg}=(1, 2)")
    try:
        items = (value,) if isinstance(value, int) else tuple(value)
    except TypeError:
        raise ValueError(f"{arg}={value!r} must be a sequence of integers in {low}..{n}") from None
    if not items:
        raise ValueError(f"{arg}={value!r} is empty; give at least one order in {low}..{n}")
    for k in items:
        if isinstance(k, bool) or not (isinstance(k, int) or hasattr(k, "__index__")):
            raise ValueError(f"{arg}={value!r} contains {k!r}; each order must be an integer "
                             f"in {low}..{n}")
    out = tuple(integer(arg, k, low=low, high=n) for k in items)
    if len(set(out)) != len(out):
        raise ValueError(f"{arg}={value!r} has duplicates; each order may appear once")
    return tuple(sorted(out))
