"""Issue 16, acceptance 1: the e-stop can never be starved.

With 200 open unauthenticated grpc.health Watch streams and 64 viewer WatchTask streams on the
server (limits raised so that all of them are admitted: the hardest case), an operator's
EmergencyStop succeeds within 100 ms and the real control loop's motion stops within one
control period. With the default limits, floods are refused with STREAM_LIMIT / RPC_LIMIT
details while the e-stop path stays open. (bench/service_bench.py measures the latency.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dream2flow.service import client as C
from dream2flow.service.status import details_of
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread, loop_only_pipeline,
                                        make_config, scripted_pipeline, write_test_depth, write_test_video)
from dream2flow.v1 import robot_pb2, robot_pb2_grpc, task_pb2, task_pb2_grpc

OP = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)
VIEW = (("authorization", f"Bearer {VIEWER_TOKEN}"),)
RATE_HZ = 100.0
SATURATED = {"max_unauthenticated_streams": 256, "max_streams_per_peer": 512, "max_streams_per_token": 128,
             "max_watchers": 128}


def _channel(address: str) -> grpc.Channel:
    # a connection of its own (grpc shares subchannels between channels of the same target)
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def start_motion(st: ServiceThread, tmp: Path, tasks: Any) -> str:
    video = write_test_video(tmp / "v.mp4")
    depth = write_test_depth(tmp / "d.npy")
    with C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        vid = C.upload_file(conn, video).upload_id
        dep = C.upload_file(conn, depth, "VIDEO_DEPTH").upload_id
    tid = tasks.SubmitTask(task_pb2.SubmitTaskRequest(
        instruction="move", box=task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260), video_upload_id=vid,
        video_depth_upload_id=dep), metadata=OP, timeout=30).task.task_id
    for resp in tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=tid), metadata=OP, timeout=60):
        if resp.event.stage == "execute" and C.KIND_NAMES[resp.event.kind] == "PROGRESS":
            return tid
    raise AssertionError("the task never reached execute")


class Streams:
    """Open server-streaming calls, each confirmed by its first message; cancelled at close."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def open(self, call: Any) -> Any:
        first = next(call)
        self.calls.append(call)
        return first

    def close(self) -> None:
        for c in self.calls:
            c.cancel()


@pytest.fixture
def saturated(tmp_path: Path) -> Iterator[tuple[ServiceThread, Any]]:
    cfg = make_config(tmp_path / "data", robot={"backend": "kinematic", "realtime": True, "rate_hz": RATE_HZ},
                      limits=SATURATED)
    with ServiceThread(cfg, pipeline=loop_only_pipeline(8.0)) as st:
        yield st, tmp_path


def test_estop_answers_within_100ms_with_264_streams_open(saturated: tuple[ServiceThread, Any]) -> None:
    st, tmp = saturated
    op_ch = _channel(st.address)
    robot = robot_pb2_grpc.RobotServiceStub(op_ch)
    tasks = task_pb2_grpc.TaskServiceStub(op_ch)
    robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP, timeout=10)  # connected, warm
    tid = start_motion(st, tmp, tasks)

    health_chs = [_channel(st.address) for _ in range(4)]
    viewer_ch = _channel(st.address)
    streams = Streams()
    try:
        for i in range(200):  # no token: grpc.health is public
            first = streams.open(health_pb2_grpc.HealthStub(health_chs[i % 4]).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=120))
            assert first.status == health_pb2.HealthCheckResponse.SERVING
        viewer = task_pb2_grpc.TaskServiceStub(viewer_ch)
        for _ in range(64):
            streams.open(viewer.WatchTask(task_pb2.WatchTaskRequest(task_id=tid), metadata=VIEW, timeout=120))
        snap = st.service.admission.snapshot()
        assert snap["unauthenticated_streams"] == 200 and snap["watchers"] == 64
        sent_before = robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP, timeout=10) \
            .state.motion_commands_sent
        assert sent_before > 0  # the arm is moving

        t0 = time.perf_counter()
        r = robot.EmergencyStop(robot_pb2.EmergencyStopRequest(reason="saturation test"), metadata=OP, timeout=10)
        latency_s = time.perf_counter() - t0
        print(f"\ne-stop latency with 200 health + 64 watch streams open: {latency_s * 1e3:.1f} ms")
        assert latency_s < 0.100, f"EmergencyStop took {latency_s * 1e3:.1f} ms"
        assert r.stopped_task_id == tid and r.state.mode == robot_pb2.MOTION_MODE_ESTOPPED
        t = tasks.GetTask(task_pb2.GetTaskRequest(task_id=tid), metadata=OP).task
        deadline = time.monotonic() + 10
        while C.STATE_NAMES[t.state] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.02)
            t = tasks.GetTask(task_pb2.GetTaskRequest(task_id=tid), metadata=OP).task
        assert C.STATE_NAMES[t.state] == "CANCELLED" and t.failed_stage == "execute"
        # Motion stopped within one control period of the e-stop arriving at the server.
        dev = st.service.devices
        b = dev.backend()
        assert dev.estop_monotonic_s > 0
        assert b.last_command_monotonic_s - dev.estop_monotonic_s < 1.0 / RATE_HZ
        after = robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP).state
        assert after.motion_commands_sent <= r.state.motion_commands_sent + 1
        # The open streams are still there and healthy; the health of the robot says NOT_SERVING.
        assert st.service.admission.snapshot()["unauthenticated_streams"] == 200
        robot_health = health_pb2_grpc.HealthStub(health_chs[0]).Check(
            health_pb2.HealthCheckRequest(service="dream2flow.v1.RobotService"), timeout=10)
        assert robot_health.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        streams.close()
        for ch in (*health_chs, viewer_ch, op_ch):
            ch.close()


