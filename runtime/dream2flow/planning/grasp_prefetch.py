"""Grasp proposals started as soon as the object mask exists, in a worker process.

Why: the planner's object cloud and grasp proposals need only D0 and the object mask, yet the
plan stage used to compute them after the whole flow (tracking, depth alignment, lifting). Started
right after segmentation they run while the video is made or tracked, so on a second core their
~0.3-0.5 s leave the video-to-plan path (issue 21). A process, not a thread: the proposals are a
Python loop that holds the GIL, and the tracker makes hundreds of short OpenCV calls, each of
which then waited up to the interpreter's 5 ms switch interval to get the GIL back (measured: the
drawer's tracking 3x slower with the proposals on a thread). The worker (``grasp_worker``) is
started once per process and kept; if it cannot run, the planner proposes the grasps itself. The result is the same: ``plan_from_flow`` uses it only when D0, the mask and
the grasp settings it would use are the ones it was started with, and computes them itself
otherwise.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dream2flow.planning.config import PlannerConfig
    from dream2flow.types import RGBD


class _Worker:
    """The worker process (``grasp_worker``) and the thread that talks to it (one job at a time;
    waiting on the pipe leaves the GIL). Restarted when it has died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d2f-grasps")

    def _ensure(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            env = dict(os.environ)
            pkg_root = str(Path(__file__).resolve().parents[2])  # the folder that holds dream2flow/
            env["PYTHONPATH"] = os.pathsep.join([pkg_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
            self._proc = subprocess.Popen([sys.executable, "-m", "dream2flow.planning.grasp_worker"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                          start_new_session=True)  # Ctrl-C is for the parent
        return self._proc

    def start(self) -> None:
        with self._lock:
            self._ensure()

    def _call(self, rgbd: "RGBD", mask: np.ndarray, config: "PlannerConfig") -> tuple:
        from dream2flow.planning.grasp_worker import read_message, write_message

        with self._lock:
            proc = self._ensure()
            try:
                write_message(proc.stdin, (rgbd, mask, config))
                status, value = read_message(proc.stdout)
            except (OSError, EOFError):
                proc.kill()
                self._proc = None
                raise
        if status != "ok":
            raise value
        return value

    def submit(self, rgbd: "RGBD", mask: np.ndarray, config: "PlannerConfig") -> Future:
        return self._pool.submit(self._call, rgbd, mask, config)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()  # the worker ends at the end of its input
                proc.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()


_WORKER: _Worker | None = None
_WORKER_LOCK = threading.Lock()


def _worker() -> _Worker:
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = _Worker()
            atexit.register(_WORKER.close)
        return _WORKER


def start_worker() -> None:
    """Start the worker process now (its start-up, ~0.5 s of CPU, then overlaps other work)."""
    _worker().start()


def stop_worker() -> None:
    """End the worker process now (a server stopping); the next prefetch starts a new one."""
    with _WORKER_LOCK:
        w = _WORKER
    if w is not None:
        w.close()


def worker_pid() -> int | None:
    """The worker process's id while it runs (tests: nothing is left behind), else None."""
    w = _WORKER
    proc = w._proc if w is not None else None
    return proc.pid if proc is not None and proc.poll() is None else None


def grasp_key(config: "PlannerConfig") -> tuple:
    """The settings grasp proposals depend on (``grasps.GRASP_CONFIG_FIELDS``), as a comparable tuple."""
    from dream2flow.planning.grasps import GRASP_CONFIG_FIELDS

    return tuple(getattr(config, f) for f in GRASP_CONFIG_FIELDS)


class GraspPrefetch:
    """``clouds_from_rgbd`` + ``propose_grasps`` of (``rgbd``, ``mask``) under ``config`` (None = the
    planner's configuration file), computed in the worker process from construction on."""

    def __init__(self, rgbd: "RGBD", mask: np.ndarray, config: "PlannerConfig | None" = None) -> None:
        from dream2flow.planning.config import load_planner_config

        self.rgbd = rgbd
        self.mask = np.array(mask, dtype=bool)  # a copy: the caller may go on using its array
        self.config = config or load_planner_config()
        self.key = grasp_key(self.config)
        self.seconds: float | None = None  # from submission to the answer (queue + worker), once done
        t0 = time.perf_counter()
        self._future: Future = _worker().submit(rgbd, self.mask, self.config)
        self._future.add_done_callback(lambda f: setattr(self, "seconds", time.perf_counter() - t0))

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

    def release(self, timeout_s: float = 30.0) -> None:
        """The job is no longer wanted (its task ended, whichever way): dropped if it has not started,
        else waited for; one still running after ``timeout_s`` ends the worker process (the next
        prefetch starts another), so no job of a finished task goes on computing."""
        if self._future.cancel() or self._future.done():
            return
        try:
            self._future.result(timeout=timeout_s)
        except FutureTimeout:
            stop_worker()
        except Exception:  # noqa: BLE001 (its error was the planner's to report, or nobody's)
            pass

