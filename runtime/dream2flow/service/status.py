"""Structured errors: every failure the service answers carries ``google.rpc.Status`` details
(the ``grpc-status-details-bin`` trailer, read by any gRPC client with the googleapis protos).

Why: a status code alone cannot say whether a retry helps (RESOURCE_EXHAUSTED is a full queue,
a size cap or a stream limit alike). Every error therefore has

- ``ErrorInfo``: ``reason`` (a stable UPPER_SNAKE code from ``REASONS``), ``domain``
  ``dream2flow.v1``, ``metadata`` (strings, e.g. ``received_bytes`` of a partial upload);
- ``RetryInfo`` only where waiting and retrying the same call can succeed (back-pressure);
- ``BadRequest`` field violations when a request field is at fault;
- ``QuotaFailure`` when a cap or a limit was hit (subject + description).

The reason codes are documented in ``protos/dream2flow/v1/task.proto``; a client decides from
the details alone (``parse`` here; ``tests/node/`` does the same from Node.js).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from dream2flow.errors import Dream2FlowError

DOMAIN = "dream2flow.v1"
DETAILS_KEY = "grpc-status-details-bin"

# reason → (status code, one line). The single list of reason codes (task.proto documents them).
REASONS: dict[str, tuple[str, str]] = {
    "TOKEN_MISSING": ("UNAUTHENTICATED", "no bearer token in the call's metadata"),
    "TOKEN_UNKNOWN": ("UNAUTHENTICATED", "the bearer token is not known to this server"),
    "ROLE_NOT_ALLOWED": ("PERMISSION_DENIED", "the caller's role may not call this RPC"),
    "INVALID_FIELD": ("INVALID_ARGUMENT", "a request field breaks a documented rule (BadRequest says which)"),
    "MALFORMED_REQUEST": ("INVALID_ARGUMENT", "the request bytes are not a valid message"),
    "INVALID_CONTENT": ("INVALID_ARGUMENT", "an uploaded or fetched file is not what it claims to be"),
    "URL_REFUSED": ("INVALID_ARGUMENT", "a URL or one of its redirects is refused by the fetch policy"),
    "TASK_NOT_FOUND": ("NOT_FOUND", "unknown task id"),
    "UPLOAD_NOT_FOUND": ("NOT_FOUND", "unknown upload id or sha256 (never uploaded, deleted or expired)"),
    "ARTIFACT_NOT_FOUND": ("NOT_FOUND", "the task has no artifact of that name"),
    "IDEMPOTENCY_KEY_REUSED": ("ALREADY_EXISTS", "the idempotency key was used for a different request"),
    "QUEUE_FULL": ("RESOURCE_EXHAUSTED", "the task queue is full (RetryInfo: retry later)"),
    "UPLOAD_TOO_LARGE": ("RESOURCE_EXHAUSTED", "the file is over the size cap (QuotaFailure; retrying cannot help)"),
    "UPLOAD_STORE_FULL": ("RESOURCE_EXHAUSTED", "upload storage is full (RetryInfo + QuotaFailure)"),
    "TOO_MANY_UPLOADS": ("RESOURCE_EXHAUSTED", "too many uploads in progress (RetryInfo + QuotaFailure)"),
    "STREAM_LIMIT": ("RESOURCE_EXHAUSTED", "a stream limit (per token, per peer, unauthenticated or watch "
                                           "streams) is reached (RetryInfo + QuotaFailure)"),
    "RPC_LIMIT": ("RESOURCE_EXHAUSTED", "too many calls in progress (RetryInfo + QuotaFailure)"),
    "ESTOP_ACTIVE": ("FAILED_PRECONDITION", "the emergency stop is active: Reset first"),
    "NOT_CONFIGURED": ("FAILED_PRECONDITION", "the server lacks what the request needs (generator, model)"),
    "TASK_FINISHED": ("FAILED_PRECONDITION", "the task already finished"),
    "TASK_NOT_FINISHED": ("FAILED_PRECONDITION", "the task is still queued or running (artifacts come at the end)"),
    "UPLOAD_OFFSET_MISMATCH": ("FAILED_PRECONDITION", "a resumed upload's offset differs from the received bytes "
                                                      "(metadata received_bytes)"),
    "STILL_STOPPING": ("FAILED_PRECONDITION", "a stopped task is still winding down (RetryInfo)"),
    "UPLOAD_IN_PROGRESS": ("ABORTED", "another stream is uploading the same file (RetryInfo)"),
    "UPLOAD_IDLE_TIMEOUT": ("ABORTED", "the upload stream sent nothing for too long; resume it (metadata "
                                       "received_bytes, RetryInfo)"),
    "UPLOAD_INCOMPLETE": ("DATA_LOSS", "the upload stream ended early; resume it (metadata received_bytes)"),
    "CHECKSUM_MISMATCH": ("DATA_LOSS", "the received bytes do not hash to the declared sha256"),
    "CAMERA_BUSY": ("UNAVAILABLE", "the camera did not answer in time (RetryInfo)"),
    "SOURCE_UNAVAILABLE": ("UNAVAILABLE", "a remote video source did not answer (RetryInfo)"),
    "INTERNAL": ("INTERNAL", "a bug: the server logged it and keeps serving"),
}
# A reason for errors raised without one: the status code's own name (still stable).
_DEFAULT_RETRY_S = {"QUEUE_FULL": 2.0, "UPLOAD_STORE_FULL": 10.0, "TOO_MANY_UPLOADS": 1.0, "STREAM_LIMIT": 2.0,
                    "RPC_LIMIT": 0.5, "STILL_STOPPING": 0.2, "UPLOAD_IN_PROGRESS": 1.0,
                    "UPLOAD_IDLE_TIMEOUT": 0.0, "CAMERA_BUSY": 1.0, "SOURCE_UNAVAILABLE": 5.0}


def _pack(msg: Any) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)
    return a


def build(code: str, message: str, *, reason: str | None = None, field: str | None = None,
          retry_after_s: float | None = None, quota: tuple[str, str] | None = None,
          metadata: dict[str, str] | None = None) -> status_pb2.Status:
    """A ``google.rpc.Status`` with ErrorInfo (+ BadRequest / RetryInfo / QuotaFailure as given)."""
    reason = reason or code
    if retry_after_s is None:
        retry_after_s = _DEFAULT_RETRY_S.get(reason)
    st = status_pb2.Status(code=code_pb2.Code.Value(code) if code in code_pb2.Code.keys() else code_pb2.INTERNAL,
                           message=message)
    st.details.append(_pack(error_details_pb2.ErrorInfo(
        reason=reason, domain=DOMAIN, metadata={k: str(v) for k, v in (metadata or {}).items()})))
    if field:
        st.details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=message)])))
    if retry_after_s is not None:
        d = duration_pb2.Duration()
        d.FromNanoseconds(int(max(0.0, retry_after_s) * 1e9))
        st.details.append(_pack(error_details_pb2.RetryInfo(retry_delay=d)))
    if quota:
        st.details.append(_pack(error_details_pb2.QuotaFailure(violations=[
            error_details_pb2.QuotaFailure.Violation(subject=quota[0], description=quota[1])])))
    return st


def from_error(exc: Dream2FlowError) -> status_pb2.Status:
    return build(exc.grpc_code, exc.message, reason=getattr(exc, "reason", None), field=getattr(exc, "field", None),
                 retry_after_s=getattr(exc, "retry_after_s", None), quota=getattr(exc, "quota", None),
                 metadata=getattr(exc, "metadata", None))


def trailers(st: status_pb2.Status) -> tuple[tuple[str, bytes], ...]:
    return ((DETAILS_KEY, st.SerializeToString()),)


async def abort(context: grpc.aio.ServicerContext, st: status_pb2.Status) -> None:
    """End the call with ``st`` (code, message and the details trailer). Raises AbortError."""
    code = grpc.StatusCode[code_pb2.Code.Name(st.code)] if st.code in code_pb2.Code.values() \
        else grpc.StatusCode.INTERNAL
    await context.abort(code, st.message, trailers(st))


# -- client side -------------------------------------------------------------------------------
@dataclass
class ErrorDetails:
    """What a client reads from an error's details (no parsing of messages)."""

    code: str = ""
    message: str = ""
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_s: float | None = None  # None: retrying the same call will not help
    field_violations: list[tuple[str, str]] = field(default_factory=list)
    quota_violations: list[tuple[str, str]] = field(default_factory=list)

    @property
    def retryable(self) -> bool:
        return self.retry_after_s is not None


