"""I0's detection and segmentation started before the video exists.

Why: the video generator is given I0; the object box comes from the operator, a detector or the
simulator, also on I0. Detecting the object in I0 and segmenting it need nothing else, so they can
run while the video is being generated, fetched or decoded, instead of inside the flow stage that
follows (issue 21). The box and mask are the ones the flow stage would compute: the same detector
and segmenter (seeded per call), the same inputs, on one worker thread (detection first).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from dream2flow.perception.factory import Perception
    from dream2flow.types import RGBD

_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d2f-segment")
        return _POOL


def shutdown() -> None:
    """End the worker thread once its jobs are done (a server stopping); the next job starts a new one."""
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def detect_early(perception: "Perception", rgbd: "RGBD", prompt: str,
                 timings: dict[str, float] | None = None) -> Future:
    """A future of ``flow.perceived.detect_box(perception, rgbd.rgb, prompt)`` -> (box, score, detector
    name), computed on the worker thread; pass it to ``perceive_flow`` as ``detection=`` (its error is
    raised there, where the flow stage would have detected) and to ``segment_early`` as ``box``.
    ``timings["detect"]``: its seconds on the worker, once done."""
    from dream2flow.flow.perceived import detect_box

    def run() -> tuple:
        t0 = time.perf_counter()
        try:
            return detect_box(perception, rgbd.rgb, prompt)
        finally:
            if timings is not None:
                timings["detect"] = time.perf_counter() - t0

    return _pool().submit(run)


def segment_early(segmenter: Any, rgbd: "RGBD", box: Any,
                  then: Callable[[np.ndarray], None] | None = None,
                  timings: dict[str, float] | None = None) -> Future:
    """A future of ``segmenter(rgbd.rgb, box, depth_m=rgbd.depth_m)`` as a bool mask, computed on a
    worker thread; ``then(mask)`` runs there once it exists (e.g. ``GraspPrefetch``). Pass the future
    to ``extract_flow``/``perceive_flow`` as ``mask=`` (its error is raised there). ``box``: x0,y0,x1,y1
    px, or ``detect_early``'s future (its box; its error becomes this one's). ``timings["segment"]``:
    the segmenter's seconds on the worker, once done."""
    from dream2flow.perception.protocols import validate_box

    H, W = rgbd.depth_m.shape[:2]

    def run() -> np.ndarray:
        b = box.result()[0] if isinstance(box, Future) else box  # detect_early ran first (one worker, FIFO)
        t0 = time.perf_counter()
        box_f = validate_box(b, W, H)  # as extract_flow does (which reports a bad box first)
        mask = np.asarray(segmenter(rgbd.rgb, box_f, depth_m=rgbd.depth_m), dtype=bool)
        if timings is not None:
            timings["segment"] = time.perf_counter() - t0
        if then is not None and mask.shape == (H, W) and mask.any():
            then(mask)
        return mask

    return _pool().submit(run)
