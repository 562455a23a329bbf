"""Issue 16, acceptance 2: outbound fetches cannot be pointed at the robot's own network.

Local HTTP servers on distinct loopback addresses stand in for the world: 127.0.0.2 is the
"allowed" video host (the tests opt in to that one private address explicitly), 127.0.0.3 a
host that is not allowed, 127.0.0.1 ("localhost") the robot computer itself. A redirect from the
allowed host to the disallowed one, to localhost or to 169.254.169.254 (cloud metadata) is
refused with a reason, and the target never sees a request. The resolved address is what is
checked and what is connected to (DNS rebinding)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from dream2flow.errors import InvalidInput
from dream2flow.service import client as C
from dream2flow.service import netguard
from dream2flow.service import video_sources as vs
from dream2flow.service.testing import (OPERATOR_TOKEN, FakeArm, ServiceThread, make_config, scripted_pipeline,
                                        write_test_depth, write_test_video)
from dream2flow.v1 import task_pb2

ALLOWED = "127.0.0.2"
OTHER = "127.0.0.3"


class Host:
    """One HTTP server on ``ip``: serves ``files``; ``redirects`` path → Location (302); records
    every request (path, Host header)."""

    def __init__(self, ip: str, files: dict[str, bytes], redirects: dict[str, str] | None = None) -> None:
        self.files = files
        self.redirects = redirects or {}
        self.requests: list[tuple[str, str]] = []
        host = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                host.requests.append((self.path, self.headers.get("Host", "")))
                loc = host.redirects.get(self.path)
                if loc is not None:
                    self.send_response(302)
                    self.send_header("Location", loc)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = host.files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        class S(ThreadingHTTPServer):
            daemon_threads = True

        self.server = S((ip, 0), H)
        self.port = self.server.server_address[1]
        self.ip = ip
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.ip}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Host]]:
    video = write_test_video(tmp_path / "v.mp4").read_bytes()
    depth = write_test_depth(tmp_path / "d.npy").read_bytes()
    other = Host(OTHER, {"video.mp4": video})
    local = Host("127.0.0.1", {"video.mp4": video, "latest/meta-data": b"secret"})
    allowed = Host(ALLOWED, {"video.mp4": video, "depth.npy": depth}, {
        "/to-other": other.url("/video.mp4"),
        "/to-localhost": local.url("/video.mp4", host="localhost"),
        "/to-loopback-ip": local.url("/video.mp4"),
        "/to-metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "/to-self": "/video.mp4",
        "/loop": "/loop",
    })
    w = {"allowed": allowed, "other": other, "local": local}
    yield w
    for h in w.values():
        h.close()


def policy(**kw: Any) -> vs.FetchPolicy:
    base: dict[str, Any] = dict(connect_timeout_s=2.0, read_timeout_s=2.0, deadline_s=10.0, retries=0,
                                max_bytes=1_000_000, allowed_networks=(f"{ALLOWED}/32",))
    base.update(kw)
    return vs.FetchPolicy(**base)


def test_redirects_to_disallowed_targets_are_refused_before_any_request(world: dict[str, Host], tmp_path: Path) -> None:
    a = world["allowed"]
    # The allowed host itself, and a redirect that stays on it, work.
    ok = vs.download(a.url("/to-self"), tmp_path / "ok.mp4", policy(allowed_hosts=(ALLOWED,)))
    assert ok.path.read_bytes() == a.files["video.mp4"] and len(ok.hops) == 2
    cases = {
        # allowed host → a host not on the allow-list
        "/to-other": (policy(allowed_hosts=(ALLOWED,)), "not in [video_sources] url_allowed_hosts"),
        # no allow-list (any host), but 127.0.0.3 is a private (loopback) address nobody allowed
        "/to-other#any-host": (policy(), "127.0.0.3 is loopback"),
        # → localhost: resolves to 127.0.0.1, loopback
        "/to-localhost": (policy(), "localhost resolves to 127.0.0.1 is loopback"),
        "/to-loopback-ip": (policy(), "127.0.0.1 is loopback"),
        # → the cloud metadata address
        "/to-metadata": (policy(), "169.254.169.254 is link-local"),
    }
    for path, (pol, why) in cases.items():
        url = a.url(path.split("#")[0])
        with pytest.raises(InvalidInput) as ei:
            vs.download(url, tmp_path / "x.mp4", pol)
        assert why in ei.value.message, (path, ei.value.message)
        assert ei.value.reason == "URL_REFUSED", path
    assert world["other"].requests == [] and world["local"].requests == []  # nothing fetched from targets
    with pytest.raises(InvalidInput, match="redirects more than 5 times"):
        vs.download(a.url("/loop"), tmp_path / "l.mp4", policy())
    assert not list(tmp_path.glob("*.part"))


def test_loopback_link_local_private_need_an_explicit_opt_in(world: dict[str, Host], tmp_path: Path) -> None:
    local = world["local"]
    for url, why in ((local.url("/video.mp4"), "loopback"), ("http://169.254.169.254/latest/meta-data/", "link-local"),
                     ("http://10.1.2.3/v.mp4", "private"), ("http://[::1]:9/v.mp4", "loopback"),
                     ("http://[::ffff:127.0.0.1]:9/v.mp4", "loopback"), ("http://0.0.0.0:9/v.mp4", "unspecified")):
        with pytest.raises(InvalidInput, match=why):
            vs.check_url(url, policy())
    assert local.requests == []
    # Explicitly allowed: the loopback server may be fetched.
    f = vs.download(local.url("/video.mp4"), tmp_path / "v.mp4", policy(allowed_networks=("127.0.0.1/32",)))
    assert f.size_bytes == len(local.files["video.mp4"]) and len(local.requests) == 1


def test_resolved_address_is_checked_and_connected_to(world: dict[str, Host], tmp_path: Path) -> None:
    """DNS rebinding: the name answers an allowed address when checked and the robot's own
    address a moment later. The fetch resolves once, checks, and connects to what it checked."""
    a, local = world["allowed"], world["local"]
    answers = iter([[ALLOWED], ["127.0.0.1"], ["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    f = vs.download(f"http://videos.example:{a.port}/video.mp4", tmp_path / "r.mp4",
                    policy(allowed_hosts=("videos.example",), resolver=rebinding))
    assert f.path.read_bytes() == a.files["video.mp4"]
    assert calls == ["videos.example"]  # resolved once
    assert a.requests[-1] == ("/video.mp4", f"videos.example:{a.port}")  # Host header kept, checked IP used
    assert local.requests == []
    # A name that resolves only to refused addresses is refused, with the addresses named.
    with pytest.raises(InvalidInput, match=r"evil.example resolves to 127.0.0.1 is loopback"):
        vs.download(f"http://evil.example:{local.port}/video.mp4", tmp_path / "e.mp4",
                    policy(resolver=lambda h, p: ["127.0.0.1"]))
    # Mixed answers: only the allowed address is connected to.
    f = vs.download(f"http://mixed.example:{a.port}/video.mp4", tmp_path / "m.mp4",
                    policy(resolver=lambda h, p: ["127.0.0.1", ALLOWED]))
    assert f.size_bytes > 0 and local.requests == []


def test_credentials_are_not_forwarded_to_another_origin(world: dict[str, Host]) -> None:
    seen: list[str] = []
    pol = netguard.NetPolicy(allowed_networks=(f"{ALLOWED}/32", f"{OTHER}/32"))
    with netguard.open_url("GET", world["allowed"].url("/to-other"), pol, headers={"Authorization": "Bearer x"},
                           on_hop=lambda url, ip: seen.append(ip)) as r:
        assert r.status == 200 and len(r.hops) == 2
    assert seen == [ALLOWED, OTHER]


def test_service_refuses_a_redirect_to_localhost_and_says_why(world: dict[str, Host], tmp_path: Path) -> None:
    a = world["allowed"]
    cfg = make_config(tmp_path / "data", video_sources={"url_allowed_hosts": [ALLOWED],
                                                        "url_allowed_networks": [f"{ALLOWED}/32"], "retries": 0})
    box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm(), pipeline=scripted_pipeline(ticks=3)) as st, \
            C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        def run(url: str) -> task_pb2.Task:
            t = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
                instruction="x", box=box, video_url=url, video_depth_url=a.url("/depth.npy"))).task
            for _ in C.watch(conn, t.task_id):
                pass
            return C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=t.task_id)).task

        good = run(a.url("/video.mp4"))
        assert C.STATE_NAMES[good.state] == "SUCCEEDED", good.error_message
        for path, why in (("/to-localhost", "not in [video_sources] url_allowed_hosts"),
                          ("/to-metadata", "not in [video_sources] url_allowed_hosts")):
            bad = run(a.url(path))
            assert (C.STATE_NAMES[bad.state], bad.failed_stage, bad.error_code) == ("FAILED", "fetch",
                                                                                     "INVALID_ARGUMENT"), path
            assert why in bad.error_message, bad.error_message
        # A URL whose first hop is refused never becomes a task (INVALID_ARGUMENT at submit, with details).
        with pytest.raises(InvalidInput) as ei:
            C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
                instruction="x", box=box, video_url="http://169.254.169.254/latest/meta-data/",
                video_depth_url=a.url("/depth.npy")))
        d = ei.value.details  # type: ignore[attr-defined]
        assert d.reason == "URL_REFUSED" and d.field_violations[0][0] == "video_url"
    assert world["local"].requests == [] and world["other"].requests == []
