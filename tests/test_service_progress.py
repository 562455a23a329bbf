"""Issue 16, point 6: reflection v1 and v1alpha; progress inside flow and plan; heartbeats on
watch streams; and the smaller bugs, each with its test: ``failed_stage`` names the stage that
was stopped, a stopped simulated arm reports zero velocity, a dry run submitted during an
e-stop runs (and says so) instead of waiting silently. (Scene reset between tasks and the
outcome check in simulation: test_service_sim.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import numpy as np
import pytest

from dream2flow.service import client as C
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread, loop_only_pipeline,
                                        make_config, scripted_pipeline, write_test_depth, write_test_video)
from dream2flow.v1 import robot_pb2, task_pb2

BOX = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)


class Client:
    def __init__(self, st: ServiceThread, tmp: Path) -> None:
        self.st = st
        self.conn = C.connect(st.address, token=OPERATOR_TOKEN, insecure=True)
        self.vid = C.upload_file(self.conn, write_test_video(tmp / "v.mp4")).upload_id
        self.dep = C.upload_file(self.conn, write_test_depth(tmp / "d.npy"), "VIDEO_DEPTH").upload_id

    def submit(self, **opts: Any) -> str:
        return C.call(self.conn, self.conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
            instruction="x", box=BOX, video_upload_id=self.vid, video_depth_upload_id=self.dep,
            options=task_pb2.TaskOptions(**opts))).task.task_id

    def events(self, tid: str) -> list[task_pb2.TaskEvent]:
        return list(C.watch(self.conn, tid))

    def task(self, tid: str) -> task_pb2.Task:
        return C.call(self.conn, self.conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=tid)).task

    def state(self) -> robot_pb2.RobotState:
        return C.call(self.conn, self.conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest()).state


def serve(tmp: Path, pipeline: Any, **sections: Any) -> ServiceThread:
    return ServiceThread(make_config(tmp / "data", **sections), backend_factory=lambda n, d: FakeArm(),
                         pipeline=pipeline)


def test_flow_reports_each_perception_role_and_stops_on_cancel() -> None:
    from synthetic_scene import cached_scene

    from dream2flow.errors import ExecutionFailed
    from dream2flow.flow.extract import extract_flow

    sc = cached_scene(width=320, height=240, num_frames=24, seed=0)
    seen: list[tuple[str, float]] = []
    extract_flow(sc.video(), sc.rgbd0(), sc.box(), sc.rel_depth(seed=0), num_points=64, seed=0,
                 progress=lambda phase, f: seen.append((phase, f)))
    assert [p for p, _ in seen] == ["video_depth", "segment", "sample", "track", "align", "lift", "filter"]
    assert [f for _, f in seen] == sorted(f for _, f in seen)

    def cancel_at_track(phase: str, f: float) -> None:
        if phase == "track":
            raise ExecutionFailed("cancelled", stage="flow")

    with pytest.raises(ExecutionFailed):
        extract_flow(sc.video(), sc.rgbd0(), sc.box(), sc.rel_depth(seed=0), num_points=64, seed=0,
                     progress=cancel_at_track)


def _phased_pipeline() -> Any:
    """Reports flow and plan phases the way pipeline.run_task does, then a short execute."""
    inner = scripted_pipeline(ticks=3)

    def run_task(inputs: Any, backend: Any, *, progress: Any = None, **kw: Any) -> Any:
        for stage, phases in (("flow", ("video_depth", "segment", "sample", "track", "align", "lift", "filter")),
                              ("plan", ("cloud", "grasps", "follow grasp 0", "assemble"))):
            progress(stage, 0.0, {})
            for i, ph in enumerate(phases):
                progress(stage, i / len(phases), {"phase": ph})
            progress(stage, 1.0, {"seconds": 0.0})
        return inner(inputs, backend, progress=lambda s, f, m: None, **kw)

    return run_task


def test_phases_become_events_and_watch_streams_send_heartbeats(tmp_path: Path) -> None:
    with serve(tmp_path, _phased_pipeline(), limits={"watch_heartbeat_s": 0.2}) as st:
        c = Client(st, tmp_path)
        tid = c.submit()
        evs = c.events(tid)
        msgs = {stage: [e.message for e in evs if C.KIND_NAMES[e.kind] == "PROGRESS" and e.stage == stage]
                for stage in ("flow", "plan")}
        assert msgs["flow"] == ["video_depth", "segment", "sample", "track", "align", "lift", "filter"]
        assert msgs["plan"] == ["cloud", "grasps", "follow grasp 0", "assemble"]
        # Heartbeats while nothing happens (a held queue), with the task's state and last sequence.
        st.service.runner.hold("test")
        q = c.submit()
        beats = []
        call = c.conn.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=q), metadata=c.conn.metadata, timeout=30)
        t0 = time.monotonic()
        for resp in call:
            if resp.HasField("heartbeat"):
                beats.append((time.monotonic() - t0, resp.heartbeat))
                if len(beats) == 3:
                    break
        call.cancel()
        assert all(b.state == task_pb2.TASK_STATE_QUEUED and b.last_sequence >= 1 for _, b in beats)
        assert beats[-1][0] < 3.0  # every ~0.2 s
        # The client's watch() skips heartbeats: only events come through.
        C.call(c.conn, c.conn.tasks.CancelTask, task_pb2.CancelTaskRequest(task_id=q))
        assert all(e.sequence for e in c.events(q))


def test_reflection_v1_and_v1alpha(tmp_path: Path) -> None:
    from grpc_reflection.v1alpha import reflection_pb2

    with serve(tmp_path, scripted_pipeline()) as st, grpc.insecure_channel(st.address) as ch:
        md = (("authorization", f"Bearer {VIEWER_TOKEN}"),)
        for version in ("v1", "v1alpha"):
            call = ch.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                    request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                    response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
            reqs = [reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="dream2flow.v1.TaskService"),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="grpc.reflection.v1.ServerReflection")]
            out = list(call(iter(reqs), metadata=md, timeout=10))
            names = {s.name for s in out[0].list_services_response.service}
            assert {"dream2flow.v1.TaskService", "dream2flow.v1.RobotService", "grpc.health.v1.Health",
                    "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names
            assert out[1].file_descriptor_response.file_descriptor_proto, version
            from google.protobuf import descriptor_pb2

            fd = descriptor_pb2.FileDescriptorProto.FromString(out[2].file_descriptor_response.file_descriptor_proto[0])
            assert fd.package == "grpc.reflection.v1" and fd.service[0].name == "ServerReflection"
            with pytest.raises(grpc.RpcError) as ei:  # a token is needed
                list(call(iter(reqs[:1]), timeout=10))
            assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _slow_flow_pipeline() -> Any:
    """A flow stage that does not look at the cancel flag (as a long perception call), then the
    pipeline's own stage runner goes on to plan."""
    from dream2flow.errors import Dream2FlowError
    from dream2flow.pipeline import TaskOutcome, _StageRunner

    def run_task(inputs: Any, backend: Any, *, progress: Any = None, cancel: Any = None, **kw: Any) -> Any:
        runner = _StageRunner(progress, cancel)
        try:
            runner.run("flow", lambda: cancel.wait(20))
            runner.run("plan", lambda: None)
        except Dream2FlowError as exc:
            return TaskOutcome(False, exc.stage, exc.message, runner.stages)
        return TaskOutcome(True, None, None, runner.stages)

    return run_task


