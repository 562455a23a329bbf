"""Issue 16, acceptance 3: results leave the robot over the API.

``dream2flow task fetch ID [NAME...] --out DIR`` downloads every artifact of a finished task
(GetArtifact: chunks with their own sha256, resumable by offset) and the sha256s match the
server's files; an interrupted fetch resumes where it stopped. The task's record says whether
its outcome was checked (NOT_CHECKED here: a backend that cannot judge)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from dream2flow.cli import main
from dream2flow.errors import InvalidInput
from dream2flow.service import client as C
from dream2flow.service.status import details_of
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread, make_config,
                                        scripted_pipeline, write_test_depth, write_test_video)
from dream2flow.v1 import task_pb2

BOX = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)


class Interrupted(Exception):
    pass


@pytest.fixture
def finished(tmp_path: Path) -> Iterator[tuple[ServiceThread, str, Path]]:
    cfg = make_config(tmp_path / "data", limits={"max_artifact_chunk_bytes": 64 * 1024})
    (tmp_path / "viewer.token").write_text(VIEWER_TOKEN)
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm(), pipeline=scripted_pipeline(ticks=5)) as st:
        with C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
            video = write_test_video(tmp_path / "v.mp4", frames=40, width=320, height=240)
            depth = write_test_depth(tmp_path / "d.npy", frames=40)
            t = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
                instruction="x", box=BOX, video_upload_id=C.upload_file(conn, video).upload_id,
                video_depth_upload_id=C.upload_file(conn, depth, "VIDEO_DEPTH").upload_id)).task
            for _ in C.watch(conn, t.task_id):
                pass
        yield st, t.task_id, tmp_path


def _cli(st: ServiceThread, tmp: Path) -> list[str]:
    return ["--server", st.address, "--insecure", "--token-file", str(tmp / "viewer.token")]


def test_fetch_downloads_every_artifact_with_matching_sha256(finished: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    st, tid, tmp = finished
    with C.connect(st.address, token=VIEWER_TOKEN, insecure=True) as conn:
        task = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=tid)).task
        listed = C.list_artifacts(conn, tid)
    assert C.STATE_NAMES[task.state] == "SUCCEEDED"
    assert task.outcome_check.verdict == task_pb2.OUTCOME_VERDICT_NOT_CHECKED  # SUCCEEDED ≠ achieved
    assert "cannot judge" in task.outcome_check.detail
    assert {a.name for a in listed} == set(task.artifacts) == {"i0", "d0", "camera", "video", "video_depth",
                                                                 "outcome"}
    out = tmp / "fetched"
    assert main(["task", "fetch", *_cli(st, tmp), tid, "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    data = st.service.store.data_dir
    for a in listed:
        server_file = data / task.artifacts[a.name]
        local = out / a.file_name
        assert hashlib.sha256(local.read_bytes()).hexdigest() == a.sha256_hex == \
            hashlib.sha256(server_file.read_bytes()).hexdigest(), a.name
        assert a.size_bytes == server_file.stat().st_size
    assert {r["name"] for r in report["artifacts"]} == {a.name for a in listed}
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["outcome_check"]["verdict"] == "NOT_CHECKED"
    # Named artifacts only; a second run finds them already there (nothing received).
    assert main(["task", "fetch", *_cli(st, tmp), tid, "flow_missing", "--out", str(out)]) == 2
    assert "no artifact 'flow_missing'" in capsys.readouterr().err
    assert main(["task", "fetch", *_cli(st, tmp), tid, "video", "i0", "--out", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in again["artifacts"]] == ["video", "i0"] and again["received_bytes"] == 0


def test_interrupted_fetch_resumes(finished: Any, capsys: pytest.CaptureFixture[str]) -> None:
    st, tid, tmp = finished
    out = tmp / "partial"
    with C.connect(st.address, token=VIEWER_TOKEN, insecure=True) as conn:
        video = next(a for a in C.list_artifacts(conn, tid) if a.name == "video")
        assert video.size_bytes > 4 * 16 * 1024

        def cut(done: int, size: int) -> None:
            raise Interrupted(f"network lost after {done} bytes")

        with pytest.raises(Interrupted):
            C.fetch_artifact(conn, tid, video, out, chunk_bytes=16 * 1024, on_progress=cut)
    part = out / (video.file_name + ".part")
    kept = part.stat().st_size
    assert 0 < kept < video.size_bytes and not (out / video.file_name).exists()
    assert main(["task", "fetch", *_cli(st, tmp), tid, "video", "--out", str(out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["artifacts"][0]
    print(f"\nfetch resumed at {kept} of {video.size_bytes} bytes; received {row['received_bytes']}")
    assert row["resumed_from_bytes"] == kept and row["received_bytes"] == video.size_bytes - kept
    assert hashlib.sha256((out / video.file_name).read_bytes()).hexdigest() == video.sha256_hex
    assert not part.exists()
    # A .part that belongs to another file (sha mismatch stamp) is started over, not trusted.
    part.write_bytes(b"junk" * 100)
    (out / (video.file_name + ".part.sha256")).write_text("0" * 64)
    (out / video.file_name).unlink()
    with C.connect(st.address, token=VIEWER_TOKEN, insecure=True) as conn:
        f = C.fetch_artifact(conn, tid, video, out)
    assert f.resumed_from == 0 and hashlib.sha256(f.path.read_bytes()).hexdigest() == video.sha256_hex


def test_artifact_rules(finished: Any, tmp_path: Path) -> None:
    st, tid, tmp = finished
    with C.connect(st.address, token=VIEWER_TOKEN, insecure=True) as conn:
        md = conn.metadata
        arts = {a.name: a for a in C.list_artifacts(conn, tid)}
        # Chunks carry their offset and own sha256; a resumed stream starts at the offset.
        resp = list(conn.tasks.GetArtifact(task_pb2.GetArtifactRequest(task_id=tid, name="video", offset_bytes=1000,
                                                                       chunk_bytes=8192), metadata=md))
        assert resp[0].artifact.sha256_hex == arts["video"].sha256_hex
        chunks = [r.chunk for r in resp[1:]]
        assert chunks[0].offset_bytes == 1000 and all(len(c.data) <= 8192 for c in chunks)
        assert all(hashlib.sha256(c.data).hexdigest() == c.sha256_hex for c in chunks)
        assert 1000 + sum(len(c.data) for c in chunks) == arts["video"].size_bytes
        for req, code, reason in (
                (task_pb2.GetArtifactRequest(task_id=tid, name="nope"), grpc.StatusCode.NOT_FOUND, "ARTIFACT_NOT_FOUND"),
                (task_pb2.GetArtifactRequest(task_id=tid, name="video", offset_bytes=10**9),
                 grpc.StatusCode.OUT_OF_RANGE, "INVALID_FIELD"),
                (task_pb2.GetArtifactRequest(task_id=tid, name="video", chunk_bytes=10**8),
                 grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"),
                (task_pb2.GetArtifactRequest(task_id="t_" + "0" * 20, name="video"), grpc.StatusCode.NOT_FOUND,
                 "TASK_NOT_FOUND")):
            with pytest.raises(grpc.RpcError) as ei:
                list(conn.tasks.GetArtifact(req, metadata=md))
            assert ei.value.code() == code and details_of(ei.value).reason == reason, req
    # A queued task has no artifacts yet.
    st.service.runner.hold("test")
    with C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        q = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
            instruction="later", box=BOX, video_sha256_hex=C.sha256_file(tmp / "v.mp4"),
            video_depth_sha256_hex=C.sha256_file(tmp / "d.npy"))).task
        with pytest.raises(grpc.RpcError) as ei:
            conn.tasks.ListArtifacts(task_pb2.ListArtifactsRequest(task_id=q.task_id), metadata=conn.metadata)
        assert details_of(ei.value).reason == "TASK_NOT_FINISHED"
    # The client never writes outside the output folder, whatever the server says.
    for bad in ("../x", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(InvalidInput):
            C.safe_file_name(bad)
    assert C.safe_file_name("sub/flow.npz") == "sub/flow.npz"
