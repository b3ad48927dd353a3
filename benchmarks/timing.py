"""Timing helpers shared by the benchmarks: interleaved repetitions, medians, peak memory.

Machines here are noisy, so every comparison times its contenders *interleaved* (A, B, C, A,
B, C, ...) after a warm-up and reports medians; ratios within one run are what we quote.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping


def interleaved(fns: Mapping[str, Callable[[], object]], reps: int = 7, warmup: int = 2,
                budget_s: float = 20.0) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin.

    Each function is warmed up ``warmup`` times; then rounds of one call each are repeated
    ``reps`` times, stopping early (after at least 3 rounds) once ``budget_s`` has passed.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for rnd in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if rnd >= 2 and time.perf_counter() - start > budget_s:
            break
    return {name: statistics.median(ts) for name, ts in times.items()}


def once(fn: Callable[[], object]) -> float:
    """Seconds for a single call (for contenders too slow to repeat)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