def test_failed_stage_names_the_stage_that_was_cancelled(tmp_path: Path) -> None:
    with serve(tmp_path, _slow_flow_pipeline()) as st:
        c = Client(st, tmp_path)
        tid = c.submit()
        for e in C.watch(c.conn, tid):
            if e.stage == "flow" and C.KIND_NAMES[e.kind] == "STAGE_STARTED":
                break
        C.call(c.conn, c.conn.tasks.CancelTask, task_pb2.CancelTaskRequest(task_id=tid, reason="wrong video"))
        c.events(tid)
        t = c.task(tid)
        assert (C.STATE_NAMES[t.state], t.failed_stage) == ("CANCELLED", "flow")  # not "plan"
        assert t.outcome_check.verdict == task_pb2.OUTCOME_VERDICT_NOT_CHECKED


@pytest.fixture
def moving(tmp_path: Path) -> Iterator[tuple[ServiceThread, Client]]:
    cfg = make_config(tmp_path / "data", robot={"backend": "kinematic", "realtime": True})
    with ServiceThread(cfg, pipeline=loop_only_pipeline(8.0)) as st:
        yield st, Client(st, tmp_path)


def _until_moving(c: Client, tid: str) -> None:
    for e in C.watch(c.conn, tid):
        if e.stage == "execute" and C.KIND_NAMES[e.kind] == "PROGRESS":
            return


