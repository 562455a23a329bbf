"""One exception family for the whole runtime, mapped once to CLI exit codes and gRPC codes.

Why one family: the CLI, the gRPC service and the pipeline all need to turn a failure
into a single clear line for an operator, and they must agree on what each failure means.
"""

from __future__ import annotations


class Dream2FlowError(Exception):
    """Base of every expected failure. ``exit_code`` for the CLI, ``grpc_code`` (a
    ``grpc.StatusCode`` name) for the service; ``stage`` names where it happened.

    The service turns the optional machine-readable facts into ``google.rpc.Status`` details
    (``dream2flow.service.status``): ``reason`` a stable UPPER_SNAKE code (ErrorInfo; default:
    the status code's name), ``field`` the request field at fault (BadRequest), ``retry_after_s``
    how long a client should wait before retrying (RetryInfo: present only when a retry can
    help), ``quota`` (subject, description) of a cap that was hit (QuotaFailure), ``metadata``
    extra ErrorInfo strings (e.g. ``received_bytes`` of a partial upload)."""

    exit_code: int = 1
    grpc_code: str = "INTERNAL"

    def __init__(self, message: str, *, stage: str | None = None, reason: str | None = None,
                 field: str | None = None, retry_after_s: float | None = None,
                 quota: tuple[str, str] | None = None, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.reason = reason
        self.field = field
        self.retry_after_s = retry_after_s
        self.quota = quota
        self.metadata = dict(metadata or {})

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidInput(Dream2FlowError):
    """The caller gave something unusable (file, flag, config, request field)."""

    exit_code = 2
    grpc_code = "INVALID_ARGUMENT"


class NotReady(Dream2FlowError):
    """A precondition does not hold (robot e-stopped, model file missing, not connected)."""

    exit_code = 3
    grpc_code = "FAILED_PRECONDITION"


class ModelMismatch(NotReady):
    """A model file does not match the manifest (sha256 or I/O signature)."""


class PerceptionFailed(Dream2FlowError):
    """Perception could not produce a usable result (no object, tracking lost everything)."""

    exit_code = 4
    grpc_code = "ABORTED"


class AlignmentFailed(PerceptionFailed):
    """Depth scale/shift fit was degenerate or its residual too high."""


class PlanningFailed(Dream2FlowError):
    """No acceptable plan: no grasp, solver failure, or a limit broken after the solve."""

    exit_code = 5
    grpc_code = "ABORTED"


class Unreachable(PlanningFailed):
    """The flow asks the robot to go where it cannot."""


class SafetyViolation(Dream2FlowError):
    """A command would break a safety limit; motion was stopped (never clipped)."""

    exit_code = 6
    grpc_code = "ABORTED"


class ExecutionFailed(Dream2FlowError):
    """The control loop stopped: backend error, stale state, e-stop."""

    exit_code = 7
    grpc_code = "ABORTED"


class ResourceExhausted(Dream2FlowError):
    """A bounded resource is full (queue, upload cap)."""

    exit_code = 8
    grpc_code = "RESOURCE_EXHAUSTED"


class DataLoss(Dream2FlowError):
    """Data arrived corrupted (checksum mismatch, truncated stream)."""

    exit_code = 9
    grpc_code = "DATA_LOSS"


EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "internal error": 1,
    "invalid input": InvalidInput.exit_code,
    "not ready": NotReady.exit_code,
    "perception failed": PerceptionFailed.exit_code,
    "planning failed": PlanningFailed.exit_code,
    "safety violation": SafetyViolation.exit_code,
    "execution failed": ExecutionFailed.exit_code,
    "resource exhausted": ResourceExhausted.exit_code,
    "data loss": DataLoss.exit_code,
    "task failed (demo/eval: ran, but the task's success check failed)": 10,
}