@pytest.fixture
def defaults(tmp_path: Path) -> Iterator[tuple[ServiceThread, Any]]:
    cfg = make_config(tmp_path / "data", server={"max_concurrent_rpcs": 4},
                      limits={"upload_idle_timeout_s": 60.0})
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm(), pipeline=scripted_pipeline(ticks=5)) as st:
        yield st, tmp_path


def _reset(robot: Any) -> None:
    """Reset as a client does: a task still stopping answers STILL_STOPPING with RetryInfo (the
    runner thread may not have seen the e-stop yet on a loaded machine), so wait and retry."""
    deadline = time.monotonic() + 10
    while True:
        try:
            robot.Reset(robot_pb2.ResetRequest(), metadata=OP, timeout=10)
            return
        except grpc.RpcError as exc:
            d = details_of(exc)
            if d is None or d.reason != "STILL_STOPPING" or time.monotonic() > deadline:
                raise
            assert d.retryable
            time.sleep(0.05)


def _refusal(fn: Any) -> Any:
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    d = details_of(ei.value)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and d is not None
    return d


def test_default_limits_refuse_floods_with_details_and_estop_still_answers(
        defaults: tuple[ServiceThread, Any]) -> None:
    st, tmp = defaults
    lim = st.cfg.limits
    chs = [_channel(st.address) for _ in range(3)]
    streams = Streams()
    try:
        health = health_pb2_grpc.HealthStub(chs[0])
        for _ in range(lim.max_unauthenticated_streams):
            streams.open(health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60))
        d = _refusal(lambda: next(health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)))
        assert d.reason == "STREAM_LIMIT" and d.retryable and d.quota_violations[0][0] == "unauthenticated streams"

        viewer = task_pb2_grpc.TaskServiceStub(chs[1])
        with C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
            depth = write_test_depth(tmp / "d.npy")
            video = write_test_video(tmp / "v.mp4")
            tid = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
                instruction="x", box=task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260),
                video_upload_id=C.upload_file(conn, video).upload_id,
                video_depth_upload_id=C.upload_file(conn, depth, "VIDEO_DEPTH").upload_id)).task.task_id
        # a queued task's watch stays open: hold the queue (the task above may already be done)
        st.service.runner.hold("test: keep tasks queued")
        held = _queued_task(st, tmp)
        for _ in range(lim.max_streams_per_token):
            streams.open(viewer.WatchTask(task_pb2.WatchTaskRequest(task_id=held), metadata=VIEW, timeout=60))
        d = _refusal(lambda: next(viewer.WatchTask(task_pb2.WatchTaskRequest(task_id=held), metadata=VIEW, timeout=60)))
        assert d.reason == "STREAM_LIMIT" and d.quota_violations[0][0] == "token viewer"
        # the operator's own watch still opens (per token), as do its priority calls
        op_tasks = task_pb2_grpc.TaskServiceStub(chs[2])
        streams.open(op_tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=held), metadata=OP, timeout=60))
        assert tid

        # General calls: fill max_concurrent_rpcs with stalled uploads (metadata, then silence).
        gate = threading.Event()
        futures = []
        for i in range(st.cfg.server.max_concurrent_rpcs):
            data = bytes([i]) * 1000

            def stalled(data: bytes = data) -> Iterator[task_pb2.UploadVideoRequest]:
                import hashlib

                yield task_pb2.UploadVideoRequest(metadata=task_pb2.UploadMetadata(
                    size_bytes=len(data), sha256_hex=hashlib.sha256(data).hexdigest(),
                    container=task_pb2.CONTAINER_NPY, purpose=task_pb2.UPLOAD_PURPOSE_VIDEO_DEPTH))
                gate.wait(60)

            futures.append(op_tasks.UploadVideo.future(stalled(), metadata=OP, timeout=60))
        deadline = time.monotonic() + 10
        while st.service.admission.snapshot()["general"] < st.cfg.server.max_concurrent_rpcs:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        d = _refusal(lambda: op_tasks.ListTasks(task_pb2.ListTasksRequest(), metadata=OP, timeout=10))
        assert d.reason == "RPC_LIMIT" and d.retryable
        robot = robot_pb2_grpc.RobotServiceStub(chs[2])
        assert robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=VIEW, timeout=10).state.q_rad
        r = robot.EmergencyStop(robot_pb2.EmergencyStopRequest(reason="flooded"), metadata=VIEW, timeout=10)
        assert r.state.mode == robot_pb2.MOTION_MODE_ESTOPPED
        _reset(robot)
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
        gate.set()
        for f in futures:
            f.cancel()
        refused = st.service.admission.snapshot()["refused"]
        assert refused.get("unauthenticated") and refused.get("token") and refused.get("general")
    finally:
        streams.close()
        for ch in chs:
            ch.close()


def _queued_task(st: ServiceThread, tmp: Path) -> str:
    with C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        return C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
            instruction="wait", box=task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260),
            video_sha256_hex=C.sha256_file(tmp / "v.mp4"),
            video_depth_sha256_hex=C.sha256_file(tmp / "d.npy"))).task.task_id
