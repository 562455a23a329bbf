"""Grasp proposals started as soon as the object mask exists, on a worker thread.

Why: the planner's object cloud and grasp proposals need only D0 and the object mask, yet the
plan stage used to compute them after the whole flow (tracking, depth alignment, lifting). Started
right after segmentation they run while the tracker runs (OpenCV's LK releases the GIL), so on a
second core most of their ~0.3-0.5 s leaves the video-to-plan path (issue 21). The result is the
same object: ``plan_from_flow`` uses it only when D0, the mask and the grasp settings it would use
are the ones it was started with, and computes them itself otherwise.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dream2flow.planning.config import PlannerConfig
    from dream2flow.types import RGBD

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d2f-grasps")
        return _POOL


def grasp_key(config: "PlannerConfig") -> tuple:
    """The settings grasp proposals depend on (``grasps.GRASP_CONFIG_FIELDS``), as a comparable tuple."""
    from dream2flow.planning.grasps import GRASP_CONFIG_FIELDS

    return tuple(getattr(config, f) for f in GRASP_CONFIG_FIELDS)


class GraspPrefetch:
    """``clouds_from_rgbd`` + ``propose_grasps`` of (``rgbd``, ``mask``) under ``config`` (None = the
    planner's configuration file), computed on a worker thread from construction on."""

    def __init__(self, rgbd: "RGBD", mask: np.ndarray, config: "PlannerConfig | None" = None) -> None:
        from dream2flow.planning.config import load_planner_config

        self.rgbd = rgbd
        self.mask = np.array(mask, dtype=bool)  # a copy: the caller may go on using its array
        self.config = config or load_planner_config()
        self.key = grasp_key(self.config)
        self._future: Future = _pool().submit(self._compute)

    def _compute(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
        from dream2flow.planning.grasps import MIN_POINTS_BETWEEN, clouds_from_rgbd, propose_grasps

        obj, normals, scene, cam = clouds_from_rgbd(self.rgbd, self.mask)
        grasps = (propose_grasps(obj, normals, scene, camera_pos=cam, config=self.config)
                  if len(obj) >= MIN_POINTS_BETWEEN else [])
        return obj, normals, scene, cam, grasps

    def matches(self, rgbd: "RGBD", mask: np.ndarray, config: "PlannerConfig") -> bool:
        """Whether this is what the planner would compute for ``rgbd``, ``mask`` and ``config``."""
        same_rgbd = rgbd is self.rgbd or (np.array_equal(rgbd.depth_m, self.rgbd.depth_m, equal_nan=True)
                                          and np.array_equal(rgbd.camera.T_base_cam, self.rgbd.camera.T_base_cam)
                                          and np.array_equal(rgbd.camera.K, self.rgbd.camera.K))
        return same_rgbd and np.array_equal(np.asarray(mask, bool), self.mask) and grasp_key(config) == self.key

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any]]:
        """(object points, normals, scene points, camera centre, grasps); waits; re-raises its error."""
        return self._future.result()

    def cancel(self) -> None:
        self._future.cancel()

