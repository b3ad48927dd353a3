"""The accuracy frontier: which methods no other method beats on both parameters and accuracy.

A point ``p = (cost, accuracy)`` is *dominated* when another point costs no more and is at
least as accurate, and is strictly better in one of the two.  The frontier is the set of
points no point dominates; sorted by cost, its accuracies strictly increase.  ``below``
measures how far a point is from the frontier of the others at its own cost::

    gap(p) = acc(p) - max{acc(q) : q another point, cost(q) <= cost(p)}

(positive: ``p`` is the most accurate at its cost, by that margin; negative: some cheaper
or equal point beats it by ``-gap``).
"""
from __future__ import annotations

import math
from typing import Iterable, Optional


def frontier(points: Iterable[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points of ``points`` (``(cost, accuracy)`` pairs), in
    increasing cost.  Points with a NaN coordinate never enter the frontier; of exact
    duplicates the first is kept.  ``O(m log m)``: sort by cost (then accuracy, descending)
    and keep a point when it beats the best accuracy seen so far."""
    pts = [(float(c), float(a), i) for i, (c, a) in enumerate(points)
           if not (math.isnan(float(c)) or math.isnan(float(a)))]
    pts.sort(key=lambda t: (t[0], -t[1], t[2]))
    keep, best = [], -math.inf
    for cost, acc, i in pts:
        if acc > best:
            keep.append(i)
            best = acc
    return keep


def best_at_most(points, cost: float, exclude: Optional[int] = None) -> Optional[int]:
    """Index of the most accurate point costing ``<= cost`` (ties: the cheaper, then the
    first), ``exclude`` left out; None when there is none."""
    found = None
    for i, (c, a) in enumerate(points):
        if i == exclude or math.isnan(float(a)) or float(c) > cost:
            continue
        if found is None or (a, -c) > (points[found][1], -points[found][0]):
            found = i
    return found


def gap(points, i: int) -> float:
    """``acc(i)`` minus the best accuracy of the other points costing no more (``+inf``
    when no other point costs as little)."""
    j = best_at_most(points, points[i][0], exclude=i)
    return math.inf if j is None else float(points[i][1]) - float(points[j][1])
