"""Acceptance 1: the real pipeline behind the service. A loopback server with the simulated
camera and the kinematic backend; the client makes the task's video with the simulator's video
generator, uploads it (and its relative depth) in chunks, submits, watches the events to the
end, and finds the job, its artifacts and its audit entries in the store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from dream2flow.service import client as C  # noqa: E402
from dream2flow.service.testing import OPERATOR_TOKEN, VIEWER_TOKEN, ServiceThread, make_config  # noqa: E402
from dream2flow.v1 import robot_pb2, task_pb2  # noqa: E402

TASK, SEED = "bread_in_bowl", 0


@pytest.mark.slow
@pytest.mark.sim
def test_upload_submit_watch_to_completion(tmp_path: Path) -> None:
    from dream2flow import sim
    from dream2flow.types import ObjectFlow, Plan
    from dream2flow.video.encode import write_video

    env = sim.make_env(TASK, SEED)  # the "cloud": the same scene as the server's camera
    gen = env.generate_video("clean", num_frames=24, seed=SEED)
    write_video(tmp_path / "video.mp4", gen.video.frames, gen.video.fps)
    np.save(tmp_path / "video_depth.npy", np.asarray(gen.rel_depth, dtype=np.float32), allow_pickle=False)
    x0, y0, x1, y1 = (int(v) for v in env.object_box())
    env.close() if hasattr(env, "close") else None

    cfg = make_config(tmp_path / "data", camera={"type": "sim", "task": TASK, "seed": SEED},
                      robot={"backend": "kinematic"})
    with ServiceThread(cfg) as st, C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        obs = C.call(conn, conn.tasks.GetObservation, task_pb2.GetObservationRequest(include_depth=True))
        assert (obs.camera.width_px, obs.camera.height_px) == gen.video.size_wh and len(obs.q_rad) == 7
        chunks: list[int] = []
        video = C.upload_file(conn, tmp_path / "video.mp4", chunk_bytes=8 * 1024,
                              on_progress=lambda sent, total: chunks.append(sent))
        assert len(chunks) > 3 and video.num_frames == 24  # really sent in chunks; probed on arrival
        depth = C.upload_file(conn, tmp_path / "video_depth.npy", "VIDEO_DEPTH", chunk_bytes=1024 * 1024)
        r = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
            instruction=env.instruction, object_prompt=env.object_prompt,
            box=task_pb2.BoxPx(x0_px=x0, y0_px=y0, x1_px=x1, y1_px=y1),
            video_upload_id=video.upload_id, video_depth_upload_id=depth.upload_id,
            options=task_pb2.TaskOptions(seed=SEED, num_points=64), idempotency_key="e2e-1"))
        tid = r.task.task_id
        with C.connect(st.address, token=VIEWER_TOKEN, insecure=True) as viewer:
            events = list(C.watch(viewer, tid))
        task = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=tid)).task
        robot = C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest()).state
        fetched = {a.name: C.fetch_artifact(conn, tid, a, tmp_path / "fetched") for a in C.list_artifacts(conn, tid)}
        store = st.service.store
        row = store.get_task(tid)
        transitions = [(t["from_state"], t["to_state"]) for t in store.transitions(tid)]
        audit = store.audit_rows()

    assert C.STATE_NAMES[task.state] == "SUCCEEDED", f"{task.failed_stage}: {task.error_message}"
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    finished = [e.stage for e in events if C.KIND_NAMES[e.kind] == "STAGE_FINISHED"]
    assert finished == ["observe", "fetch", "decode", "flow", "plan", "execute"]
    assert any(C.KIND_NAMES[e.kind] == "PROGRESS" and e.stage == "execute" for e in events)
    # Progress inside flow (per perception role) and plan (per solver phase): no long silence.
    phases = {st: [e.message for e in events if C.KIND_NAMES[e.kind] == "PROGRESS" and e.stage == st]
              for st in ("flow", "plan")}
    assert phases["flow"] == ["video_depth", "segment", "sample", "track", "align", "lift", "filter"]
    assert phases["plan"][:2] == ["cloud", "grasps"] and phases["plan"][-1] == "assemble"
    assert any(m.startswith("follow grasp") for m in phases["plan"])
    # SUCCEEDED on the kinematic backend: the pipeline finished; nobody could judge the outcome.
    assert task.outcome_check.verdict == task_pb2.OUTCOME_VERDICT_NOT_CHECKED
    assert C.STATE_NAMES[events[-1].state] == "SUCCEEDED" and task.last_sequence == events[-1].sequence

    # The job and its history in the store.
    assert row["state"] == "SUCCEEDED" and row["submitted_by"] == "op" and row["idempotency_key"] == "e2e-1"
    assert transitions == [(None, "QUEUED"), ("QUEUED", "RUNNING"), ("RUNNING", "SUCCEEDED")]
    # Its artifacts, readable with the project's own loaders.
    data = tmp_path / "data"
    for name in ("i0", "d0", "camera", "video", "video_depth", "flow", "plan", "command_log", "outcome"):
        assert (data / task.artifacts[name]).is_file(), name
    # The same artifacts over the API (task fetch), byte for byte.
    for name in ("flow", "plan", "command_log", "outcome"):
        assert fetched[name].path.read_bytes() == (data / task.artifacts[name]).read_bytes(), name
    flow = ObjectFlow.load(data / task.artifacts["flow"])
    plan = Plan.load(data / task.artifacts["plan"])
    assert flow.num_points <= 64 and flow.num_frames == 24
    assert plan.q.shape[1] == 7 and np.isfinite(plan.q).all()
    outcome = json.loads((data / task.artifacts["outcome"]).read_text())
    assert outcome["ok"] and set(outcome["stages"]) == {"flow", "plan", "execute"}
    # Every command the loop sent went through the server's e-stop gate.
    assert task.metrics["execute_commands_sent"] > 0
    assert robot.motion_commands_sent == task.metrics["execute_commands_sent"]
    # Audit: who did what, with the task id where there is one.
    rows = [(a["principal"], a["rpc"], a["task_id"], a["code"]) for a in audit]
    assert ("op", "SubmitTask", tid, "OK") in rows
    assert ("viewer", "WatchTask", tid, "OK") in rows
    assert [r[1] for r in rows if r[1] == "UploadVideo" and r[3] == "OK"] == ["UploadVideo", "UploadVideo"]
