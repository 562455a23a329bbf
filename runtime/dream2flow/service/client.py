"""A small synchronous client for the operator service (used by ``dream2flow task``, the tests
and the benchmark): channel set-up with TLS / token, chunked uploads with a checksum, and
mapping of status codes back onto the error family (so the CLI exits with the right code).
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
    """A gRPC error → the matching ``Dream2FlowError`` with a one-line message."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = _CODE_TO_ERROR.get(code, ServerError)
    return cls(f"{code.name}: {details}")


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
                    sha256_hex: str | None = None) -> Iterator[task_pb2.UploadVideoRequest]:
    """The UploadVideo message stream for a file: metadata, then chunks."""
    p = Path(path)
    size = p.stat().st_size
    cont = container or CONTAINERS.get(p.suffix.lower())
    if cont is None:
        raise InvalidInput(f"{p}: unknown container for suffix '{p.suffix}' ({', '.join(CONTAINERS)})")
    meta = task_pb2.UploadMetadata(size_bytes=size, sha256_hex=sha256_hex or sha256_file(p),
                                   container=task_pb2.Container.Value(f"CONTAINER_{cont}"),
                                   purpose=task_pb2.UploadPurpose.Value(f"UPLOAD_PURPOSE_{purpose}"),
                                   filename=p.name[:255])
    yield task_pb2.UploadVideoRequest(metadata=meta)
    sent = 0
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            sent += len(block)
            yield task_pb2.UploadVideoRequest(chunk=block)
            if on_progress is not None:
                on_progress(sent, size)


def upload_file(conn: Connection, path: str | Path, purpose: str = "VIDEO", **kw: Any) -> task_pb2.UploadVideoResponse:
    try:
        return conn.tasks.UploadVideo(upload_requests(path, purpose, **kw), metadata=conn.metadata)
    except grpc.RpcError as exc:
        raise rpc_error(exc) from None


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
                after = resp.event.sequence
                yield resp.event
            return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or tries >= reconnects:
                raise rpc_error(exc) from None
            tries += 1
            import time

            time.sleep(min(5.0, 0.5 * 2 ** tries))


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
