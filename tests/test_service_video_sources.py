"""Video sources against a local HTTP server the test starts (loopback only): downloads with
caps, retries with backoff and timeouts; the video-generation endpoint (POST, poll, download);
and both wired through the service."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from loopback_http import LoopbackHTTP

from dream2flow.errors import ExecutionFailed, InvalidInput, ResourceExhausted
from dream2flow.service import client as C
from dream2flow.service import video_sources as vs
from dream2flow.service.testing import (OPERATOR_TOKEN, FakeArm, ServiceThread, make_config, scripted_pipeline,
                                        write_test_depth, write_test_video)
from dream2flow.v1 import task_pb2


class Web(LoopbackHTTP):
    """Routes: path → handler(req) ; counts hits per path; records POST bodies."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.hits: dict[str, int] = {}
        self.posts: list[dict[str, Any]] = []
        self.polls = 0
        self.gen_status = "succeeded"
        web = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/octet-stream",
                      length: int | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                p = self.path
                web.hits[p] = web.hits.get(p, 0) + 1
                n = web.hits[p]
                if p == "/flaky.mp4" and n <= 2:
                    return self._send(503, b"busy")
                if p == "/missing.mp4":
                    return self._send(404, b"no")
                if p == "/big.mp4":  # declares a gigabyte
                    return self._send(200, b"x" * 1000, length=10**9)
                if p == "/endless.mp4":  # no Content-Length, more bytes than any cap
                    self.send_response(200)
                    self.end_headers()
                    for _ in range(64):
                        self.wfile.write(b"y" * 65536)
                    return None
                if p == "/slow.mp4":
                    time.sleep(1.0)
                    return self._send(200, b"late")
                if p == "/short.mp4":  # promises 1000 bytes, sends 10, hangs up
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"z" * 10)
                    self.close_connection = True
                    return None
                if p.startswith("/gen/jobs/"):
                    web.polls += 1
                    if web.polls < 3:
                        return self._send(200, json.dumps({"status": "running"}).encode(), "application/json")
                    if web.gen_status == "failed":
                        return self._send(200, json.dumps({"status": "failed", "error": "model overloaded"}).encode(),
                                          "application/json")
                    return self._send(200, json.dumps({"status": "succeeded", "video_url": "/video.mp4",
                                                       "video_depth_url": "/depth.npy"}).encode(), "application/json")
                if p.lstrip("/") in web.files:
                    return self._send(200, web.files[p.lstrip("/")])
                return self._send(404, b"not found")

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(min(n, 10_000_000))
                web.posts.append({"path": self.path, "ctype": self.headers.get("Content-Type", ""), "body": body,
                                  "auth": self.headers.get("Authorization", "")})
                if self.path == "/gen/jobs":
                    return self._send(202, json.dumps({"job_id": "job-1"}).encode(), "application/json")
                return self._send(404, b"")

        super().__init__(Handler)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    video = write_test_video(tmp_path / "v.mp4").read_bytes()
    depth = write_test_depth(tmp_path / "d.npy").read_bytes()
    w = Web({"video.mp4": video, "depth.npy": depth, "garbage.mp4": b"\x00garbage" * 1000})
    yield w
    w.close()


def policy(**kw: Any) -> vs.FetchPolicy:
    base = dict(connect_timeout_s=2.0, read_timeout_s=0.3, deadline_s=10.0, retries=3, backoff_s=0.01,
                max_bytes=1_000_000, allowed_networks=("127.0.0.1/32",))  # the test's own server: opted in
    base.update(kw)
    return vs.FetchPolicy(**base)


def test_download_ok(web: Web, tmp_path: Path) -> None:
    f = vs.download(f"{web.base}/video.mp4", tmp_path / "a.mp4", policy())
    assert f.path.read_bytes() == web.files["video.mp4"] and f.attempts == 1
    assert f.sha256_hex == C.sha256_file(tmp_path / "a.mp4")


def test_download_failures(web: Web, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="404"):  # 4xx: no retry
        vs.download(f"{web.base}/missing.mp4", tmp_path / "m.mp4", policy())
    assert web.hits["/missing.mp4"] == 1
    with pytest.raises(ResourceExhausted):  # declared size over the cap
        vs.download(f"{web.base}/big.mp4", tmp_path / "big.mp4", policy())
    with pytest.raises(ResourceExhausted):  # no Content-Length: the running cap stops it
        vs.download(f"{web.base}/endless.mp4", tmp_path / "e.mp4", policy(max_bytes=200_000))
    with pytest.raises(vs.SourceUnavailable, match="4 attempts"):  # read timeout, retried, then given up
        vs.download(f"{web.base}/slow.mp4", tmp_path / "s.mp4", policy())
    assert web.hits["/slow.mp4"] == 4
    with pytest.raises(vs.SourceUnavailable):  # truncated body, retried
        vs.download(f"{web.base}/short.mp4", tmp_path / "t.mp4", policy(retries=1))
    with pytest.raises(InvalidInput, match="not in"):
        vs.download(f"{web.base}/video.mp4", tmp_path / "x.mp4", policy(allowed_hosts=("example.org",)))
    with pytest.raises(InvalidInput):
        vs.download("file:///etc/passwd", tmp_path / "p", policy())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ExecutionFailed, match="cancelled"):
        vs.download(f"{web.base}/video.mp4", tmp_path / "c.mp4", policy(), cancel=cancel)
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "big.mp4").exists()


