"""Issue 13 acceptance 4: the service perceives what a task does not bring. A task needs only the
video and the instruction / object prompt when the server's perception configuration ([perception]
config, ``serve --perception``) has a detector and a video-depth model; box and depth stay optional
overrides. Without those roles, a task that lacks them is refused up front (FAILED_PRECONDITION)
naming the role and the fix. Models: the project's tiny random exports (plumbing)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dream2flow.service import client as C  # noqa: E402
from dream2flow.service.testing import (OPERATOR_TOKEN, ServiceThread, make_config, write_test_depth,  # noqa: E402
                                        write_test_video)
from dream2flow.v1 import task_pb2, task_pb2_grpc  # noqa: E402

OP = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch not installed: the tiny models cannot be exported (the export extra)")


def _recording_pipeline(seen: list[Any]) -> Any:
    """Records the ``TaskInputs`` the server builds, then reports success without moving."""

    def run_task(inputs: Any, backend: Any, **kw: Any) -> Any:
        from dream2flow.pipeline import StageRecord, TaskOutcome

        seen.append(inputs)
        return TaskOutcome(True, None, None, {"flow": StageRecord(True, 0.0)})

    return run_task


def _submit(stub: Any, **kw: Any) -> Any:
    return stub.SubmitTask(task_pb2.SubmitTaskRequest(instruction="put the bread in the bowl", **kw), metadata=OP,
                           timeout=30)


def _error(fn: Any, *a: Any, **kw: Any) -> tuple[grpc.StatusCode, str]:
    try:
        fn(*a, **kw)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def test_without_detector_or_depth_model_a_task_must_bring_them(tmp_path: Path) -> None:
    seen: list[Any] = []
    cfg = make_config(tmp_path / "data")  # the classical perception: no detector, no video-depth model
    with ServiceThread(cfg, pipeline=_recording_pipeline(seen)) as st:
        stub = task_pb2_grpc.TaskServiceStub(grpc.insecure_channel(st.address))
        vid = stub.UploadVideo(C.upload_requests(write_test_video(tmp_path / "v.mp4"), "VIDEO"), metadata=OP).upload_id
        dep = stub.UploadVideo(C.upload_requests(write_test_depth(tmp_path / "d.npy"), "VIDEO_DEPTH"),
                               metadata=OP).upload_id
        code, msg = _error(_submit, stub, object_prompt="bread", video_upload_id=vid, video_depth_upload_id=dep)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "no detector backend" in msg and "box" in msg
        code, msg = _error(_submit, stub, video_upload_id=vid, video_depth_upload_id=dep)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "object_prompt" in msg
        box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)
        code, msg = _error(_submit, stub, object_prompt="bread", box=box, video_upload_id=vid)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "no video-depth backend" in msg
        r = _submit(stub, object_prompt="bread", box=box, video_upload_id=vid, video_depth_upload_id=dep)
        assert C.STATE_NAMES[r.task.state] in ("QUEUED", "RUNNING", "SUCCEEDED")


@needs_torch
def test_with_models_only_the_video_and_the_prompt_are_needed(tmp_path: Path) -> None:
    from tiny_perception import tiny_models_dir, write_perception_toml

    from dream2flow.perception.factory import Perception

    toml = write_perception_toml(tmp_path / "perception.toml", tiny_models_dir())
    seen: list[Any] = []
    cfg = make_config(tmp_path / "data", perception={"config": str(toml)})
    with ServiceThread(cfg, pipeline=_recording_pipeline(seen)) as st:
        stub = task_pb2_grpc.TaskServiceStub(grpc.insecure_channel(st.address))
        vid = stub.UploadVideo(C.upload_requests(write_test_video(tmp_path / "v.mp4"), "VIDEO"), metadata=OP).upload_id
        r = _submit(stub, object_prompt="bread", video_upload_id=vid)
        t = st.service.store.get_task(r.task.task_id)
        assert t["request"]["box"] is None and t["request"]["video_depth"] == {}
        assert not r.task.HasField("box")
        for _ in range(200):
            if seen:
                break
            import time

            time.sleep(0.05)
    inputs = seen[0]
    assert inputs.box is None and inputs.video_depth is None and inputs.object_prompt == "bread"
    assert isinstance(inputs.perception, Perception) and inputs.perception.config.source == str(toml)
    assert inputs.perception.backends()["detector"] == "onnx:grounding_dino_tiny"
    assert inputs.perception.backends()["video_depth"] == "onnx:depth_anything_v2_small"


@needs_torch
@pytest.mark.slow
def test_a_task_with_only_a_video_and_a_prompt_runs_end_to_end(tmp_path: Path) -> None:
    """The real pipeline behind the server: detector and video depth from the tiny models, the
    classical RGB-D segmenter and Lucas-Kanade, planning and the kinematic backend."""
    from tiny_perception import block_scene, tiny_models_dir, write_perception_toml

    from dream2flow.perception.factory import load_perception
    from dream2flow.types import ObjectFlow

    toml = write_perception_toml(tmp_path / "perception.toml", tiny_models_dir(),
                                 roles={"detector": "model", "video_depth": "model", "segmenter": "classical",
                                        "tracker": "classical", "hand": "none"})
    scene = block_scene(tmp_path / "scene", load_perception(toml), "the block")
    cfg = make_config(tmp_path / "data", perception={"config": str(toml)},
                      camera={"type": "recorded", "path": str(scene["recording"]), "loop": True},
                      robot={"backend": "kinematic"})
    with ServiceThread(cfg) as st, C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        video = C.upload_file(conn, scene["video"])
        r = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
            instruction="move the block", object_prompt="the block", video_upload_id=video.upload_id,
            options=task_pb2.TaskOptions(num_points=64)))
        events = list(C.watch(conn, r.task.task_id))
        task = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=r.task.task_id)).task
    assert C.STATE_NAMES[task.state] == "SUCCEEDED", f"{task.failed_stage}: {task.error_message}"
    finished = [e.stage for e in events if C.KIND_NAMES[e.kind] == "STAGE_FINISHED"]
    assert finished == ["observe", "fetch", "decode", "flow", "plan", "execute"]
    assert "video_depth" not in task.artifacts and not task.HasField("box")
    flow = ObjectFlow.load(tmp_path / "data" / task.artifacts["flow"])
    assert flow.meta["backends"] == {"detector": "onnx:grounding_dino_tiny", "segmenter": "classical_rgbd",
                                     "tracker": "classical_lk", "video_depth": "onnx:depth_anything_v2_small",
                                     "hand": None}
    assert flow.meta["object_prompt"] == "the block" and flow.meta["perception"]["config"] == str(toml)
    assert task.metrics["execute_commands_sent"] > 0
