"""A small synchronous client for the operator service (used by ``dream2flow task``, the tests
and the benchmark): channel set-up with TLS / token, chunked uploads that skip files the server
already has and resume broken ones, resumable artifact downloads checked against their sha256,
and mapping of status codes back onto the error family (so the CLI exits with the right code);
the error's ``google.rpc.Status`` details ride along (``Dream2FlowError.details``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc

from dream2flow.errors import DataLoss, Dream2FlowError, ExecutionFailed, InvalidInput, NotReady, ResourceExhausted
from dream2flow.v1 import robot_pb2, robot_pb2_grpc, task_pb2, task_pb2_grpc

DEFAULT_SERVER = "127.0.0.1:50051"
CHUNK_BYTES = 1024 * 1024  # the server default max_chunk_bytes; 4x the throughput of 64 KiB chunks
CONTAINERS = {".mp4": "MP4", ".m4v": "MP4", ".avi": "AVI", ".mkv": "MKV", ".webm": "WEBM", ".npy": "NPY"}


class ServerError(Dream2FlowError):
    """A status from the server that is none of the mapped ones (INTERNAL, UNKNOWN…)."""


_CODE_TO_ERROR: dict[grpc.StatusCode, type[Dream2FlowError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.NOT_FOUND: InvalidInput,
    grpc.StatusCode.ALREADY_EXISTS: InvalidInput,
    grpc.StatusCode.OUT_OF_RANGE: InvalidInput,
    grpc.StatusCode.UNAUTHENTICATED: InvalidInput,
    grpc.StatusCode.PERMISSION_DENIED: InvalidInput,
    grpc.StatusCode.FAILED_PRECONDITION: NotReady,
    grpc.StatusCode.UNAVAILABLE: NotReady,
    grpc.StatusCode.DEADLINE_EXCEEDED: NotReady,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.ABORTED: ExecutionFailed,
}


def rpc_error(exc: grpc.RpcError) -> Dream2FlowError:
    """A gRPC error → the matching ``Dream2FlowError`` with a one-line message; its
    ``details`` attribute holds the parsed ``status.ErrorDetails`` (None if the server sent none)."""
    from dream2flow.service.status import details_of

    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = _CODE_TO_ERROR.get(code, ServerError)
    d = details_of(exc)
    err = cls(f"{code.name}: {details}", reason=d.reason if d else None, retry_after_s=d.retry_after_s if d else None)
    err.details = d  # type: ignore[attr-defined]
    return err


@dataclass
class Connection:
    channel: grpc.Channel
    token: str | None
    tasks: task_pb2_grpc.TaskServiceStub
    robot: robot_pb2_grpc.RobotServiceStub

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(server: str = DEFAULT_SERVER, *, token: str | None = None, insecure: bool = False,
            ca_file: str | Path | None = None, cert_file: str | Path | None = None,
            key_file: str | Path | None = None, server_name: str | None = None,
            max_message_bytes: int = 16 * 1024 * 1024) -> Connection:
    """A channel to ``server`` (TLS unless ``insecure``); ``server_name`` overrides the name the
    server certificate is checked against."""
    opts: list[tuple[str, Any]] = [("grpc.max_receive_message_length", max_message_bytes),
                                   ("grpc.max_send_message_length", max_message_bytes)]
    if insecure:
        ch = grpc.insecure_channel(server, options=opts)
    else:
        from dream2flow.service.auth import channel_credentials

        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        ch = grpc.secure_channel(server, channel_credentials(ca_file, cert_file, key_file), options=opts)
    return Connection(ch, token, task_pb2_grpc.TaskServiceStub(ch), robot_pb2_grpc.RobotServiceStub(ch))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def upload_requests(path: str | Path, purpose: str, *, container: str | None = None,
                    chunk_bytes: int = CHUNK_BYTES, on_progress: Callable[[int, int], None] | None = None,
                    sha256_hex: str | None = None, offset_bytes: int = 0) -> Iterator[task_pb2.UploadVideoRequest]:
    """The UploadVideo message stream for a file: metadata, then chunks from ``offset_bytes``."""
    p = Path(path)
    size = p.stat().st_size
    cont = container or CONTAINERS.get(p.suffix.lower())
    if cont is None:
        raise InvalidInput(f"{p}: unknown container for suffix '{p.suffix}' ({', '.join(CONTAINERS)})")
    meta = task_pb2.UploadMetadata(size_bytes=size, sha256_hex=sha256_hex or sha256_file(p),
                                   container=task_pb2.Container.Value(f"CONTAINER_{cont}"),
                                   purpose=task_pb2.UploadPurpose.Value(f"UPLOAD_PURPOSE_{purpose}"),
                                   filename=p.name[:255], offset_bytes=offset_bytes)
    yield task_pb2.UploadVideoRequest(metadata=meta)
    sent = offset_bytes
    with open(p, "rb") as f:
        f.seek(offset_bytes)
        for block in iter(lambda: f.read(chunk_bytes), b""):
            sent += len(block)
            yield task_pb2.UploadVideoRequest(chunk=block)
            if on_progress is not None:
                on_progress(sent, size)


def find_upload(conn: Connection, sha256_hex: str, purpose: str) -> task_pb2.Upload | None:
    """What the server holds of a file (COMPLETE or PARTIAL), or None."""
    try:
        return conn.tasks.GetUpload(task_pb2.GetUploadRequest(
            sha256_hex=sha256_hex, purpose=task_pb2.UploadPurpose.Value(f"UPLOAD_PURPOSE_{purpose}")),
            metadata=conn.metadata, timeout=30).upload
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise rpc_error(exc) from None


def _response_from_upload(u: task_pb2.Upload) -> task_pb2.UploadVideoResponse:
    return task_pb2.UploadVideoResponse(upload_id=u.upload_id, size_bytes=u.size_bytes, sha256_hex=u.sha256_hex,
                                        num_frames=u.num_frames, width_px=u.width_px, height_px=u.height_px,
                                        fps=u.fps, expires_unix_s=u.expires_unix_s, deduplicated=True)


_RESUMABLE = ("UPLOAD_INCOMPLETE", "UPLOAD_IDLE_TIMEOUT")


def upload_file(conn: Connection, path: str | Path, purpose: str = "VIDEO", *, resume: bool = True,
                attempts: int = 4, **kw: Any) -> task_pb2.UploadVideoResponse:
    """Upload a file, or not: a file the server already has (same sha256 and purpose) is named
    at once (``deduplicated``), a partial one is continued from the server's offset, and a stream
    that breaks is resumed (at most ``attempts`` streams) when the error's details say it can be."""
    p = Path(path)
    sha = kw.pop("sha256_hex", None) or sha256_file(p)
    size = p.stat().st_size
    last: Dream2FlowError | None = None
    for _ in range(max(1, attempts)):
        offset = 0
        if resume:
            have = find_upload(conn, sha, purpose)
            if have is not None and have.state == task_pb2.UPLOAD_STATE_COMPLETE:
                return _response_from_upload(have)
            if have is not None and have.size_bytes == size:
                offset = int(have.received_bytes)
        try:
            return conn.tasks.UploadVideo(upload_requests(p, purpose, sha256_hex=sha, offset_bytes=offset, **kw),
                                          metadata=conn.metadata)
        except grpc.RpcError as exc:
            last = rpc_error(exc)
            d = getattr(last, "details", None)
            broken = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            if not resume or not (broken or (d is not None and (d.reason in _RESUMABLE or
                                                                 d.reason == "UPLOAD_OFFSET_MISMATCH"))):
                raise last from None
            if d is not None and d.retry_after_s:
                import time

                time.sleep(min(d.retry_after_s, 5.0))
    assert last is not None
    raise last


