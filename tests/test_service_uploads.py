"""Issue 16, acceptance 5: uploads are resumable, deduplicated by sha256, listable, deletable and
bounded in idle time.

An upload cut at 50 % keeps its first half on the server; the client asks for the received
offset and sends only the second half. A second task names the same video by its sha256
without uploading it; uploading it again sends nothing."""

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
from dream2flow.service.status import details_of
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread, make_config,
                                        scripted_pipeline, write_test_depth, write_test_video)
from dream2flow.v1 import task_pb2

OP = (("authorization", f"Bearer {OPERATOR_TOKEN}"),)
CHUNK = 16 * 1024
BOX = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[tuple[ServiceThread, C.Connection]]:
    cfg = make_config(tmp_path / "data", limits={"upload_idle_timeout_s": 1.0,
                                                 "max_depth_bytes": 8_000_000})
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm(), pipeline=scripted_pipeline(ticks=3)) as st, \
            C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        yield st, conn


def _depth_file(tmp: Path) -> Path:
    """A 12-frame relative depth (~0.9 MB), random so that it does not compress."""
    d = np.random.default_rng(0).random((12, 120, 160), dtype=np.float32)
    p = tmp / "depth.npy"
    np.save(p, d, allow_pickle=False)
    return p


def _cut_upload(conn: C.Connection, path: Path, purpose: str, stop_at: int) -> None:
    """Stream ``path`` and break the connection after ``stop_at`` bytes were sent."""
    sent = [0]
    reached = threading.Event()
    release = threading.Event()

    def requests() -> Iterator[task_pb2.UploadVideoRequest]:
        for r in C.upload_requests(path, purpose, chunk_bytes=CHUNK):
            if r.HasField("chunk"):
                if sent[0] >= stop_at:
                    reached.set()
                    release.wait(30)  # the client "loses its network" here
                    return
                sent[0] += len(r.chunk)
            yield r

    fut = conn.tasks.UploadVideo.future(requests(), metadata=conn.metadata, timeout=60)
    assert reached.wait(30)
    sha = C.sha256_file(path)
    deadline = time.monotonic() + 10
    while True:  # the server has written what was sent
        u = C.find_upload(conn, sha, purpose)
        if u is not None and u.received_bytes == stop_at:
            break
        assert time.monotonic() < deadline, "the server did not receive the first half"
        time.sleep(0.02)
    fut.cancel()
    release.set()
    with pytest.raises(grpc.FutureCancelledError):
        fut.result()


def test_upload_cut_at_half_resumes_without_resending_the_first_half(srv: Any, tmp_path: Path) -> None:
    st, conn = srv
    path = _depth_file(tmp_path)
    size = path.stat().st_size
    half = (size // 2) // CHUNK * CHUNK
    _cut_upload(conn, path, "VIDEO_DEPTH", half)
    sha = C.sha256_file(path)
    deadline = time.monotonic() + 10
    while st.service.uploads._active:  # the broken stream has ended on the server
        assert time.monotonic() < deadline
        time.sleep(0.02)
    u = C.find_upload(conn, sha, "VIDEO_DEPTH")
    assert u.state == task_pb2.UPLOAD_STATE_PARTIAL and u.received_bytes == half and u.size_bytes == size
    listed = conn.tasks.ListUploads(task_pb2.ListUploadsRequest(include_partial=True), metadata=OP).uploads
    assert [(x.state, x.received_bytes) for x in listed] == [(task_pb2.UPLOAD_STATE_PARTIAL, half)]

    # A resume at a wrong offset is refused with the right one in the details.
    with pytest.raises(grpc.RpcError) as ei:
        conn.tasks.UploadVideo(C.upload_requests(path, "VIDEO_DEPTH", chunk_bytes=CHUNK, offset_bytes=CHUNK),
                               metadata=OP, timeout=30)
    d = details_of(ei.value)
    assert d.reason == "UPLOAD_OFFSET_MISMATCH" and d.metadata["received_bytes"] == str(half)

    sent_from: list[int] = []
    resp = C.upload_file(conn, path, "VIDEO_DEPTH", chunk_bytes=CHUNK,
                         on_progress=lambda sent, total: sent_from.append(sent))
    print(f"\nresumed upload: {half} of {size} bytes kept, {resp.received_bytes} sent on resume")
    assert resp.resumed_from_bytes == half and resp.received_bytes == size - half  # only the second half
    assert sent_from[0] == half + CHUNK  # the client started reading at the offset
    assert resp.sha256_hex == sha and not resp.deduplicated and resp.num_frames == 12
    stored = st.service.store.upload_path(resp.upload_id)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha  # every byte checked, none re-sent
    assert not st.service.store.list_parts() and not list(stored.parent.glob("*.part"))
    audit = [a["detail"] for a in st.service.store.audit_rows() if a["rpc"] == "UploadVideo" and a["code"] == "OK"]
    assert audit[-1].endswith(f"received {size - half} from offset {half}")


def test_second_task_names_the_video_by_sha256_without_uploading(srv: Any, tmp_path: Path) -> None:
    st, conn = srv
    video = write_test_video(tmp_path / "v.mp4")
    depth = write_test_depth(tmp_path / "d.npy")
    first = C.upload_file(conn, video)
    dep = C.upload_file(conn, depth, "VIDEO_DEPTH")
    t1 = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
        instruction="one", box=BOX, video_upload_id=first.upload_id, video_depth_upload_id=dep.upload_id)).task
    # The second task names both files by their content, nothing is uploaded.
    before = [a for a in st.service.store.audit_rows() if a["rpc"] == "UploadVideo"]
    t2 = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
        instruction="two", box=BOX, video_sha256_hex=C.sha256_file(video),
        video_depth_sha256_hex=C.sha256_file(depth))).task
    after = [a for a in st.service.store.audit_rows() if a["rpc"] == "UploadVideo"]
    assert after == before
    for t in (t1, t2):
        for _ in C.watch(conn, t.task_id):
            pass
        done = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=t.task_id)).task
        assert C.STATE_NAMES[done.state] == "SUCCEEDED", done.error_message
    assert t2.video_source == f"upload:{first.upload_id}"
    # Uploading the same file again sends nothing (the client asks by sha256 first) ...
    sent: list[int] = []
    again = C.upload_file(conn, video, on_progress=lambda s, n: sent.append(s))
    assert again.deduplicated and again.upload_id == first.upload_id and sent == []
    # ... and a raw stream of it is answered at once, without reading the chunks.
    raw = conn.tasks.UploadVideo(C.upload_requests(video, "VIDEO"), metadata=OP, timeout=30)
    assert raw.deduplicated and raw.received_bytes == 0 and raw.upload_id == first.upload_id
    # Two streams of one new file at once: one writes it, the other is answered with it.
    other = write_test_video(tmp_path / "w.mp4", seed=5)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(conn.tasks.UploadVideo(
        C.upload_requests(other, "VIDEO", chunk_bytes=4096), metadata=OP, timeout=30))) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len({r.upload_id for r in results}) == 1 and sorted(r.deduplicated for r in results) == [False, True]


