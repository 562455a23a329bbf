"""Videos from elsewhere: download a URL, or ask a video-generation endpoint (HTTP).

Why here and bounded: the robot computer fetches what an operator names, so every fetch has a
connect/read timeout, an overall deadline, a byte cap enforced while streaming (a lying or
missing Content-Length does not matter), a bounded number of retries with exponential backoff
(only for connection errors, 429 and 5xx: a 4xx is the caller's mistake), and a cancel flag;
every hop (redirects included) goes through ``netguard`` (allow-list, no loopback / link-local
/ private addresses unless allowed, connection to the checked address).
Files are written to ``<dest>.part`` and renamed only when complete.

Generator endpoint protocol (``[video_sources] generator_url``, relative URLs resolve against it)::

    POST {generator_url}/jobs   multipart: image=i0.png (image/png); fields instruction,
                                object_prompt, num_frames, seed
        → 200/201/202 JSON {"job_id": "..."}
    GET  {generator_url}/jobs/{job_id}
        → JSON {"status": "queued"|"running"|"succeeded"|"failed",
                "video_url": "...",            (when succeeded)
                "video_depth_url": "...",      (optional: relative depth .npy [T,H,W])
                "error": "..."}                (when failed)
    GET  video_url / video_depth_url → the bytes

A bearer token for the endpoint is read from the env var named by ``generator_token_env``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urljoin

from dream2flow.errors import DataLoss, Dream2FlowError, ExecutionFailed, InvalidInput, NotReady, ResourceExhausted
from dream2flow.log import get_logger
from dream2flow.service.netguard import ConnectFailed, NetPolicy, check_static, open_url, origin

log = get_logger("service.video_sources")


class SourceUnavailable(Dream2FlowError):
    """The remote side did not answer usefully within the retries/deadline."""

    exit_code = 3
    grpc_code = "UNAVAILABLE"

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("reason", "SOURCE_UNAVAILABLE")
        super().__init__(message, **kw)


@dataclass
class FetchPolicy:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    deadline_s: float = 300.0
    retries: int = 3
    backoff_s: float = 0.5
    max_bytes: int = 256 * 1024 * 1024
    allowed_hosts: tuple[str, ...] = ()  # empty → any host; checked on every redirect hop
    chunk_bytes: int = 256 * 1024
    allowed_networks: tuple[str, ...] = ()  # CIDRs of non-public addresses that may be fetched
    max_redirects: int = 5
    trusted_origins: tuple[str, ...] = ()  # the configured generator's origin (exempt from the checks)
    resolver: Any = None  # tests: (host, port) → [ip]; default getaddrinfo

    def net(self) -> NetPolicy:
        return NetPolicy(allowed_hosts=tuple(self.allowed_hosts), allowed_networks=tuple(self.allowed_networks),
                         max_redirects=self.max_redirects, trusted_origins=tuple(self.trusted_origins),
                         resolver=self.resolver)


@dataclass
class Fetched:
    path: Path
    size_bytes: int
    sha256_hex: str
    attempts: int
    seconds: float
    content_type: str = ""
    hops: tuple[str, ...] = ()


def check_url(url: str, policy: FetchPolicy, max_chars: int = 2048) -> str:
    """An http(s) URL with a host, an allowed one, and not a refused literal address → the URL;
    else InvalidInput (reason URL_REFUSED). Resolved addresses and redirects are checked when
    the fetch happens (``netguard.open_url``)."""
    return check_static(url, policy.net(), max_chars)


def _retryable_status(code: int) -> bool:
    return code == 429 or code >= 500


def _sleep(seconds: float, cancel: threading.Event | None) -> None:
    if cancel is not None:
        if cancel.wait(seconds):
            raise ExecutionFailed("cancelled while fetching the video")
    else:
        time.sleep(seconds)


def download(url: str, dest: str | Path, policy: FetchPolicy, *, cancel: threading.Event | None = None,
             headers: dict[str, str] | None = None,
             on_progress: Callable[[int, int | None], None] | None = None) -> Fetched:
    """GET ``url`` into ``dest`` (atomically) → ``Fetched``. InvalidInput for 4xx, a bad URL or
    a refused redirect hop / address (reason URL_REFUSED: nothing is fetched from it),
    ResourceExhausted over ``max_bytes``, SourceUnavailable when retries/deadline run out,
    ExecutionFailed when cancelled."""
    net = policy.net()
    check_static(url, net)
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    t0 = time.monotonic()
    attempt = 0
    last_err = ""
    try:
        while True:
            attempt += 1
            if cancel is not None and cancel.is_set():
                raise ExecutionFailed("cancelled while fetching the video")
            remaining = policy.deadline_s - (time.monotonic() - t0)
            if remaining <= 0:
                raise SourceUnavailable(f"download of {url[:200]} ran past its {policy.deadline_s:.0f} s deadline"
                                        f" ({last_err or 'no answer'})")
            try:
                with open_url("GET", url, net, headers=headers, connect_timeout_s=policy.connect_timeout_s,
                              read_timeout_s=min(policy.read_timeout_s, remaining)) as r:
                    if r.status >= 400:
                        if _retryable_status(r.status):
                            raise _Retry(f"HTTP {r.status}")
                        raise InvalidInput(f"download of {url[:200]} failed: HTTP {r.status} {r.reason}")
                    if r.status != 200:
                        raise InvalidInput(f"download of {url[:200]} answered HTTP {r.status}, not 200")
                    declared = r.headers.get("Content-Length")
                    declared_n = int(declared) if declared and declared.isdigit() else None
                    if declared_n is not None and declared_n > policy.max_bytes:
                        raise ResourceExhausted(f"{url[:200]} is {declared_n} bytes, over the cap of {policy.max_bytes}",
                                                reason="UPLOAD_TOO_LARGE",
                                                quota=("fetched file size", f"at most {policy.max_bytes} bytes"))
                    h = hashlib.sha256()
                    n = 0
                    with open(part, "wb") as f:
                        for chunk in r.stream(policy.chunk_bytes):
                            if cancel is not None and cancel.is_set():
                                raise ExecutionFailed("cancelled while fetching the video")
                            if time.monotonic() - t0 > policy.deadline_s:
                                raise SourceUnavailable(f"download of {url[:200]} ran past its "
                                                        f"{policy.deadline_s:.0f} s deadline")
                            if not chunk:
                                continue
                            n += len(chunk)
                            if n > policy.max_bytes:
                                raise ResourceExhausted(f"{url[:200]} sent more than the cap of {policy.max_bytes} bytes",
                                                        reason="UPLOAD_TOO_LARGE",
                                                        quota=("fetched file size", f"at most {policy.max_bytes} bytes"))
                            f.write(chunk)
                            h.update(chunk)
                            if on_progress is not None:
                                on_progress(n, declared_n)
                        f.flush()
                        os.fsync(f.fileno())
                    if declared_n is not None and n != declared_n:
                        raise _Retry(f"got {n} of {declared_n} bytes")
                    os.replace(part, dest)
                    return Fetched(dest, n, h.hexdigest(), attempt, time.monotonic() - t0,
                                   r.headers.get("Content-Type", ""), tuple(r.hops))
            except _Retry as exc:
                last_err = str(exc)
            except ConnectFailed as exc:
                last_err = str(exc)  # a broken or stalled connection: worth another try
            if attempt > policy.retries:
                raise SourceUnavailable(f"download of {url[:200]} failed after {attempt} attempts: {last_err}")
            wait = policy.backoff_s * (2 ** (attempt - 1))
            log.info("download %s: attempt %d failed (%s); retrying in %.2f s", url[:200], attempt, last_err, wait)
            _sleep(min(wait, max(0.0, policy.deadline_s - (time.monotonic() - t0))), cancel)
    finally:
        part.unlink(missing_ok=True)


class _Retry(Exception):
    pass


@dataclass
class GeneratorConfig:
    url: str
    token: str | None = None
    poll_interval_s: float = 2.0
    timeout_s: float = 900.0


@dataclass
class GeneratedFiles:
    video: Fetched
    video_depth: Fetched | None
    job_id: str
    seconds: float


def _request_json(method: str, url: str, policy: FetchPolicy, cancel: threading.Event | None,
                  deadline: float, *, headers: dict[str, str], body: bytes | None = None) -> dict[str, Any]:
    """One JSON request with the retry policy (connection errors, 429, 5xx); every redirect hop
    checked like a download."""
    attempt = 0
    last_err = ""
    while True:
        attempt += 1
        if cancel is not None and cancel.is_set():
            raise ExecutionFailed("cancelled while waiting for the video generator")
        if time.monotonic() > deadline:
            raise SourceUnavailable(f"video generator did not finish in time ({last_err or 'deadline'})")
        try:
            with open_url(method, url, policy.net(), headers=headers, body=body,
                          connect_timeout_s=policy.connect_timeout_s, read_timeout_s=policy.read_timeout_s) as r:
                if r.status < 400:
                    content = r.read(1024 * 1024)
                    try:
                        parsed = json.loads(content)
                    except ValueError:
                        raise InvalidInput(f"video generator answered {method} {url[:200]} with non-JSON") from None
                    if not isinstance(parsed, dict):
                        raise InvalidInput("video generator answered with JSON that is not an object")
                    return parsed
                if not _retryable_status(r.status):
                    raise InvalidInput(f"video generator refused {method} {url[:200]}: HTTP {r.status} "
                                       f"{r.read(200_000)[:200]!r}")
                last_err = f"HTTP {r.status}"
        except ConnectFailed as exc:
            last_err = str(exc)
        if attempt > policy.retries:
            raise SourceUnavailable(f"video generator unreachable after {attempt} attempts: {last_err}")
        _sleep(min(policy.backoff_s * (2 ** (attempt - 1)), max(0.0, deadline - time.monotonic())), cancel)


def generate_video(gen: GeneratorConfig, *, image_png: bytes, instruction: str, object_prompt: str,
                   num_frames: int, seed: int, dest_dir: str | Path, policy: FetchPolicy,
                   depth_policy: FetchPolicy | None = None, cancel: threading.Event | None = None,
                   on_status: Callable[[str, float], None] | None = None) -> GeneratedFiles:
    """POST I0 + instruction, poll until done (bounded by ``gen.timeout_s``), download the video
    (and its relative depth when the generator gives one) into ``dest_dir``. The generator's own
    origin is trusted configuration; result URLs elsewhere (a CDN) pass the fetch policy."""
    import urllib3

    if not gen.url:
        raise NotReady("no video generator is configured ([video_sources] generator_url)",
                       reason="NOT_CONFIGURED")
    base = gen.url.rstrip("/") + "/"
    headers = {"Authorization": f"Bearer {gen.token}"} if gen.token else {}
    t0 = time.monotonic()
    deadline = t0 + gen.timeout_s
    dest_dir = Path(dest_dir)
    trusted = (*policy.trusted_origins, origin(base))
    # the allow-list names where operators' URLs may point; the configured generator and its
    # result URLs are the server's own configuration (still: address checks off its origin)
    pol = FetchPolicy(**{**policy.__dict__, "allowed_hosts": (), "trusted_origins": trusted})
    body, ctype = urllib3.encode_multipart_formdata({
        "image": ("i0.png", image_png, "image/png"), "instruction": instruction, "object_prompt": object_prompt,
        "num_frames": str(int(num_frames)), "seed": str(int(seed))})
    started = _request_json("POST", urljoin(base, "jobs"), pol, cancel, deadline,
                            headers={**headers, "Content-Type": ctype}, body=body)
    job_id = started.get("job_id")
    if not isinstance(job_id, str) or not job_id or len(job_id) > 200 or "/" in job_id:
        raise InvalidInput(f"video generator answered without a usable job_id: {str(started)[:200]}")
    status_url = urljoin(base, f"jobs/{job_id}")
    while True:
        st = _request_json("GET", status_url, pol, cancel, deadline, headers=headers)
        status = st.get("status")
        if on_status is not None:
            on_status(str(status), time.monotonic() - t0)
        if status == "succeeded":
            break
        if status == "failed":
            raise SourceUnavailable(f"video generator failed job {job_id}: {str(st.get('error', ''))[:300]}")
        if status not in ("queued", "running"):
            raise InvalidInput(f"video generator sent unknown status {str(status)[:50]!r}")
        _sleep(min(gen.poll_interval_s, max(0.0, deadline - time.monotonic())), cancel)
        if time.monotonic() > deadline:
            raise SourceUnavailable(f"video generator did not finish job {job_id} in {gen.timeout_s:.0f} s")
    video_url = st.get("video_url")
    if not isinstance(video_url, str) or not video_url:
        raise InvalidInput("video generator finished without a video_url")
    remaining = max(1.0, deadline - time.monotonic())
    vpol = FetchPolicy(**{**pol.__dict__, "deadline_s": min(policy.deadline_s, remaining)})
    video = download(urljoin(base, video_url), dest_dir / "video.mp4", vpol, cancel=cancel, headers=headers)
    depth = None
    depth_url = st.get("video_depth_url")
    if isinstance(depth_url, str) and depth_url:
        dpol = depth_policy or policy
        dpol = FetchPolicy(**{**dpol.__dict__, "deadline_s": min(dpol.deadline_s, remaining), "allowed_hosts": (),
                              "trusted_origins": trusted})
        depth = download(urljoin(base, depth_url), dest_dir / "video_depth.npy", dpol, cancel=cancel,
                         headers=headers)
    return GeneratedFiles(video, depth, job_id, time.monotonic() - t0)


def check_sha256(path: str | Path, expected_hex: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected_hex.lower():
        raise DataLoss(f"sha256 of {Path(path).name} is {h.hexdigest()}, expected {expected_hex}")