def test_flaky_source_recovers(web: Web, tmp_path: Path) -> None:
    web.files["flaky.mp4"] = b"finally"
    f = vs.download(f"{web.base}/flaky.mp4", tmp_path / "f.mp4", policy())
    assert f.attempts == 3 and f.path.read_bytes() == b"finally"


def test_generator_post_poll_download(web: Web, tmp_path: Path) -> None:
    gen = vs.GeneratorConfig(url=f"{web.base}/gen", token="gen-token", poll_interval_s=0.01, timeout_s=10)
    res = vs.generate_video(gen, image_png=b"\x89PNG fake", instruction="open the drawer", object_prompt="drawer",
                            num_frames=12, seed=3, dest_dir=tmp_path, policy=policy())
    assert res.job_id == "job-1" and res.video.path.read_bytes() == web.files["video.mp4"]
    assert res.video_depth is not None and res.video_depth.path.read_bytes() == web.files["depth.npy"]
    post = web.posts[0]
    assert post["path"] == "/gen/jobs" and post["auth"] == "Bearer gen-token"
    assert b"open the drawer" in post["body"] and b"\x89PNG fake" in post["body"]
    assert web.polls == 3
    web.polls = 0
    web.gen_status = "failed"
    with pytest.raises(vs.SourceUnavailable, match="model overloaded"):
        vs.generate_video(gen, image_png=b"x", instruction="i", object_prompt="", num_frames=12, seed=0,
                          dest_dir=tmp_path / "f", policy=policy())
    web.polls = 0
    web.gen_status = "succeeded"
    with pytest.raises(vs.SourceUnavailable, match="did not finish"):
        vs.generate_video(vs.GeneratorConfig(url=f"{web.base}/gen", poll_interval_s=0.05, timeout_s=0.01),
                          image_png=b"x", instruction="i", object_prompt="", num_frames=12, seed=0,
                          dest_dir=tmp_path / "g", policy=policy())


def test_url_and_generate_sources_through_the_service(web: Web, tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "data", video_sources={"generator_url": f"{web.base}/gen",
                                                        "url_allowed_networks": ["127.0.0.1/32"],
                                                        "generator_poll_interval_s": 0.01, "backoff_s": 0.01,
                                                        "read_timeout_s": 2.0})
    box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm(), pipeline=scripted_pipeline(ticks=5)) as st, \
            C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        def run(**kw: Any) -> task_pb2.Task:
            t = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(instruction="put it", box=box, **kw)).task
            for _ in C.watch(conn, t.task_id):
                pass
            return C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=t.task_id)).task

        ok = run(video_url=f"{web.base}/video.mp4", video_depth_url=f"{web.base}/depth.npy")
        assert C.STATE_NAMES[ok.state] == "SUCCEEDED", ok.error_message
        assert ok.metrics["fetch_video_bytes"] == len(web.files["video.mp4"])
        gen = run(generate=task_pb2.GenerateVideo(num_frames=12))
        assert C.STATE_NAMES[gen.state] == "SUCCEEDED", gen.error_message
        assert b"put it" in web.posts[-1]["body"] and b"\x89PNG" in web.posts[-1]["body"]  # I0 went to the generator
        missing = run(video_url=f"{web.base}/missing.mp4", video_depth_url=f"{web.base}/depth.npy")
        assert (C.STATE_NAMES[missing.state], missing.failed_stage, missing.error_code) == \
            ("FAILED", "fetch", "INVALID_ARGUMENT")
        garbage = run(video_url=f"{web.base}/garbage.mp4", video_depth_url=f"{web.base}/depth.npy")
        assert (C.STATE_NAMES[garbage.state], garbage.failed_stage, garbage.error_code) == \
            ("FAILED", "decode", "INVALID_ARGUMENT")
        # URL rules are checked at submit time, before anything is queued.
        with pytest.raises(grpc.RpcError) as ei:
            conn.tasks.SubmitTask(task_pb2.SubmitTaskRequest(instruction="x", box=box, video_url="http://" + "a" * 3000,
                                                             video_depth_url=f"{web.base}/depth.npy"),
                                  metadata=conn.metadata)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