def call(conn: Connection, stub_method: Callable[..., Any], request: Any, timeout_s: float | None = 30.0) -> Any:
    """A unary call with the token; errors come back as ``Dream2FlowError``."""
    try:
        return stub_method(request, metadata=conn.metadata, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise rpc_error(exc) from None


def watch(conn: Connection, task_id: str, after_sequence: int = 0, *, reconnects: int = 5) -> Iterator[task_pb2.TaskEvent]:
    """Every event of a task until it ends, resuming (after the last sequence seen) when the
    stream breaks with UNAVAILABLE, at most ``reconnects`` times in a row."""
    after = after_sequence
    tries = 0
    while True:
        try:
            for resp in conn.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=task_id, after_sequence=after),
                                             metadata=conn.metadata):
                tries = 0
                if not resp.HasField("event"):  # a heartbeat: the stream is alive
                    continue
                after = resp.event.sequence
                yield resp.event
            return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or tries >= reconnects:
                raise rpc_error(exc) from None
            tries += 1
            import time

            time.sleep(min(5.0, 0.5 * 2 ** tries))


@dataclass
class Fetched:
    name: str
    path: Path
    size_bytes: int
    sha256_hex: str
    received_bytes: int  # bytes this call transferred (less than size_bytes when it resumed)
    resumed_from: int