def test_list_delete_and_unknown_hash(srv: Any, tmp_path: Path) -> None:
    st, conn = srv
    video = write_test_video(tmp_path / "v.mp4")
    depth = write_test_depth(tmp_path / "d.npy")
    v = C.upload_file(conn, video)
    d = C.upload_file(conn, depth, "VIDEO_DEPTH")
    listed = conn.tasks.ListUploads(task_pb2.ListUploadsRequest(page_size=1), metadata=OP)
    assert len(listed.uploads) == 1 and listed.next_page_token
    rest = conn.tasks.ListUploads(task_pb2.ListUploadsRequest(page_token=listed.next_page_token), metadata=OP)
    assert {u.upload_id for u in (*listed.uploads, *rest.uploads)} == {v.upload_id, d.upload_id}
    assert all(u.state == task_pb2.UPLOAD_STATE_COMPLETE and u.owner == "op" for u in rest.uploads)
    t = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
        instruction="x", box=BOX, video_upload_id=v.upload_id, video_depth_upload_id=d.upload_id)).task
    for _ in C.watch(conn, t.task_id):
        pass
    gone = conn.tasks.DeleteUpload(task_pb2.DeleteUploadRequest(upload_id=v.upload_id), metadata=OP).upload
    assert gone.upload_id == v.upload_id
    with pytest.raises(grpc.RpcError) as ei:
        conn.tasks.SubmitTask(task_pb2.SubmitTaskRequest(instruction="x", box=BOX,
                                                         video_sha256_hex=C.sha256_file(video),
                                                         video_depth_upload_id=d.upload_id), metadata=OP)
    det = details_of(ei.value)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND and det.reason == "UPLOAD_NOT_FOUND"
    assert det.field_violations[0][0] == "video_sha256_hex"
    task_dir = st.service.store.task_dir(t.task_id)
    assert (task_dir / "video.mp4").read_bytes() == video.read_bytes()  # the task kept its copy
    with pytest.raises(grpc.RpcError) as ei:  # viewers may not manage uploads
        conn.tasks.ListUploads(task_pb2.ListUploadsRequest(), metadata=(("authorization", f"Bearer {VIEWER_TOKEN}"),))
    assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_idle_upload_is_ended_frees_its_slot_and_resumes(srv: Any, tmp_path: Path) -> None:
    st, conn = srv
    path = _depth_file(tmp_path)
    stall = threading.Event()

    def stalled() -> Iterator[task_pb2.UploadVideoRequest]:
        for i, r in enumerate(C.upload_requests(path, "VIDEO_DEPTH", chunk_bytes=CHUNK)):
            if i == 3:  # metadata + 2 chunks, then silence
                stall.wait(20)
                return
            yield r

    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        conn.tasks.UploadVideo(stalled(), metadata=OP, timeout=30)
    waited = time.monotonic() - t0
    stall.set()
    d = details_of(ei.value)
    assert ei.value.code() == grpc.StatusCode.ABORTED and d.reason == "UPLOAD_IDLE_TIMEOUT" and d.retryable
    assert d.metadata["received_bytes"] == str(2 * CHUNK) and waited < 10
    assert st.service.uploads._active == 0  # the slot is free again
    resp = C.upload_file(conn, path, "VIDEO_DEPTH", chunk_bytes=CHUNK)
    assert resp.resumed_from_bytes == 2 * CHUNK and resp.received_bytes == path.stat().st_size - 2 * CHUNK
