"""Issue 16: the service on the simulated cell (MuJoCo camera + the mujoco backend in one scene).

- Every task starts from the seeded scene: a second identical task no longer finds the drawer
  already open.
- A task that ran on the simulated scene carries the scene's own success check as its outcome
  (ACHIEVED / NOT_ACHIEVED); a dry run, or a backend that does not act on the scene, says
  NOT_CHECKED: SUCCEEDED alone only means the pipeline finished.
- A stopped simulated arm comes to rest (GetRobotState reports zero velocity).

The stand-in pipeline runs the real control loop on a short joint move and then, for "good"
tasks, puts the drawer where a successful motion would leave it: the service's handling of the
scene is under test here, not the planner (test_service_e2e runs the real pipeline)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from dream2flow.service import client as C  # noqa: E402
from dream2flow.service.testing import (OPERATOR_TOKEN, ServiceThread, make_config, write_test_depth,  # noqa: E402
                                        write_test_video)
from dream2flow.v1 import robot_pb2, task_pb2  # noqa: E402

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def drawer_pipeline(seen_at_start: list[float]) -> Any:
    def run_task(inputs: Any, backend: Any, *, out_dir: Any = None, progress: Any = None, cancel: Any = None,
                 on_tick: Any = None, pictures: bool = True) -> Any:
        from dream2flow.control.loop import execute_plan
        from dream2flow.pipeline import StageRecord, TaskOutcome
        from dream2flow.types import Plan

        env = getattr(backend, "env", None)  # the mujoco backend's scene (None for kinematic)
        if env is not None:
            seen_at_start.append(float(env.success().value))
        q0 = np.asarray(backend.state().q, dtype=np.float64)
        H = 11
        q = q0 + np.linspace(0.0, 1.0, H)[:, None] * np.array([0.05, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0])
        plan = Plan(q=q, dt_s=0.1, gripper=np.zeros(H), predicted_points=np.zeros((H, 1, 3)))
        progress("execute", 0.0, {})
        res = execute_plan(plan, backend, rate_hz=inputs.rate_hz, stop_event=cancel, on_tick=on_tick,
                           dry_run=bool(inputs.dry_run))
        if not res.ok:
            return TaskOutcome(False, "execute", res.reason, {"execute": StageRecord(False, 0.0, res.reason)})
        if env is not None and not inputs.dry_run and inputs.instruction == "open the drawer":
            with backend.lock:
                env.set_task_progress(1.0)  # where a successful motion leaves the drawer
        progress("execute", 1.0, {})
        return TaskOutcome(True, None, None, {"execute": StageRecord(True, 0.0)}, execution=res)

    return run_task


@pytest.fixture
def cell(tmp_path: Path) -> Iterator[tuple[ServiceThread, C.Connection, list[float], tuple[str, str]]]:
    import dream2flow.sim  # noqa: F401
    seen: list[float] = []
    cfg = make_config(tmp_path / "data", camera={"type": "sim", "task": "open_drawer", "seed": 0},
                      robot={"backend": "mujoco", "allowed_backends": ["mujoco", "kinematic"]})
    with ServiceThread(cfg, pipeline=drawer_pipeline(seen)) as st, \
            C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        vid = C.upload_file(conn, write_test_video(tmp_path / "v.mp4")).upload_id
        dep = C.upload_file(conn, write_test_depth(tmp_path / "d.npy"), "VIDEO_DEPTH").upload_id
        yield st, conn, seen, (vid, dep)


def _run(conn: C.Connection, ids: tuple[str, str], instruction: str, **opts: Any) -> task_pb2.Task:
    t = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
        instruction=instruction, box=task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260),
        video_upload_id=ids[0], video_depth_upload_id=ids[1], options=task_pb2.TaskOptions(**opts))).task
    for _ in C.watch(conn, t.task_id):
        pass
    return C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=t.task_id)).task


def test_scene_reset_between_tasks_and_outcome_check(cell: Any) -> None:
    st, conn, seen, ids = cell
    first = _run(conn, ids, "open the drawer")
    assert C.STATE_NAMES[first.state] == "SUCCEEDED", first.error_message
    oc = first.outcome_check
    assert oc.verdict == task_pb2.OUTCOME_VERDICT_ACHIEVED and oc.checker == "sim:open_drawer success check"
    assert oc.value >= 0.10 and "drawer open" in oc.detail
    env = st.service.devices.camera().env
    assert env.success().success  # the drawer is open now ...

    again = _run(conn, ids, "touch the drawer")  # ... but the next task starts from the seeded scene
    assert seen[1] == pytest.approx(seen[0], abs=1e-6) and seen[1] < 0.01
    assert C.STATE_NAMES[again.state] == "SUCCEEDED"
    assert again.outcome_check.verdict == task_pb2.OUTCOME_VERDICT_NOT_ACHIEVED  # finished ≠ achieved
    assert again.metrics["sim_scene_reset"] == 1.0

    dry = _run(conn, ids, "open the drawer", dry_run=True)
    assert (C.STATE_NAMES[dry.state], dry.outcome_check.verdict) == ("SUCCEEDED", task_pb2.OUTCOME_VERDICT_NOT_CHECKED)
    kin = _run(conn, ids, "open the drawer", backend="kinematic")
    assert kin.outcome_check.verdict == task_pb2.OUTCOME_VERDICT_NOT_CHECKED
    assert "cannot judge" in kin.outcome_check.detail

    # After a move, the simulated arm is at rest: zero velocity is reported, not the last one.
    st_ = C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest()).state
    assert st_.simulated and float(np.abs(st_.dq_rad_s).max()) < 1e-2
