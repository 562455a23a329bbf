"""I0 perceived and the grasps proposed while the video is still being made (issue 21).

Why: on a robot, I0 and D0 exist long before the video: a cloud model takes seconds to minutes to
generate it, a download or an upload takes a while, decoding ~0.1 s. The object's box (the
detector's, when the task gives none), its mask (the segmenter) and the grasp proposals (D0 and the
mask only) need nothing else, so they run meanwhile -- the detector and segmenter on one worker
thread (``flow.early``), the proposals in the worker process (``planning.grasp_prefetch``) -- and the
flow and plan stages take their results instead of computing them. Same perception objects, same
seed, same planner settings, same inputs: the flow, the plan and the command stream are the
sequential path's (tests/test_service_early.py compares them). Used by the service's task runner
and by the simulated episodes (``eval``, ``demo``); whoever starts it closes it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any

import numpy as np

from dream2flow.log import get_logger

if TYPE_CHECKING:
    from dream2flow.perception.factory import Perception
    from dream2flow.planning.grasp_prefetch import GraspPrefetch
    from dream2flow.types import RGBD, Plan

log = get_logger("early")


class _Waited:
    """A future whose ``result()`` records how long its caller waited for it (``waits[key]``)."""

    def __init__(self, future: Future, waits: dict[str, float], key: str) -> None:
        self.future, self.waits, self.key = future, waits, key

    def result(self) -> Any:
        t0 = time.perf_counter()
        try:
            return self.future.result()
        finally:
            self.waits[self.key] = time.perf_counter() - t0


class EarlyPerception:
    """Started at construction on ``rgbd`` (I0, D0, camera): with ``box`` (x0,y0,x1,y1 px in I0) the
    segmentation; without one, when ``perception`` has a detector and ``prompt`` is not empty, the
    detection, then the segmentation of its box; once the mask exists (and is not empty), the grasp
    proposals under ``planner_config`` (None = the planner's configuration file). Without a box or a
    detector nothing starts here: the flow stage detects (or says why it cannot), and the proposals
    start when its mask exists (``flow_kwargs``' ``on_mask``). Errors are not raised here: the flow
    stage raises each where it would have computed it."""

    def __init__(self, perception: "Perception", rgbd: "RGBD", *, box: Any = None, prompt: str = "", seed: int = 0,
                 planner_config: Any = None, grasps: bool = True) -> None:
        from dream2flow.flow.early import detect_early, segment_early

        self.perception, self.rgbd, self.seed = perception, rgbd, int(seed)
        self.box = None if box is None else tuple(box)
        self.prompt = prompt or ""
        self.planner_config = planner_config
        self.grasps = bool(grasps)
        self.timings: dict[str, float] = {}  # seconds of work on the workers: detect, segment
        self.waits: dict[str, float] = {}  # seconds the flow stage waited: detect, segment
        self.detection: Future | None = None  # of (box, score, detector name)
        self.mask: Future | None = None  # of the mask [H,W] bool
        self._prefetch: list["GraspPrefetch"] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            if self.box is None:
                if not self.prompt.strip() or not perception.has("detector"):
                    return
                self.detection = detect_early(perception, rgbd, self.prompt, self.timings)
            self.mask = segment_early(perception.segmenter(self.seed), rgbd,
                                      self.box if self.box is not None else self.detection,
                                      then=self._start_grasps, timings=self.timings)
        except Exception as exc:  # noqa: BLE001 (left for the flow stage, which meets the same problem)
            log.info("I0 not perceived ahead of the video (%s: %s); the flow stage does it", type(exc).__name__, exc)
            self.detection = self.mask = None

    @property
    def started(self) -> bool:
        """Whether anything started before the video (a detection or a segmentation)."""
        return self.mask is not None

    def _start_grasps(self, mask: np.ndarray) -> None:
        if not self.grasps:
            return
        from dream2flow.planning.grasp_prefetch import GraspPrefetch

        with self._lock:
            if self._closed:
                return
            try:
                self._prefetch.append(GraspPrefetch(self.rgbd, mask, self.planner_config))
            except Exception as exc:  # noqa: BLE001 (never the mask's error: the planner proposes them itself)
                log.warning("grasp prefetch not started (%s: %s)", type(exc).__name__, exc)

    def matches(self, perception: Any, rgbd: Any, box: Any, prompt: str, seed: int) -> bool:
        """Whether this was started on what the flow stage is given (else it is not used)."""
        return (perception is self.perception and rgbd is self.rgbd and int(seed) == self.seed
                and (None if box is None else tuple(box)) == self.box and (prompt or "") == self.prompt)

    def flow_kwargs(self, perception: Any, rgbd: Any, *, box: Any, prompt: str, seed: int) -> dict[str, Any]:
        """``perceive_flow`` keywords (``detection``, ``mask``, ``on_mask``) for a flow stage run on
        ``perception``, ``rgbd``, ``box``, ``prompt``, ``seed``; {} if those are not what this started on."""
        if not self.matches(perception, rgbd, box, prompt, seed):
            return {}
        kw: dict[str, Any] = {}
        if self.detection is not None:
            kw["detection"] = _Waited(self.detection, self.waits, "detect")
        if self.mask is not None:
            kw["mask"] = _Waited(self.mask, self.waits, "segment")
        else:
            kw["on_mask"] = self._start_grasps  # the proposals still start before tracking
        return kw

    @property
    def prefetch(self) -> "GraspPrefetch | None":
        """The grasp proposals, for ``plan_from_flow(prefetch=...)`` (it checks they match)."""
        with self._lock:
            return self._prefetch[-1] if self._prefetch else None

    def close(self, timeout_s: float = 60.0) -> None:
        """The task is over, whichever way: work not started is dropped, work running is waited for
        (a grasp job still running after ``timeout_s`` ends the worker process), so nothing of this
        task goes on computing. Idempotent."""
        with self._lock:
            self._closed = True
        futures = [f for f in (self.detection, self.mask) if f is not None]
        for f in reversed(futures):
            f.cancel()
        wait([f for f in futures if not f.cancelled()], timeout=timeout_s)
        with self._lock:
            prefetch = list(self._prefetch)
        for p in prefetch:
            p.release(timeout_s)

    def metrics(self, plan: "Plan | None" = None) -> dict[str, float]:
        """What ran early and how long it took (s): ``early_detect_s`` / ``early_segment_s`` (on the
        worker thread), ``early_grasps_s`` (proposals, from the mask to their answer),
        ``flow_detect_wait_s`` / ``flow_segment_wait_s`` (what the flow stage still waited for),
        ``early_perception`` (1 if I0 was perceived before the video), ``grasps_prefetched`` (1 if
        the plan used the early proposals: its ``meta.timing.grasps_prefetched``)."""
        m: dict[str, float] = {"early_perception": 1.0 if self.started else 0.0}
        for k, v in list(self.timings.items()):
            m[f"early_{k}_s"] = float(v)
        for k, v in list(self.waits.items()):
            m[f"flow_{k}_wait_s"] = float(v)
        pre = self.prefetch
        if pre is not None and pre.seconds is not None:
            m["early_grasps_s"] = float(pre.seconds)
        if plan is not None:
            m["grasps_prefetched"] = 1.0 if (plan.meta.get("timing") or {}).get("grasps_prefetched") else 0.0
        return m


__all__ = ["EarlyPerception"]
