"""One way to time calls, shared by every benchmark: warm up, then time each function in turn,
round by round, so that a change in the machine's load touches every function alike."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np


def time_rounds(functions: dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function: `warmup` untimed rounds, then `rounds` timed ones, interleaved."""
    for _ in range(warmup):
        for fn in functions.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def summary(times: list[float], items: int = 1) -> dict[str, float]:
    """p50 and p95 in milliseconds, and items per second at the median."""
    p50 = statistics.median(times)
    return {"p50_ms": 1000 * p50, "p95_ms": 1000 * float(np.percentile(times, 95)), "per_s": items / p50, "n": len(times)}
