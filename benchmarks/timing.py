"""Shared timing helper for the benchmarks (medians: these machines are shared and noisy)."""
from __future__ import annotations

import time

import numpy as np


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))
