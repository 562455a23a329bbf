"""Issue 21: long-lived processes compile the planner once at start-up. After ``warm_planner`` a plan
compiles nothing new (checked on the jitted functions' own caches, not by timing); the service
warms up on its runner thread and reports what it compiled."""

from __future__ import annotations

import time

import pytest

from dream2flow.planning import synthetic
from dream2flow.planning.planner import plan_from_flow
from dream2flow.planning.warmup import warm_planner


def _cache_sizes() -> tuple[int, list[int]]:
    """Programs made ready in this process, and each one's compiled executables."""
    from dream2flow.planning import jax_setup

    return jax_setup.loaded_programs(), [f._cache_size() for f in jax_setup._LOADED.values()]


@pytest.mark.slow
def test_a_plan_after_warm_up_compiles_nothing_new() -> None:
    rep = warm_planner(methods=("dream2flow", "rigid_rigvid"))
    assert rep["seconds"] > 0
    assert rep["executables"] == ["ik[64]", "trajectory[H=32,n=64]", "trajectory[H=32,n=256]",
                                  "trajectory[H=32,n=1024]", "ik_sequence[H=32]"]
    before = _cache_sizes()
    for name in synthetic.TASKS:
        task = synthetic.make_task(name)
        plan_from_flow(task.flow, task.rgbd)
    plan_from_flow(task.flow, task.rgbd, method="rigid_rigvid")
    assert _cache_sizes() == before


@pytest.mark.slow
def test_service_warms_the_planner_on_its_runner_thread(tmp_path) -> None:
    from dream2flow.service.testing import ServiceThread, make_config

    cfg = make_config(tmp_path / "data", server={"warm_up": True})
    with ServiceThread(cfg) as st:
        runner = st.service.runner
        deadline = time.monotonic() + 300
        while runner.warmup is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.warmup is not None and "error" not in runner.warmup, runner.warmup
        assert runner.warmup["seconds"] > 0 and "trajectory[H=32,n=256]" in runner.warmup["executables"]


@pytest.mark.slow
def test_background_warm_up_runs_once_and_covers_the_flow_point_bucket() -> None:
    from dream2flow.planning.warmup import warm_in_background

    fut = warm_in_background(num_points=256)
    assert warm_in_background(num_points=256) is fut  # once per process and arguments
    rep = fut.result(timeout=600)
    assert rep["executables"] == ["ik[64]", "trajectory[H=32,n=64]", "trajectory[H=32,n=256]"]
    before = _cache_sizes()
    task = synthetic.make_task("block")  # 256 flow points at most: nothing new to compile
    plan_from_flow(task.flow, task.rgbd)
    assert _cache_sizes() == before
