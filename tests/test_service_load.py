"""Acceptance 4: 16 concurrent clients upload, submit and poll for 30 s on loopback. Only the
documented back-pressure code (RESOURCE_EXHAUSTED) may appear besides OK, and every accepted
task is found, finished, in the store afterwards (no lost jobs)."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest

from dream2flow.service import client as C
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread, make_config,
                                        scripted_pipeline, write_test_depth, write_test_video)
from dream2flow.v1 import robot_pb2, robot_pb2_grpc, task_pb2, task_pb2_grpc

CLIENTS = 16
DURATION_S = 30.0


@pytest.mark.slow
def test_sixteen_clients_for_thirty_seconds(tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "v.mp4")
    depth = write_test_depth(tmp_path / "d.npy")
    cfg = make_config(tmp_path / "data", limits={"max_queued_tasks": 8, "max_upload_store_bytes": 64_000_000,
                                                 "upload_ttl_s": 3.0, "max_concurrent_uploads": 8},
                      server={"max_concurrent_rpcs": 64})
    box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)
    codes: collections.Counter[str] = collections.Counter()
    unexpected: list[str] = []
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def note(code: grpc.StatusCode, where: str, details: str = "") -> None:
        with lock:
            codes[f"{where}:{code.name}"] += 1
            if code not in (grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED):
                unexpected.append(f"{where}: {code.name}: {details}")

    def client(i: int, address: str) -> None:
        md = (("authorization", f"Bearer {OPERATOR_TOKEN if i % 4 else VIEWER_TOKEN}"),)
        op = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)
        with grpc.insecure_channel(address) as ch:
            tasks = task_pb2_grpc.TaskServiceStub(ch)
            robot = robot_pb2_grpc.RobotServiceStub(ch)
            mine: list[str] = []
            dep = ""
            while not stop.is_set():
                try:
                    if i % 4 == 0:  # viewers poll
                        tasks.ListTasks(task_pb2.ListTasksRequest(page_size=10), metadata=md, timeout=30)
                        robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=md, timeout=30)
                        note(grpc.StatusCode.OK, "poll")
                        continue
                    if not dep:
                        dep = tasks.UploadVideo(C.upload_requests(depth, "VIDEO_DEPTH", chunk_bytes=128 * 1024),
                                                metadata=op, timeout=60).upload_id
                    vid = tasks.UploadVideo(C.upload_requests(video, "VIDEO", chunk_bytes=64 * 1024),
                                            metadata=op, timeout=60).upload_id
                    note(grpc.StatusCode.OK, "upload")
                    r = tasks.SubmitTask(task_pb2.SubmitTaskRequest(
                        instruction=f"client {i}", box=box, video_upload_id=vid, video_depth_upload_id=dep,
                        options=task_pb2.TaskOptions(dry_run=True), idempotency_key=uuid.uuid4().hex),
                        metadata=op, timeout=30)
                    note(grpc.StatusCode.OK, "submit")
                    mine.append(r.task.task_id)
                    with lock:
                        accepted.append(r.task.task_id)
                    for tid in mine[-3:]:
                        tasks.GetTask(task_pb2.GetTaskRequest(task_id=tid), metadata=md, timeout=30)
                    note(grpc.StatusCode.OK, "poll")
                except grpc.RpcError as exc:
                    where = "upload" if not dep else "rpc"
                    if exc.code() == grpc.StatusCode.NOT_FOUND and "expired" in (exc.details() or ""):
                        dep = ""  # our depth upload expired (ttl 3 s): upload it again
                        note(grpc.StatusCode.OK, "re-upload")
                        continue
                    note(exc.code(), where, exc.details() or "")
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        time.sleep(0.05)  # back off, as a well-behaved client does

    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm(), pipeline=scripted_pipeline(ticks=20)) as st:
        threads = [threading.Thread(target=client, args=(i, st.address), daemon=True) for i in range(CLIENTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(DURATION_S)
        stop.set()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - t0
        assert not any(t.is_alive() for t in threads)
        # Drain: every accepted task must finish (bounded wait), none may be missing.
        store = st.service.store
        t_end = time.monotonic() + 120
        while store.queued_ids() or store.running_ids():
            assert time.monotonic() < t_end, "the queue did not drain"
            time.sleep(0.2)
        states = collections.Counter(store.get_task(tid)["state"] for tid in accepted)
        n_tasks = len(store.list_tasks(limit=100000)[0])
        integrity = store.integrity_check()
    print(f"\nload: {elapsed:.1f} s, {CLIENTS} clients, codes {dict(codes)}, tasks {dict(states)}")
    assert elapsed >= DURATION_S
    assert not unexpected, unexpected[:5]
    assert codes["upload:OK"] > CLIENTS and codes["submit:OK"] > 0 and codes["poll:OK"] > CLIENTS
    assert states == {"SUCCEEDED": len(accepted)}  # no lost or stuck jobs
    assert n_tasks == len(accepted) == len(set(accepted))  # nothing extra, nothing duplicated
    assert integrity == "ok"
