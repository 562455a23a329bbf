"""Episodes of ``dream2flow eval`` run side by side as Ray tasks (issue 18).

Why Ray: it is a well-kept distributed engine that runs the same code on a local cluster (started
here, ``num_cpus=workers``) or on an existing cluster (``ray_address``), and ships results back as
pickled objects. Every episode is a pure function of (task, seed, options): it builds its own
scene, video, flow and plan from its seed, so where it runs cannot change its result, and the
results are returned in the order the jobs were given (the serial order) whatever order they
finish in. ``workers == 1`` with no address runs in this process, without Ray.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from dream2flow.errors import InvalidInput, NotReady

MAX_WORKERS = 64


@dataclass(frozen=True)
class EpisodeJob:
    """One ``run_episode`` call: ``task``, ``seed`` and its keyword options (picklable)."""

    task: str
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    perception_spec: str | None = None  # ``--perception SPEC``, loaded where the episode runs


_PERCEPTION: dict[str | None, Any] = {}  # per process: a worker loads each configuration once


def _run_job(job: EpisodeJob, perception: Any = None) -> Any:
    from dream2flow.episode import run_episode
    from dream2flow.perception.factory import load_perception

    if perception is None:
        if job.perception_spec not in _PERCEPTION:
            _PERCEPTION[job.perception_spec] = load_perception(job.perception_spec)
        perception = _PERCEPTION[job.perception_spec]
    return run_episode(job.task, job.seed, perception=perception, **job.options)


def _eta(done: int, total: int, elapsed_s: float) -> str:
    if done == 0:
        return "ETA ?"
    left = elapsed_s / done * (total - done)
    return f"ETA {int(left // 60)}:{int(left % 60):02d}"


def progress_bar(done: int, total: int, elapsed_s: float, width: int = 20) -> str:
    """``[#####-----] 5/10 (50%) 12 s elapsed, ETA 0:12``."""
    fill = int(round(width * done / max(total, 1)))
    return (f"[{'#' * fill}{'-' * (width - fill)}] {done}/{total} ({100 * done // max(total, 1)}%) "
            f"{elapsed_s:.0f} s elapsed, {_eta(done, total, elapsed_s)}")


def run_episodes(jobs: list[EpisodeJob], *, workers: int = 1, ray_address: str | None = None,
                 on_done: Callable[[int, Any, float], None] | None = None, perception: Any = None) -> list[Any]:
    """Results of ``jobs`` in their order. ``workers`` episodes run at once (Ray tasks of one CPU
    each on a local cluster, or on the cluster at ``ray_address``); ``on_done(index, result,
    elapsed_s)`` is called in this process as each one finishes (progress). ``perception``: the
    loaded perception for a serial run (Ray workers load ``job.perception_spec`` themselves)."""
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(f"workers must be in [1, {MAX_WORKERS}], got {workers}")
    t0 = time.perf_counter()
    results: list[Any] = [None] * len(jobs)
    if workers == 1 and ray_address is None:
        for i, job in enumerate(jobs):
            results[i] = _run_job(job, perception)
            if on_done is not None:
                on_done(i, results[i], time.perf_counter() - t0)
        return results
    try:
        import ray
    except ImportError as exc:
        raise NotReady("--workers > 1 or --ray needs Ray: pip install 'dream2flow-edge[eval]'") from exc

    started_here = not ray.is_initialized()
    if started_here:
        # A local cluster's workers inherit this process's environment (PYTHONPATH, MUJOCO_GL,
        # D2F_*), so they import the same code and configuration as a serial run.
        kw: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
        if ray_address is None:
            kw.update(num_cpus=workers, object_store_memory=256 * 1024 * 1024)
        else:
            kw["address"] = ray_address
        try:
            ray.init(**kw)
        except Exception as exc:  # ConnectionError, RuntimeError…: Ray's own messages are clear
            raise NotReady(f"could not start or reach Ray ({'local' if ray_address is None else ray_address}): "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_run_job)
        pending = {remote.remote(job): i for i, job in enumerate(jobs[:workers])}
        nxt = len(pending)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            results[i] = ray.get(ready[0])
            if nxt < len(jobs):  # at most ``workers`` in flight, even on a bigger cluster
                pending[remote.remote(jobs[nxt])] = nxt
                nxt += 1
            if on_done is not None:
                on_done(i, results[i], time.perf_counter() - t0)
    finally:
        if started_here:
            ray.shutdown()
    return results