@pytest.mark.parametrize("how", ["estop", "cancel"])
def test_stopped_simulated_arm_reports_zero_velocity(moving: Any, how: str) -> None:
    st, c = moving
    tid = c.submit()
    _until_moving(c, tid)
    time.sleep(0.3)
    assert np.abs(c.state().dq_rad_s).max() > 0.01  # it really moves
    if how == "estop":
        C.call(c.conn, c.conn.robot.EmergencyStop, robot_pb2.EmergencyStopRequest(reason="test"))
    else:
        C.call(c.conn, c.conn.tasks.CancelTask, task_pb2.CancelTaskRequest(task_id=tid))
    c.events(tid)
    deadline = time.monotonic() + 5
    while c.state().running_task_id:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    a = c.state()
    time.sleep(0.2)
    b = c.state()
    assert list(a.dq_rad_s) == [0.0] * 7 and list(b.q_rad) == list(a.q_rad)  # at rest, and stays there


def test_dry_run_during_estop_runs_and_says_so(moving: Any) -> None:
    st, c = moving
    C.call(c.conn, c.conn.robot.EmergencyStop, robot_pb2.EmergencyStopRequest(reason="test"))
    with pytest.raises(Exception, match="emergency stop"):
        c.submit()  # motion is refused
    tid = c.submit(dry_run=True)
    evs = c.events(tid)  # ends: it ran (it used to wait in the queue without a word)
    t = c.task(tid)
    assert C.STATE_NAMES[t.state] == "SUCCEEDED", t.error_message
    assert any("emergency stop is active: this dry run runs anyway" in e.message for e in evs)
    assert c.state().motion_commands_sent == 0 and c.state().mode == robot_pb2.MOTION_MODE_ESTOPPED
    # A hold (restart) keeps motion tasks queued and says why; dry runs still run.
    C.call(c.conn, c.conn.robot.Reset, robot_pb2.ResetRequest())
    st.service.runner.hold("restart with queued tasks")
    waiting = c.submit()
    dry = c.submit(dry_run=True)
    c.events(dry)
    assert C.STATE_NAMES[c.task(dry).state] == "SUCCEEDED"
    w = c.task(waiting)
    assert C.STATE_NAMES[w.state] == "QUEUED"
    msgs = [e.message for e in _events_so_far(c, waiting)]
    assert any(m.startswith("waiting: queued tasks are held after a restart") for m in msgs)


def _events_so_far(c: Client, tid: str) -> list[task_pb2.TaskEvent]:
    return [e for e in (r.event for r in _first_n(c, tid)) if e.sequence]


def _first_n(c: Client, tid: str) -> Iterator[task_pb2.WatchTaskResponse]:
    last = c.task(tid).last_sequence
    call = c.conn.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=tid), metadata=c.conn.metadata, timeout=10)
    for resp in call:
        if resp.HasField("event"):
            yield resp
            if resp.event.sequence >= last:
                break
    call.cancel()
