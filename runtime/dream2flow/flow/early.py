"""I0's segmentation started before the video exists.

Why: the video generator is given I0; the object box comes from the operator, a detector or the
simulator, also on I0. Segmenting I0 needs nothing else, so it can run while the video is being
generated, fetched or decoded, instead of inside the flow stage that follows (issue 21). The mask
is the one the flow stage would compute: the same segmenter (seeded per call), the same inputs.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from dream2flow.types import RGBD

_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d2f-segment")
        return _POOL


def segment_early(segmenter: Any, rgbd: "RGBD", box: Any,
                  then: Callable[[np.ndarray], None] | None = None) -> Future:
    """A future of ``segmenter(rgbd.rgb, box, depth_m=rgbd.depth_m)`` as a bool mask, computed on a
    worker thread; ``then(mask)`` runs there once it exists (e.g. ``GraspPrefetch``). Pass the future
    to ``extract_flow``/``perceive_flow`` as ``mask=`` (its error is raised there)."""
    from dream2flow.perception.protocols import validate_box

    H, W = rgbd.depth_m.shape[:2]

    def run() -> np.ndarray:
        box_f = validate_box(box, W, H)  # as extract_flow does (which reports a bad box first)
        mask = np.asarray(segmenter(rgbd.rgb, box_f, depth_m=rgbd.depth_m), dtype=bool)
        if then is not None and mask.shape == (H, W) and mask.any():
            then(mask)
        return mask

    return _pool().submit(run)
