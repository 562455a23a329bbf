"""Wall-clock timing shared by the benches (medians of repeated calls after a warm-up)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def timeit(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, float]:
    """``fn`` called ``warmup`` times untimed, then ``repeats`` times: median and min in ms."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(ts), "min_ms": min(ts), "repeats": repeats}