def safe_file_name(name: str) -> str:
    """An artifact's file name from the server, usable under the output folder (no absolute
    path, no ``..``)."""
    norm = name.replace("\\", "/")
    parts = [x for x in norm.split("/") if x not in ("", ".")]
    if not parts or any(x == ".." for x in parts) or norm.startswith("/") or ":" in parts[0]:
        raise InvalidInput(f"the server named an artifact file {name[:100]!r}, which is not a plain relative path")
    return "/".join(parts)


def fetch_artifact(conn: Connection, task_id: str, art: task_pb2.Artifact, out_dir: str | Path, *,
                   chunk_bytes: int = 0, on_progress: Callable[[int, int], None] | None = None) -> Fetched:
    """Download one artifact into ``out_dir/<file_name>``, resuming ``<file_name>.part`` (kept
    when a transfer breaks) at its size; every chunk and the whole file are checked against the
    server's sha256 (DataLoss on a mismatch; the partial file is then removed)."""
    dest = Path(out_dir) / safe_file_name(art.file_name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and dest.stat().st_size == art.size_bytes and sha256_file(dest) == art.sha256_hex:
        return Fetched(art.name, dest, art.size_bytes, art.sha256_hex, 0, art.size_bytes)
    part = dest.with_name(dest.name + ".part")
    stamp = dest.with_name(dest.name + ".part.sha256")  # the file a .part belongs to
    offset = 0
    if part.is_file() and stamp.is_file() and stamp.read_text().strip() == art.sha256_hex:
        offset = min(part.stat().st_size, art.size_bytes)
    else:
        part.unlink(missing_ok=True)
    stamp.write_text(art.sha256_hex + "\n")
    received = 0
    with open(part, "r+b" if part.exists() else "wb") as f:
        f.truncate(offset)
        f.seek(offset)
        try:
            for resp in conn.tasks.GetArtifact(task_pb2.GetArtifactRequest(
                    task_id=task_id, name=art.name, offset_bytes=offset, chunk_bytes=chunk_bytes),
                    metadata=conn.metadata):
                if resp.HasField("artifact"):
                    if resp.artifact.sha256_hex != art.sha256_hex:
                        raise DataLoss(f"artifact {art.name} changed on the server while fetching it")
                    continue
                c = resp.chunk
                if c.offset_bytes != offset + received:
                    raise DataLoss(f"artifact {art.name}: chunk at {c.offset_bytes}, expected {offset + received}")
                if hashlib.sha256(c.data).hexdigest() != c.sha256_hex:
                    raise DataLoss(f"artifact {art.name}: a chunk at {c.offset_bytes} does not match its sha256")
                f.write(c.data)
                received += len(c.data)
                if on_progress is not None:  # after every chunk (callers throttle their output)
                    on_progress(offset + received, art.size_bytes)
        except grpc.RpcError as exc:
            raise rpc_error(exc) from None
        f.flush()
        os.fsync(f.fileno())
    if part.stat().st_size != art.size_bytes or sha256_file(part) != art.sha256_hex:
        part.unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
        raise DataLoss(f"artifact {art.name}: the downloaded file does not match the server's sha256; fetch again")
    os.replace(part, dest)
    stamp.unlink(missing_ok=True)
    return Fetched(art.name, dest, art.size_bytes, art.sha256_hex, received, offset)


def list_artifacts(conn: Connection, task_id: str) -> list[task_pb2.Artifact]:
    return list(call(conn, conn.tasks.ListArtifacts, task_pb2.ListArtifactsRequest(task_id=task_id)).artifacts)


def token_from_env_or_file(token: str | None, token_file: str | None) -> str | None:
    if token:
        return token
    if token_file:
        t = Path(token_file).read_text().strip()
        if not t:
            raise InvalidInput(f"token file {token_file} is empty")
        return t
    return os.environ.get("D2F_TOKEN") or None


STATE_NAMES = {v: k.replace("TASK_STATE_", "") for k, v in task_pb2.TaskState.items()}
KIND_NAMES = {v: k.replace("EVENT_KIND_", "") for k, v in task_pb2.EventKind.items()}
MODE_NAMES = {v: k.replace("MOTION_MODE_", "") for k, v in robot_pb2.MotionMode.items()}
