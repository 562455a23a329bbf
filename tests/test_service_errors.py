"""Issue 16, acceptance 4: every error carries google.rpc.Status details (ErrorInfo with a stable
reason, BadRequest, RetryInfo for back-pressure, QuotaFailure for caps), and a client decides
to retry from the details alone.

``decide`` below is such a client: it sees only the ``grpc-status-details-bin`` trailer (never
the status code or the message text)."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import numpy as np
import pytest

from dream2flow.service import client as C
from dream2flow.service.status import REASONS, ErrorDetails, parse
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread, make_config,
                                        scripted_pipeline, write_test_depth, write_test_video)
from dream2flow.v1 import robot_pb2, robot_pb2_grpc, task_pb2, task_pb2_grpc

OP = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)
VIEW = (("authorization", f"Bearer {VIEWER_TOKEN}"),)
BOX = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)


def decide(trailing_metadata: Any) -> float | None:
    """The retry decision of a client that reads only the error details: wait this long and
    retry, or None (do not retry this call unchanged)."""
    d = parse(trailing_metadata)
    return None if d is None else d.retry_after_s


def call_with_retries(fn: Callable[[], Any], max_attempts: int = 50) -> tuple[Any, list[float]]:
    waits: list[float] = []
    for _ in range(max_attempts):
        try:
            return fn(), waits
        except grpc.RpcError as exc:
            wait = decide(exc.trailing_metadata())
            if wait is None:
                raise
            waits.append(wait)
            time.sleep(wait)
    raise AssertionError("gave up")


@pytest.fixture
def h(tmp_path: Path) -> Iterator[tuple[ServiceThread, Any, Any, tuple[str, str]]]:
    cfg = make_config(tmp_path / "data", limits={"max_queued_tasks": 2, "max_video_bytes": 1_000_000})
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm(), pipeline=scripted_pipeline(ticks=3)) as st:
        ch = grpc.insecure_channel(st.address)
        tasks, robot = task_pb2_grpc.TaskServiceStub(ch), robot_pb2_grpc.RobotServiceStub(ch)
        video = write_test_video(tmp_path / "v.mp4")
        depth = write_test_depth(tmp_path / "d.npy")
        ids = (tasks.UploadVideo(C.upload_requests(video, "VIDEO"), metadata=OP).upload_id,
               tasks.UploadVideo(C.upload_requests(depth, "VIDEO_DEPTH"), metadata=OP).upload_id)
        yield st, tasks, robot, ids
        ch.close()


def _details(fn: Callable[[], Any]) -> tuple[grpc.StatusCode, ErrorDetails]:
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    d = parse(ei.value.trailing_metadata())
    assert d is not None, f"{ei.value.code()}: no details"
    assert d.domain == "dream2flow.v1" and d.code == ei.value.code().name
    return ei.value.code(), d


def test_queue_full_is_retried_from_the_details_alone(h: Any) -> None:
    st, tasks, robot, (vid, dep) = h
    st.service.runner.hold("test: the queue fills")
    req = task_pb2.SubmitTaskRequest(instruction="x", box=BOX, video_upload_id=vid, video_depth_upload_id=dep)
    for _ in range(2):
        tasks.SubmitTask(req, metadata=OP)
    code, d = _details(lambda: tasks.SubmitTask(req, metadata=OP))
    assert (code, d.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL")
    assert d.retry_after_s and d.quota_violations[0][0] == "task queue"
    # The operator releases the hold a moment later; the client keeps retrying as told.
    threading.Timer(1.0, lambda: robot.Reset(robot_pb2.ResetRequest(), metadata=OP)).start()
    resp, waits = call_with_retries(lambda: tasks.SubmitTask(req, metadata=OP))
    assert resp.task.task_id and len(waits) >= 1 and all(w == d.retry_after_s for w in waits)
    # A cap is not back-pressure: no RetryInfo, the client gives up at once.
    big = np.zeros(2_000_000, np.uint8).tobytes()
    meta = task_pb2.UploadMetadata(size_bytes=len(big), sha256_hex=hashlib.sha256(big).hexdigest(),
                                   container=task_pb2.CONTAINER_MP4, purpose=task_pb2.UPLOAD_PURPOSE_VIDEO)
    code, d = _details(lambda: call_with_retries(lambda: tasks.UploadVideo(
        iter([task_pb2.UploadVideoRequest(metadata=meta)]), metadata=OP)))
    assert (code, d.reason, d.retry_after_s) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "UPLOAD_TOO_LARGE", None)
    assert d.quota_violations == [("VIDEO upload size", "at most 1000000 bytes")]


def test_every_kind_of_error_has_a_documented_reason(h: Any) -> None:
    st, tasks, robot, (vid, dep) = h
    bad_box = task_pb2.SubmitTaskRequest(instruction="x", box=task_pb2.BoxPx(x0_px=600, x1_px=700, y1_px=5),
                                         video_upload_id=vid, video_depth_upload_id=dep)
    cases: list[tuple[Callable[[], Any], grpc.StatusCode, str, str | None]] = [
        (lambda: tasks.ListTasks(task_pb2.ListTasksRequest()), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING", None),
        (lambda: tasks.ListTasks(task_pb2.ListTasksRequest(), metadata=(("authorization", "Bearer x" * 4),)),
         grpc.StatusCode.UNAUTHENTICATED, "TOKEN_UNKNOWN", None),
        (lambda: tasks.SubmitTask(bad_box, metadata=VIEW), grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED", None),
        (lambda: tasks.SubmitTask(bad_box, metadata=OP), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "box"),
        (lambda: tasks.SubmitTask(task_pb2.SubmitTaskRequest(instruction="x", box=BOX, video_upload_id=vid,
                                                             video_depth_upload_id=dep,
                                                             options=task_pb2.TaskOptions(num_points=3)), metadata=OP),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "options.num_points"),
        (lambda: tasks.SubmitTask(task_pb2.SubmitTaskRequest(instruction="x", box=BOX, video_upload_id="u_" + "1" * 20,
                                                             video_depth_upload_id=dep), metadata=OP),
         grpc.StatusCode.NOT_FOUND, "UPLOAD_NOT_FOUND", "video_upload_id"),
        (lambda: tasks.SubmitTask(task_pb2.SubmitTaskRequest(instruction="x", box=BOX, video_url="ftp://a/b",
                                                             video_depth_upload_id=dep), metadata=OP),
         grpc.StatusCode.INVALID_ARGUMENT, "URL_REFUSED", "video_url"),
        (lambda: tasks.SubmitTask(task_pb2.SubmitTaskRequest(instruction="x", box=BOX, generate=task_pb2.GenerateVideo(),
                                                             video_depth_upload_id=dep), metadata=OP),
         grpc.StatusCode.FAILED_PRECONDITION, "NOT_CONFIGURED", "generate"),
        (lambda: tasks.GetTask(task_pb2.GetTaskRequest(task_id="t_" + "2" * 20), metadata=VIEW),
         grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND", None),
        (lambda: tasks.UploadVideo(iter([task_pb2.UploadVideoRequest(chunk=b"x")]), metadata=OP),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "metadata"),
        (lambda: tasks.GetUpload(task_pb2.GetUploadRequest(sha256_hex="0" * 64, purpose=1), metadata=OP),
         grpc.StatusCode.NOT_FOUND, "UPLOAD_NOT_FOUND", None),
    ]
    for fn, code, reason, field in cases:
        got_code, d = _details(fn)
        assert (got_code, d.reason) == (code, reason), (code, reason, d)
        assert reason in REASONS and REASONS[reason][0] == code.name
        assert (d.field_violations[0][0] if d.field_violations else None) == field, (reason, d.field_violations)
        assert d.retry_after_s is None, reason  # none of these is back-pressure
    # Idempotency key reused for another request; checksum mismatch; e-stop active.
    tasks.SubmitTask(task_pb2.SubmitTaskRequest(instruction="a", box=BOX, video_upload_id=vid,
                                                video_depth_upload_id=dep, idempotency_key="k"), metadata=OP)
    _, d = _details(lambda: tasks.SubmitTask(task_pb2.SubmitTaskRequest(
        instruction="b", box=BOX, video_upload_id=vid, video_depth_upload_id=dep, idempotency_key="k"), metadata=OP))
    assert d.reason == "IDEMPOTENCY_KEY_REUSED" and d.field_violations[0][0] == "idempotency_key"
    data = b"\0" * 100
    _, d = _details(lambda: tasks.UploadVideo(iter([task_pb2.UploadVideoRequest(metadata=task_pb2.UploadMetadata(
        size_bytes=100, sha256_hex="1" * 64, container=task_pb2.CONTAINER_NPY,
        purpose=task_pb2.UPLOAD_PURPOSE_VIDEO_DEPTH)), task_pb2.UploadVideoRequest(chunk=data)]), metadata=OP))
    assert d.reason == "CHECKSUM_MISMATCH"
    robot.EmergencyStop(robot_pb2.EmergencyStopRequest(), metadata=OP)
    code, d = _details(lambda: tasks.SubmitTask(task_pb2.SubmitTaskRequest(
        instruction="x", box=BOX, video_upload_id=vid, video_depth_upload_id=dep), metadata=OP))
    assert (code, d.reason, d.retry_after_s) == (grpc.StatusCode.FAILED_PRECONDITION, "ESTOP_ACTIVE", None)
    # Undecodable bytes.
    raw_call = grpc.insecure_channel(st.address).unary_unary("/dream2flow.v1.TaskService/GetTask",
                                                             request_serializer=None, response_deserializer=None)
    _, d = _details(lambda: raw_call(b"\xff\xff\xff", metadata=OP))
    assert d.reason == "MALFORMED_REQUEST"


def test_reason_codes_are_documented_in_the_proto() -> None:
    """status.REASONS is the one list; task.proto's comment must name each code with its status."""
    text = (Path(__file__).resolve().parents[1] / "protos" / "dream2flow" / "v1" / "task.proto").read_text()
    header = " ".join(line.lstrip("/ ") for line in text.split("syntax =")[0].splitlines())
    header = header.split("Reasons (status code):", 1)[1].split("A reason not in this list", 1)[0]
    for reason, (code, _) in REASONS.items():
        assert reason in header, reason
        after = header.split(reason, 1)[1]
        assert after.index(f"({code})") <= min(after.index(f"({c})") for c in {v[0] for v in REASONS.values()}
                                                  if f"({c})" in after), (reason, code)