def parse(trailing_metadata: Any) -> ErrorDetails | None:
    """``grpc-status-details-bin`` of a finished call's trailing metadata → ``ErrorDetails``
    (None when the server sent no details)."""
    raw = None
    for k, v in trailing_metadata or ():
        if k == DETAILS_KEY:
            raw = v
    if raw is None:
        return None
    st = status_pb2.Status.FromString(raw)
    out = ErrorDetails(code=code_pb2.Code.Name(st.code) if st.code in code_pb2.Code.values() else str(st.code),
                       message=st.message)
    for a in st.details:
        if a.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            a.Unpack(info)
            out.reason, out.domain, out.metadata = info.reason, info.domain, dict(info.metadata)
        elif a.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            ri = error_details_pb2.RetryInfo()
            a.Unpack(ri)
            out.retry_after_s = ri.retry_delay.ToNanoseconds() / 1e9
        elif a.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            a.Unpack(br)
            out.field_violations = [(v.field, v.description) for v in br.field_violations]
        elif a.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            qf = error_details_pb2.QuotaFailure()
            a.Unpack(qf)
            out.quota_violations = [(v.subject, v.description) for v in qf.violations]
    return out


def details_of(exc: grpc.RpcError) -> ErrorDetails | None:
    """The details of a failed call (``grpc.RpcError`` from a sync stub)."""
    try:
        md = exc.trailing_metadata()  # type: ignore[attr-defined]
    except Exception:
        return None
    return parse(md)
