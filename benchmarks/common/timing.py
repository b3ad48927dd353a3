"""The one timing harness of the speed benchmarks (speed, circuits, physics).

Machines here are shared and noisy, so contenders are timed *interleaved*: after ``warmup``
untimed calls of each, every round calls each contender once (A, B, C, A, B, C, ...; with
``alternate=True`` odd rounds run in reverse order, C, B, A, so that going first or last hits
all alike).  Each call records wall time (``time.perf_counter``) and process CPU time
(``time.process_time``, all threads; hardly inflated when other processes take the cores),
and the intra-op thread count in force is recorded with them.

Report medians, and ratios as :meth:`Timings.paired_ratio`: the median over rounds of
``t_a / t_b``, which pairs calls made back to back, so slow drifts of the machine's load
cancel better than in a ratio of medians.

>>> t = interleaved({"a": lambda: sum(range(1000)), "b": lambda: sum(range(2000))}, reps=5)
>>> t.rounds("a"), t.threads >= 1
(5, True)
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch


@dataclass
class Timings:
    """Per contender, every round's wall and CPU seconds (and the calls' return values)."""
    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    threads: int
    results: dict[str, list[object]] = field(default_factory=dict, repr=False)

    def median(self, name: str) -> float:
        """Median wall seconds per call."""
        return statistics.median(self.wall[name])

    def cpu_median(self, name: str) -> float:
        """Median process CPU seconds per call (all threads)."""
        return statistics.median(self.cpu[name])

    def medians(self) -> dict[str, float]:
        return {name: self.median(name) for name in self.wall}

    def rounds(self, name: str) -> int:
        return len(self.wall[name])

    def paired_ratio(self, a: str, b: str, cpu: bool = False) -> float:
        """Median over rounds of ``t_a / t_b`` (wall time, or CPU time with ``cpu``)."""
        times = self.cpu if cpu else self.wall
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    def paired_difference(self, a: str, b: str) -> float:
        """Median over rounds of ``t_a - t_b`` in wall seconds (what ``a`` adds to ``b``)."""
        return statistics.median(x - y for x, y in zip(self.wall[a], self.wall[b]))

    def extend(self, other: "Timings") -> None:
        """Append another run's rounds (same contenders or a subset) to these."""
        for name in other.wall:
            self.wall[name] += other.wall[name]
            self.cpu[name] += other.cpu[name]
            self.results.setdefault(name, []).extend(other.results.get(name, []))


def interleaved(fns: Mapping[str, Callable[[], object]], reps: int = 7, warmup: int = 1,
                min_reps: int | None = None, budget_s: float = math.inf,
                alternate: bool = False, desc: str | None = None) -> Timings:
    """Time ``fns`` round-robin: ``warmup`` untimed calls each, then up to ``reps`` rounds.

    After ``min_reps`` rounds (default ``reps``) it stops early once ``budget_s`` seconds
    (warm-up not counted) have passed.  A tqdm bar is shown when ``desc`` is set.
    """
    from tqdm import tqdm

    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    min_reps = reps if min_reps is None else min_reps
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    results = {name: [] for name in names}
    start = time.perf_counter()
    bar = tqdm(range(reps), desc=desc, leave=False, disable=desc is None)
    for rnd in bar:
        for name in (names[::-1] if alternate and rnd % 2 else names):
            w0, c0 = time.perf_counter(), time.process_time()
            out = fns[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
            results[name].append(out)
        if rnd + 1 >= min_reps and time.perf_counter() - start > budget_s:
            break
    bar.close()
    return Timings(wall, cpu, torch.get_num_threads(), results)
