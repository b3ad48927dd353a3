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


def interleaved_samples(fns: Mapping[str, Callable[[], object]], reps: int = 7, warmup: int = 1,
                        budget_s: float = 60.0, min_reps: int = 3,
                        desc: str | None = None) -> dict[str, list[float]]:
    """Like :func:`interleaved` but returns every round's seconds, so that ratios can be
    *paired* round by round (see :func:`paired_ratio`); shows a tqdm bar when ``desc`` is set.

    Stops after ``min_reps`` rounds once ``budget_s`` has passed (warm-up not counted).
    """
    from tqdm import tqdm

    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    start = time.perf_counter()
    bar = tqdm(range(reps), desc=desc, leave=False, disable=desc is None)
    for rnd in bar:
        for name in names:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
        if rnd + 1 >= min_reps and time.perf_counter() - start > budget_s:
            break
    bar.close()
    return times


def median(samples) -> float:
    return statistics.median(samples)


def paired_ratio(samples: Mapping[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of ``t_a / t_b``: pairs calls made back to back, so slow drifts of a
    shared machine's load cancel better than in a ratio of medians."""
    return statistics.median(x / y for x, y in zip(samples[a], samples[b]))
