"""Rendering a simulated run's frames off the control loop's thread.

Why: on this machine's software renderer a 640x480 frame costs 30-90 ms (4x multisampled), and
the execution video needs ~10 per simulated second; rendered inline they were the largest part of ``demo``
(issue 21). The loop only snapshots the state (a copy of ``MjData``, well under a millisecond);
a worker thread with its own renderer (its own GL context) draws the snapshots while the loop
goes on, and MuJoCo releases the GIL while it renders, so both use a core. The frames are the
same pictures as inline rendering: each is drawn from an exact copy of the state at its tick.
"""

from __future__ import annotations

import copy
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dream2flow.sim.env import SimEnv


class BackgroundFrames:
    """``add(tick)`` snapshots ``env``'s state and queues it; ``frames()`` waits for all and returns
    ``[(tick, rgb[h,w,3] uint8)]`` in the order added, then releases the worker and its renderer.
    Robot visible, no shadows or reflections (a picture for people, not a camera image).

    ``scale`` (0 < scale <= 1): frames are ``size(scale)`` = the camera's size times ``scale`` (even
    numbers), drawn without multisampling unless ``scale`` is 1: the software renderer's cost grows
    with pixels x samples, and a person judging the motion needs neither (issue 21: 0.5 draws a
    frame in about a third of the time of the full-size, 4x multisampled one).

    ``robot``/``shadows``: what ``SimEnv._render`` draws; with ``robot=False, shadows=True, scale=1``
    the frames are the camera images the video generator renders (it draws them on this worker
    while it renders the depth frames itself)."""

    def __init__(self, env: "SimEnv", scale: float = 1.0, *, robot: bool = True, shadows: bool = False) -> None:
        if not 0.0 < float(scale) <= 1.0:
            from dream2flow.errors import InvalidInput

            raise InvalidInput(f"frame scale must be in (0, 1], got {scale}")
        self._env = env
        self.scale = float(scale)
        self.robot, self.shadows = bool(robot), bool(shadows)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d2f-frames")
        self._queued: list[tuple[int, Future]] = []
        self._renderer: Any = None  # created, used and closed on the worker thread only

    def size(self) -> tuple[int, int]:
        """(width, height) of the frames in pixels."""
        cam = self._env.camera_model()
        if self.scale == 1.0:
            return cam.width, cam.height
        return max(2, 2 * round(cam.width * self.scale / 2)), max(2, 2 * round(cam.height * self.scale / 2))

    def add(self, tick: int, data: Any = None) -> None:
        """Queue a frame of ``data`` (default the env's state) as it is now."""
        snap = copy.copy(self._env.data if data is None else data)  # MjData's copy is a deep copy of the state
        self._queued.append((int(tick), self._pool.submit(self._draw, snap)))

    def _draw(self, data: Any) -> np.ndarray:
        import mujoco

        if self._renderer is None:
            w, h = self.size()
            model = self._env.model
            if self.scale != 1.0:  # a copy with multisampling off (the context takes it from the model)
                model = copy.copy(model)
                model.vis.quality.offsamples = 0
            self._renderer = mujoco.Renderer(model, h, w)
        return self._env._render(data, "rgb", self.robot, self.shadows, renderer=self._renderer)

    def _close_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def frames(self) -> list[tuple[int, np.ndarray]]:
        try:
            return [(k, f.result()) for k, f in self._queued]
        finally:
            self.close()

    def close(self) -> None:
        """Drop what is still queued and free the worker (idempotent)."""
        for _, f in self._queued:
            f.cancel()
        self._queued = []
        if self._pool is not None:
            self._pool.submit(self._close_renderer).result()
            self._pool.shutdown(wait=True)
            self._pool = None  # type: ignore[assignment]
