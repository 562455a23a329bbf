"""Acceptance 2 and the API's rules on a loopback server: every bad input gets its documented
status code, the server keeps serving and the store stays intact; plus queueing, idempotency,
cancel, e-stop/reset, watch resumption and health.

These tests use a scripted stand-in for the perception/planning pipeline (the service is under
test here); test_service_e2e.py runs the real one."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import numpy as np
import pytest

from dream2flow.service import client as C
from dream2flow.service.testing import (OPERATOR_TOKEN, OTHER_OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread,
                                        loop_only_pipeline, make_config, scripted_pipeline, write_test_depth,
                                        write_test_video)
from dream2flow.v1 import robot_pb2, task_pb2

OP = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)
OP2 = (("authorization", f"Bearer {OTHER_OPERATOR_TOKEN}"),)
VIEW = (("authorization", f"Bearer {VIEWER_TOKEN}"),)


class Harness:
    def __init__(self, st: ServiceThread, tmp: Path) -> None:
        self.st = st
        self.tmp = tmp
        self.channel = grpc.insecure_channel(st.address)
        from dream2flow.v1 import robot_pb2_grpc, task_pb2_grpc

        self.tasks = task_pb2_grpc.TaskServiceStub(self.channel)
        self.robot = robot_pb2_grpc.RobotServiceStub(self.channel)
        self.video = write_test_video(tmp / "v.mp4")
        self.depth = write_test_depth(tmp / "d.npy")

    @property
    def store(self) -> Any:
        return self.st.service.store

    def upload(self, path: Path, purpose: str = "VIDEO", md: Any = OP, **kw: Any) -> task_pb2.UploadVideoResponse:
        kw.setdefault("chunk_bytes", 256 * 1024)  # below this server's 512 KiB max_chunk_bytes
        return self.tasks.UploadVideo(C.upload_requests(path, purpose, **kw), metadata=md, timeout=60)

    def uploads(self) -> tuple[str, str]:
        return self.upload(self.video).upload_id, self.upload(self.depth, "VIDEO_DEPTH").upload_id

    def request(self, **kw: Any) -> task_pb2.SubmitTaskRequest:
        vid, dep = kw.pop("ids", None) or self.uploads()
        base = dict(instruction="put the bread in the bowl", object_prompt="bread",
                    box=task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260),
                    video_upload_id=vid, video_depth_upload_id=dep)
        base.update(kw)
        return task_pb2.SubmitTaskRequest(**base)

    def submit(self, md: Any = OP, **kw: Any) -> task_pb2.SubmitTaskResponse:
        return self.tasks.SubmitTask(self.request(**kw), metadata=md, timeout=30)

    def wait_state(self, task_id: str, states: set[str], timeout_s: float = 30.0) -> task_pb2.Task:
        t_end = time.monotonic() + timeout_s
        while True:
            t = self.tasks.GetTask(task_pb2.GetTaskRequest(task_id=task_id), metadata=OP).task
            if C.STATE_NAMES[t.state] in states:
                return t
            assert time.monotonic() < t_end, f"task {task_id} stuck in {C.STATE_NAMES[t.state]}"
            time.sleep(0.05)


def code_of(fn: Any, *a: Any, **kw: Any) -> grpc.StatusCode:
    try:
        fn(*a, **kw)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    cfg = make_config(tmp_path / "data", limits={"max_video_bytes": 4_000_000, "max_queued_tasks": 3,
                                                 "max_chunk_bytes": 512 * 1024, "max_video_frames": 60})
    with ServiceThread(cfg, backend_factory=lambda name, dev: FakeArm(),
                       pipeline=scripted_pipeline(ticks=30)) as st:
        hh = Harness(st, tmp_path)
        yield hh
        hh.channel.close()


def _stream(*msgs: task_pb2.UploadVideoRequest) -> Iterator[task_pb2.UploadVideoRequest]:
    yield from msgs


def _meta(data: bytes, *, size: int | None = None, sha: str | None = None, container: str = "MP4",
          purpose: str = "VIDEO") -> task_pb2.UploadVideoRequest:
    return task_pb2.UploadVideoRequest(metadata=task_pb2.UploadMetadata(
        size_bytes=len(data) if size is None else size, sha256_hex=sha or hashlib.sha256(data).hexdigest(),
        container=task_pb2.Container.Value(f"CONTAINER_{container}"),
        purpose=task_pb2.UploadPurpose.Value(f"UPLOAD_PURPOSE_{purpose}")))


def test_bad_inputs_get_documented_codes_and_server_survives(h: Harness) -> None:
    data = h.video.read_bytes()
    chunk = lambda b: task_pb2.UploadVideoRequest(chunk=b)  # noqa: E731
    up = h.tasks.UploadVideo
    cases = {
        "wrong checksum": (up, _stream(_meta(data, sha="0" * 64), chunk(data)), grpc.StatusCode.DATA_LOSS),
        "oversize upload": (up, _stream(_meta(data, size=10**9)), grpc.StatusCode.RESOURCE_EXHAUSTED),
        "truncated stream": (up, _stream(_meta(data), chunk(data[:-100])), grpc.StatusCode.DATA_LOSS),
        "more bytes than declared": (up, _stream(_meta(data, size=10), chunk(data[:20])),
                                     grpc.StatusCode.INVALID_ARGUMENT),
        "chunk too large": (up, _stream(_meta(b"x" * 600_000), chunk(b"x" * 600_000)), grpc.StatusCode.INVALID_ARGUMENT),
        "chunk before metadata": (up, _stream(chunk(data)), grpc.StatusCode.INVALID_ARGUMENT),
        "empty stream": (up, _stream(), grpc.StatusCode.INVALID_ARGUMENT),
        "depth as an MP4": (up, _stream(_meta(data, purpose="VIDEO_DEPTH"), chunk(data)), grpc.StatusCode.INVALID_ARGUMENT),
    }
    garbage = np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    cases["garbage bytes as video"] = (up, _stream(_meta(garbage), chunk(garbage)), grpc.StatusCode.INVALID_ARGUMENT)
    cases["garbage bytes as depth"] = (up, _stream(_meta(garbage, container="NPY", purpose="VIDEO_DEPTH"),
                                                   chunk(garbage)), grpc.StatusCode.INVALID_ARGUMENT)
    for name, (fn, req, want) in cases.items():
        assert code_of(fn, req, metadata=OP, timeout=60) == want, name

    vid, dep = h.uploads()
    sub = h.tasks.SubmitTask
    reqs = {
        "unknown upload id": (h.request(ids=("u_" + "0" * 20, dep)), grpc.StatusCode.NOT_FOUND),
        "upload id as a path": (h.request(ids=("../../dream2flow.sqlite", dep)), grpc.StatusCode.NOT_FOUND),
        "depth id used as video": (h.request(ids=(dep, dep)), grpc.StatusCode.INVALID_ARGUMENT),
        "empty instruction": (h.request(ids=(vid, dep), instruction="   "), grpc.StatusCode.INVALID_ARGUMENT),
        "instruction too long": (h.request(ids=(vid, dep), instruction="x" * 1001), grpc.StatusCode.INVALID_ARGUMENT),
        "box outside the image": (h.request(ids=(vid, dep), box=task_pb2.BoxPx(x0_px=600, y0_px=0, x1_px=700, y1_px=50)),
                                  grpc.StatusCode.INVALID_ARGUMENT),
        "no box": (task_pb2.SubmitTaskRequest(instruction="x", video_upload_id=vid, video_depth_upload_id=dep),
                   grpc.StatusCode.INVALID_ARGUMENT),
        "no video source": (task_pb2.SubmitTaskRequest(instruction="x", box=task_pb2.BoxPx(x1_px=5, y1_px=5),
                                                       video_depth_upload_id=dep), grpc.StatusCode.INVALID_ARGUMENT),
        "unknown method": (h.request(ids=(vid, dep), options=task_pb2.TaskOptions(method="magic")),
                           grpc.StatusCode.INVALID_ARGUMENT),
        "backend not allowed": (h.request(ids=(vid, dep), options=task_pb2.TaskOptions(backend="polymetis")),
                                grpc.StatusCode.INVALID_ARGUMENT),
        "too many points": (h.request(ids=(vid, dep), options=task_pb2.TaskOptions(num_points=10**6)),
                            grpc.StatusCode.INVALID_ARGUMENT),
        "ftp url": (h.request(ids=(vid, dep), video_url="ftp://127.0.0.1/v.mp4"), grpc.StatusCode.INVALID_ARGUMENT),
        "no depth, no depth model": (h.request(ids=(vid, ""),), grpc.StatusCode.FAILED_PRECONDITION),
        "generate without a generator": (h.request(ids=(vid, dep), generate=task_pb2.GenerateVideo()),
                                         grpc.StatusCode.FAILED_PRECONDITION),
    }
    for name, (req, want) in reqs.items():
        assert code_of(sub, req, metadata=OP, timeout=30) == want, name
    # Auth: missing / unknown token, a viewer trying to move the robot or upload.
    assert code_of(sub, h.request(ids=(vid, dep)), timeout=30) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(sub, h.request(ids=(vid, dep)), metadata=(("authorization", "Bearer nope-nope-nope-nope"),),
                   timeout=30) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(sub, h.request(ids=(vid, dep)), metadata=VIEW, timeout=30) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(h.upload, h.video, md=VIEW) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(h.robot.Reset, robot_pb2.ResetRequest(), metadata=VIEW) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(h.tasks.GetTask, task_pb2.GetTaskRequest(task_id="t_nope"), metadata=VIEW) == grpc.StatusCode.NOT_FOUND
    assert code_of(h.tasks.ListTasks, task_pb2.ListTasksRequest(page_token="abc"), metadata=VIEW) == \
        grpc.StatusCode.INVALID_ARGUMENT

    # Still serving: a good task runs to the end; the store is intact; nothing was half-stored.
    r = h.submit(ids=(vid, dep))
    assert C.STATE_NAMES[h.wait_state(r.task.task_id, {"SUCCEEDED", "FAILED"}).state] == "SUCCEEDED"
    assert h.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=VIEW).state.mode == robot_pb2.MOTION_MODE_READY
    assert h.store.integrity_check() == "ok"
    # Refused uploads left nothing; the truncated stream's kept bytes (resumable) were superseded
    # when the same file was uploaded again from offset 0 (test_service_uploads covers resuming).
    assert not h.store.list_parts() and not list((h.store.data_dir / "uploads").glob("*.part"))
    assert len(list((h.store.data_dir / "tasks").iterdir())) == 1  # refused submits left no task folder
    codes = [a["code"] for a in h.store.audit_rows()]
    for want in ("DATA_LOSS", "RESOURCE_EXHAUSTED", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION",
                 "UNAUTHENTICATED", "PERMISSION_DENIED"):
        assert want in codes, want


def test_task_runs_and_watch_resumes(h: Harness) -> None:
    obs = h.tasks.GetObservation(task_pb2.GetObservationRequest(include_depth=True), metadata=VIEW)
    import cv2

    img = cv2.imdecode(np.frombuffer(obs.rgb_png, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (obs.camera.height_px, obs.camera.width_px, 3) and len(obs.camera.k_px) == 9
    import io

    d0 = np.load(io.BytesIO(obs.depth_m_npy))
    assert d0.shape == img.shape[:2] and d0.dtype == np.float32 and len(obs.q_rad) == 7

    r = h.submit(idempotency_key="watch-1")
    tid = r.task.task_id
    events = [resp.event for resp in h.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=tid), metadata=VIEW, timeout=60)]
    seqs = [e.sequence for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert C.STATE_NAMES[events[-1].state] == "SUCCEEDED"
    stages = [e.stage for e in events if C.KIND_NAMES[e.kind] == "STAGE_FINISHED"]
    assert stages == ["observe", "fetch", "decode", "flow", "plan", "execute"]
    # Resume after a sequence: only the later events, and the same ones.
    tail = [resp.event for resp in h.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=tid, after_sequence=seqs[-3]),
                                                     metadata=OP, timeout=60)]
    assert [e.sequence for e in tail] == seqs[-2:] and tail[-1] == events[-1]
    t = h.tasks.GetTask(task_pb2.GetTaskRequest(task_id=tid), metadata=VIEW).task
    assert t.submitted_by == "op" and t.last_sequence == seqs[-1]
    for name in ("i0", "d0", "camera", "video", "video_depth", "outcome"):
        assert (h.store.data_dir / t.artifacts[name]).is_file(), name
    assert t.metrics["decode_s"] > 0 and t.metrics["video_frames"] == 12
    st = h.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=VIEW).state
    assert st.motion_commands_sent == 30
    # Same key, same request → the same task; same key, other request → ALREADY_EXISTS.
    again = h.submit(idempotency_key="watch-1", ids=_ids_of(h, t))
    assert again.deduplicated and again.task.task_id == tid
    assert code_of(h.submit, idempotency_key="watch-1", ids=_ids_of(h, t), instruction="other") == \
        grpc.StatusCode.ALREADY_EXISTS
    assert not h.submit(md=OP2, idempotency_key="watch-1", ids=_ids_of(h, t)).deduplicated  # keys are per caller


def _ids_of(h: Harness, t: task_pb2.Task) -> tuple[str, str]:
    req = h.store.get_task(t.task_id)["request"]
    return req["video_source"]["upload"], req["video_depth"]["upload"]


def test_queue_bound_hold_and_cancel(h: Harness) -> None:
    h.st.service.runner.hold("test hold")  # nothing runs: the queue fills
    ids = h.uploads()
    queued = [h.submit(ids=ids).task.task_id for _ in range(3)]
    assert code_of(h.submit, ids=ids) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert h.store.queue_position(queued[2]) == 2
    page = h.tasks.ListTasks(task_pb2.ListTasksRequest(states=[task_pb2.TASK_STATE_QUEUED], page_size=2), metadata=VIEW)
    assert [t.task_id for t in page.tasks] == queued[::-1][:2] and page.next_page_token
    c = h.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=queued[1], reason="changed my mind"), metadata=OP).task
    assert C.STATE_NAMES[c.state] == "CANCELLED" and "changed my mind" in c.error_message
    assert code_of(h.tasks.CancelTask, task_pb2.CancelTaskRequest(task_id=queued[1]), metadata=VIEW) == \
        grpc.StatusCode.PERMISSION_DENIED
    h.robot.Reset(robot_pb2.ResetRequest(), metadata=OP)  # releases the hold: the others run in order
    a = h.wait_state(queued[0], {"SUCCEEDED"})
    b = h.wait_state(queued[2], {"SUCCEEDED"})
    assert a.finished_unix_s <= b.started_unix_s  # one at a time, in order
    assert code_of(h.tasks.CancelTask, task_pb2.CancelTaskRequest(task_id=queued[0]), metadata=OP) == \
        grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[Harness]:
    """A server whose tasks stream 2000 commands 5 ms apart (10 s): time to cancel / e-stop them."""
    arms: list[FakeArm] = []

    def factory(name: str, dev: Any) -> FakeArm:
        arms.append(FakeArm())
        return arms[-1]

    cfg = make_config(tmp_path / "data")
    with ServiceThread(cfg, backend_factory=factory, pipeline=scripted_pipeline(ticks=2000, tick_s=0.005)) as st:
        hh = Harness(st, tmp_path)
        hh.arms = arms  # type: ignore[attr-defined]
        yield hh
        hh.channel.close()


def _wait_executing(h: Harness, tid: str) -> None:
    for resp in h.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=tid), metadata=OP, timeout=60):
        if resp.event.stage == "execute" and C.KIND_NAMES[resp.event.kind] == "PROGRESS":
            return
    raise AssertionError("the task never reached execute")


def test_cancel_running_task_stops_motion(slow: Harness) -> None:
    h = slow
    tid = h.submit().task.task_id
    _wait_executing(h, tid)
    h.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=tid, reason="stop"), metadata=OP)
    t = h.wait_state(tid, {"CANCELLED", "FAILED", "SUCCEEDED"})
    assert C.STATE_NAMES[t.state] == "CANCELLED" and t.cancel_requested and t.failed_stage == "execute"
    assert h.arms[0].stops >= 1  # type: ignore[attr-defined]
    sent = h.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP).state.motion_commands_sent
    assert 0 < sent < 2000


def test_estop_stops_refuses_and_reset_clears(slow: Harness) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    h = slow
    health = health_pb2_grpc.HealthStub(h.channel)
    robot_svc = "dream2flow.v1.RobotService"
    assert health.Check(health_pb2.HealthCheckRequest(service=robot_svc)).status == health_pb2.HealthCheckResponse.SERVING
    ids = h.uploads()
    running = h.submit(ids=ids).task.task_id
    queued = h.submit(ids=ids).task.task_id
    _wait_executing(h, running)
    r = h.robot.EmergencyStop(robot_pb2.EmergencyStopRequest(reason="person in the cell"), metadata=VIEW)
    assert r.stopped_task_id == running and r.cancelled_queued_tasks == 1
    assert r.state.mode == robot_pb2.MOTION_MODE_ESTOPPED
    sent_at_stop = r.state.motion_commands_sent
    t = h.wait_state(running, {"CANCELLED", "FAILED", "SUCCEEDED"})
    assert C.STATE_NAMES[t.state] == "CANCELLED" and "emergency stop" in t.error_message, t.error_message
    assert C.STATE_NAMES[h.wait_state(queued, {"CANCELLED"}).state] == "CANCELLED"
    st = h.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP).state
    assert st.motion_commands_sent <= sent_at_stop + 1  # at most the command already in flight
    assert health.Check(health_pb2.HealthCheckRequest(service=robot_svc)).status == \
        health_pb2.HealthCheckResponse.NOT_SERVING
    assert code_of(h.submit, ids=ids) == grpc.StatusCode.FAILED_PRECONDITION  # no new motion
    assert code_of(h.robot.Reset, robot_pb2.ResetRequest(), metadata=VIEW) == grpc.StatusCode.PERMISSION_DENIED
    h.robot.Reset(robot_pb2.ResetRequest(), metadata=OP)
    deadline = time.monotonic() + 5
    while health.Check(health_pb2.HealthCheckRequest(service=robot_svc)).status != \
            health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert C.STATE_NAMES[h.submit(ids=ids).task.state] in ("QUEUED", "RUNNING")


def test_many_concurrent_watchers_and_reflection(h: Harness) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(h.channel)
    resp = next(iter(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               metadata=VIEW)))
    names = {s.name for s in resp.list_services_response.service}
    assert {"dream2flow.v1.TaskService", "dream2flow.v1.RobotService", "grpc.health.v1.Health"} <= names
    with pytest.raises(grpc.RpcError) as ei:  # reflection needs a token too
        next(iter(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))))
    assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED

    tid = h.submit().task.task_id
    results: list[int] = []

    def watch() -> None:
        evs = list(h.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=tid), metadata=VIEW, timeout=60))
        results.append(len(evs))

    threads = [threading.Thread(target=watch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    final = h.tasks.GetTask(task_pb2.GetTaskRequest(task_id=tid), metadata=OP).task
    assert results == [final.last_sequence] * 8


def test_a_motion_refused_between_the_gate_trip_and_the_runner_stop_is_cancelled(tmp_path: Path) -> None:
    """EmergencyStop trips the motion gate at once (in the event loop) and marks the running task a
    moment later (from a worker). Widen that window on purpose: the task's next motion command is
    refused by the gate while nothing has marked it yet. It must end CANCELLED by the e-stop, never
    FAILED, and the stop must still name it."""
    cfg = make_config(tmp_path / "data", robot={"backend": "kinematic", "realtime": True})
    with ServiceThread(cfg, pipeline=loop_only_pipeline(8.0)) as st:
        h = Harness(st, tmp_path)
        tid = h.submit().task.task_id
        _wait_executing(h, tid)
        time.sleep(0.3)
        st.service.devices.trip_estop()  # the gate alone, as EmergencyStop's first line does
        time.sleep(0.5)  # the loop's next command is refused now, before the runner knows of a stop
        stopped, _ = st.service.runner.estop("by test: widened window")
        assert stopped == tid
        t = h.wait_state(tid, {"CANCELLED", "FAILED", "SUCCEEDED"})
        assert C.STATE_NAMES[t.state] == "CANCELLED", t.error_message
        assert "emergency stop" in t.error_message
        h.channel.close()


def test_estop_stops_the_real_control_loop(tmp_path: Path) -> None:
    import dream2flow.control.loop  # noqa: F401
    cfg = make_config(tmp_path / "data", robot={"backend": "kinematic", "realtime": True})
    with ServiceThread(cfg, pipeline=loop_only_pipeline(8.0)) as st:
        h = Harness(st, tmp_path)
        tid = h.submit().task.task_id
        _wait_executing(h, tid)
        time.sleep(0.5)
        r = h.robot.EmergencyStop(robot_pb2.EmergencyStopRequest(reason="test"), metadata=OP)
        assert r.stopped_task_id == tid
        t = h.wait_state(tid, {"CANCELLED", "FAILED", "SUCCEEDED"})
        assert C.STATE_NAMES[t.state] == "CANCELLED", t.error_message
        a = h.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP).state
        time.sleep(0.3)
        b = h.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=OP).state
        # Stopped mid-move (8 s at 100 Hz would be ~800 commands), within one period of the stop, and still.
        assert 0 < a.motion_commands_sent <= r.state.motion_commands_sent + 1 < 700
        assert b.motion_commands_sent == a.motion_commands_sent and list(b.q_rad) == list(a.q_rad)
        h.channel.close()


def _random_message(cls: Any, rng: np.random.Generator, depth: int = 0) -> Any:
    """A message of ``cls`` with random values in random fields (strings with NULs and non-ASCII,
    extreme integers, random bytes, nested messages, random enum numbers)."""
    from google.protobuf.descriptor import FieldDescriptor as F

    msg = cls()
    for f in cls.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        n = int(rng.integers(1, 4)) if f.is_repeated else 1
        for _ in range(n):
            if f.type == F.TYPE_MESSAGE:
                if depth > 2 or f.message_type.GetOptions().map_entry:
                    continue
                sub = _random_message(getattr(task_pb2, f.message_type.name, None) or
                                      getattr(robot_pb2, f.message_type.name), rng, depth + 1)
                (getattr(msg, f.name).add().CopyFrom(sub) if f.is_repeated
                 else getattr(msg, f.name).CopyFrom(sub))
                continue
            if f.type == F.TYPE_STRING:
                v: Any = "".join(rng.choice(list("ab\x00é✓/ .:%\n")) for _ in range(int(rng.integers(0, 3000))))
            elif f.type == F.TYPE_BYTES:
                v = rng.bytes(int(rng.integers(0, 2000)))
            elif f.type == F.TYPE_BOOL:
                v = bool(rng.integers(0, 2))
            elif f.type in (F.TYPE_UINT32, F.TYPE_ENUM):
                v = int(rng.choice([0, 1, 2, 7, 2**31 - 1])) if f.type == F.TYPE_ENUM else int(rng.integers(0, 2**32))
            elif f.type == F.TYPE_UINT64:
                v = int(rng.choice([0, 1, 2**32, 2**64 - 1]))
            elif f.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
                v = float(rng.choice([0.0, -1.0, 1e300, float("nan"), float("inf")]))
            else:
                v = int(rng.integers(-5, 5))
            if f.is_repeated:
                getattr(msg, f.name).append(v)
            else:
                try:
                    setattr(msg, f.name, v)
                except ValueError:  # an enum value the runtime refuses (closed enums): skip
                    pass
    return msg


def test_random_requests_never_crash_the_server(h: Harness) -> None:
    """Random bytes and random field values to every unary and streaming RPC: only documented
    codes come back (never INTERNAL/UNKNOWN), and the server keeps serving."""
    rng = np.random.default_rng(0)
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
               grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DATA_LOSS,
               grpc.StatusCode.ALREADY_EXISTS}
    unary = {"GetObservation": (h.tasks.GetObservation, task_pb2.GetObservationRequest),
             "SubmitTask": (h.tasks.SubmitTask, task_pb2.SubmitTaskRequest),
             "GetTask": (h.tasks.GetTask, task_pb2.GetTaskRequest),
             "ListTasks": (h.tasks.ListTasks, task_pb2.ListTasksRequest),
             "CancelTask": (h.tasks.CancelTask, task_pb2.CancelTaskRequest),
             "GetUpload": (h.tasks.GetUpload, task_pb2.GetUploadRequest),
             "ListUploads": (h.tasks.ListUploads, task_pb2.ListUploadsRequest),
             "DeleteUpload": (h.tasks.DeleteUpload, task_pb2.DeleteUploadRequest),
             "ListArtifacts": (h.tasks.ListArtifacts, task_pb2.ListArtifactsRequest),
             "GetRobotState": (h.robot.GetRobotState, robot_pb2.GetRobotStateRequest)}
    seen: dict[str, set[str]] = {}
    from dream2flow.service.status import details_of

    for name, (fn, cls) in unary.items():
        for _ in range(25):
            try:
                fn(_random_message(cls, rng), metadata=OP, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
                d = details_of(exc)  # every error the server answers carries a reason
                assert d is not None and d.reason and d.domain == "dream2flow.v1", (name, code, exc.details())
            seen.setdefault(name, set()).add(code.name)
            assert code in allowed, f"{name}: {code}"
        raw = h.channel.unary_unary(f"/dream2flow.v1.{'RobotService' if name == 'GetRobotState' else 'TaskService'}"
                                    f"/{name}", request_serializer=None, response_deserializer=None)
        for _ in range(10):  # bytes that are not a valid message at all: refused by gRPC, server fine
            try:
                raw(rng.bytes(int(rng.integers(1, 200))), metadata=OP, timeout=30)
            except grpc.RpcError as exc:
                assert exc.code() in allowed  # mostly INVALID_ARGUMENT; a few bytes parse as a message
    for _ in range(15):
        msgs = [_random_message(task_pb2.UploadVideoRequest, rng) for _ in range(int(rng.integers(0, 5)))]
        code = code_of(h.tasks.UploadVideo, iter(msgs), metadata=OP, timeout=30)
        assert code in allowed, f"UploadVideo: {code}"
    for _ in range(10):
        code = code_of(lambda r: list(h.tasks.WatchTask(r, metadata=OP, timeout=30)),
                       _random_message(task_pb2.WatchTaskRequest, rng))
        assert code in allowed, f"WatchTask: {code}"
        code = code_of(lambda r: list(h.tasks.GetArtifact(r, metadata=OP, timeout=30)),
                       _random_message(task_pb2.GetArtifactRequest, rng))
        assert code in allowed | {grpc.StatusCode.OUT_OF_RANGE}, f"GetArtifact: {code}"
    # Still fully working afterwards.
    r = h.submit()
    assert C.STATE_NAMES[h.wait_state(r.task.task_id, {"SUCCEEDED", "FAILED"}).state] == "SUCCEEDED"
    assert h.store.integrity_check() == "ok"
    assert "INVALID_ARGUMENT" in seen["SubmitTask"]
