"""Who may call what: bearer tokens with roles, checked once by a server interceptor that also
writes the append-only audit log; TLS (optionally mutual) server credentials.

Why an interceptor: every RPC, including ones added later, passes the same check before any
handler runs, and every call (allowed or not) lands in the audit log with its outcome.

Tokens file (TOML; keep it ``chmod 600``)::

    [[tokens]]
    name = "alice"          # recorded as submitted_by and in the audit log
    role = "operator"       # operator: may move the robot; viewer: read only
    sha256 = "<hex sha256 of the token>"   # printf %s "$TOKEN" | sha256sum
    # token = "..."         # the plain token instead of sha256 (discouraged)

Clients send ``authorization: Bearer <token>`` metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import grpc

from dream2flow.errors import InvalidInput
from dream2flow.log import get_logger

log = get_logger("service.auth")

OPERATOR = "operator"
VIEWER = "viewer"
ROLES = (OPERATOR, VIEWER)

# Fully qualified method → roles allowed. Anything not listed (and not public) is refused.
_TASK = "/dream2flow.v1.TaskService/"
_ROBOT = "/dream2flow.v1.RobotService/"
METHOD_ROLES: dict[str, tuple[str, ...]] = {
    _TASK + "GetObservation": (OPERATOR, VIEWER),
    _TASK + "UploadVideo": (OPERATOR,),
    _TASK + "GetUpload": (OPERATOR,),
    _TASK + "ListUploads": (OPERATOR,),
    _TASK + "DeleteUpload": (OPERATOR,),
    _TASK + "ListArtifacts": (OPERATOR, VIEWER),
    _TASK + "GetArtifact": (OPERATOR, VIEWER),
    _TASK + "SubmitTask": (OPERATOR,),
    _TASK + "GetTask": (OPERATOR, VIEWER),
    _TASK + "ListTasks": (OPERATOR, VIEWER),
    _TASK + "WatchTask": (OPERATOR, VIEWER),
    _TASK + "CancelTask": (OPERATOR,),
    _ROBOT + "GetRobotState": (OPERATOR, VIEWER),
    _ROBOT + "EmergencyStop": (OPERATOR,),  # + viewer when [auth] viewer_can_estop
    _ROBOT + "Reset": (OPERATOR,),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": (OPERATOR, VIEWER),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": (OPERATOR, VIEWER),
}
# Calls that change something (or move the robot): their audit rows are fsynced on their own.
MUTATING = frozenset({_TASK + "UploadVideo", _TASK + "SubmitTask", _TASK + "CancelTask", _ROBOT + "EmergencyStop",
                      _ROBOT + "Reset", _TASK + "DeleteUpload"})
# Load balancers and supervisors probe health without a token; it reveals nothing else.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/",)


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


@dataclass
class CallInfo:
    """Per-call facts the handlers add for the audit row (the task the call concerned)."""

    principal: Principal | None = None
    task_id: str = ""
    detail: str = ""
    peer: str = ""


CURRENT_CALL: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar("d2f_call", default=None)


def _reset(token: contextvars.Token) -> None:
    try:
        CURRENT_CALL.reset(token)
    except ValueError:  # an async generator finalised from another context: nothing to restore
        pass


def current_call() -> CallInfo:
    """The running RPC's ``CallInfo`` (a throwaway one outside an RPC, e.g. in unit tests)."""
    info = CURRENT_CALL.get()
    return info if info is not None else CallInfo()


@dataclass
class TokenTable:
    """sha256(token) → Principal. Lookups compare digests in constant time."""

    by_digest: dict[bytes, Principal] = field(default_factory=dict)

    def lookup(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for d, p in self.by_digest.items():  # no early exit: timing does not reveal which entry matched
            if hmac.compare_digest(d, digest):
                found = p
        return found

    def __len__(self) -> int:
        return len(self.by_digest)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_from_entries(entries: list[Any], where: str) -> TokenTable:
    table = TokenTable()
    names: set[str] = set()
    for i, e in enumerate(entries):
        w = f"{where} tokens[{i}]"
        if not isinstance(e, dict):
            raise InvalidInput(f"{w}: must be a table with name, role, sha256")
        unknown = set(e) - {"name", "role", "sha256", "token"}
        if unknown:
            raise InvalidInput(f"{w}: unknown keys {sorted(unknown)}")
        name, role = e.get("name"), e.get("role")
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise InvalidInput(f"{w}: 'name' must be a non-empty string of at most 64 characters")
        if name in names:
            raise InvalidInput(f"{w}: duplicate name {name!r}")
        if role not in ROLES:
            raise InvalidInput(f"{w}: 'role' must be one of {', '.join(ROLES)}, got {role!r}")
        if ("sha256" in e) == ("token" in e):
            raise InvalidInput(f"{w}: give exactly one of 'sha256' (preferred) or 'token'")
        if "sha256" in e:
            h = e["sha256"]
            if not isinstance(h, str) or len(h) != 64 or any(c not in "0123456789abcdefABCDEF" for c in h):
                raise InvalidInput(f"{w}: 'sha256' must be 64 hex characters")
            digest = bytes.fromhex(h)
        else:
            tok = e["token"]
            if not isinstance(tok, str) or len(tok) < 16:
                raise InvalidInput(f"{w}: 'token' must be a string of at least 16 characters")
            digest = hashlib.sha256(tok.encode()).digest()
        if digest in table.by_digest:
            raise InvalidInput(f"{w}: the same token is listed twice")
        names.add(name)
        table.by_digest[digest] = Principal(name, role)
    return table


def load_tokens(cfg: Any) -> TokenTable:
    """Inline ``[[auth.tokens]]`` plus ``[auth] tokens_file``; at least one token is required."""
    from dream2flow.config import load_toml

    entries: list[Any] = list(cfg.auth.tokens)
    where = "[auth]"
    if cfg.auth.tokens_file:
        p = cfg.path(cfg.auth.tokens_file)
        d = load_toml(p)
        unknown = set(d) - {"tokens"}
        if unknown:
            raise InvalidInput(f"{p}: unknown keys {sorted(unknown)} (expected [[tokens]] tables)")
        entries += list(d.get("tokens", []))
        where = str(p)
        try:
            if p.stat().st_mode & 0o077:
                log.warning("tokens file %s is readable by other users: chmod 600 it", p)
        except OSError:  # pragma: no cover
            pass
    table = tokens_from_entries(entries, where)
    if not len(table):
        raise InvalidInput("no tokens configured: add [[tokens]] to [auth] tokens_file or [[auth.tokens]]")
    return table


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            v = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, tok = v.strip().partition(" ")
            if scheme.lower() == "bearer" and tok.strip():
                return tok.strip()
            return None
    return None


AuditFn = Callable[[dict[str, Any]], "asyncio.Future[Any] | Any"]


def _abort_handler(st: Any, kind: str) -> grpc.RpcMethodHandler:
    """A handler that only answers ``st`` (a google.rpc.Status, details included)."""
    from dream2flow.service import status as S

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await S.abort(context, st)

    async def stream_in(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await S.abort(context, st)

    async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await S.abort(context, st)
        yield  # pragma: no cover - makes this an async generator

    async def bidi(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await S.abort(context, st)
        yield  # pragma: no cover

    return {
        "unary_unary": grpc.unary_unary_rpc_method_handler(unary),
        "stream_unary": grpc.stream_unary_rpc_method_handler(stream_in),
        "unary_stream": grpc.unary_stream_rpc_method_handler(stream_out),
        "stream_stream": grpc.stream_stream_rpc_method_handler(bidi),
    }[kind]


class _Undecodable:
    """Stands in for a request whose bytes are not a valid message (so the call gets
    INVALID_ARGUMENT instead of gRPC's generic UNKNOWN)."""

    def __init__(self, why: str) -> None:
        self.why = why


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError and friends
            return _Undecodable(f"request is not a valid protobuf message ({type(exc).__name__})")

    return deserialize


async def _abort_undecodable(context: grpc.aio.ServicerContext, item: _Undecodable) -> None:
    from dream2flow.service import status as S

    await S.abort(context, S.build("INVALID_ARGUMENT", item.why, reason="MALFORMED_REQUEST"))


async def _checked(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
    async for item in request_iterator:
        if isinstance(item, _Undecodable):
            await _abort_undecodable(context, item)
        yield item


def _kind(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "stream_stream"
    if handler.request_streaming:
        return "stream_unary"
    if handler.response_streaming:
        return "unary_stream"
    return "unary_unary"


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Bearer token → Principal → role check → admission (``admission.Admission``: per-class
    limits, the e-stop never counted) → the handler, wrapped to record one audit row (who, role,
    rpc, task id, outcome code, peer) when the call ends. Public calls (grpc.health) skip the
    token and the audit, not the admission."""

    def __init__(self, tokens: TokenTable, audit: AuditFn, *, viewer_can_estop: bool = True,
                 admission: Any = None) -> None:
        self.tokens = tokens
        self.audit = audit
        self.admission = admission
        self.roles = dict(METHOD_ROLES)
        if viewer_can_estop:
            self.roles[_ROBOT + "EmergencyStop"] = (OPERATOR, VIEWER)

    async def intercept_service(self, continuation: Callable[..., Any],
                                handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        from dream2flow.service import status as S

        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: let gRPC answer UNIMPLEMENTED
            return None
        kind = _kind(handler)
        if method.startswith(PUBLIC_PREFIXES):
            return self._wrap(handler, kind, None, method)
        token = bearer_token(handler_call_details.invocation_metadata)
        principal = self.tokens.lookup(token) if token else None
        if principal is None:
            why = "missing bearer token" if not token else "unknown bearer token"
            await self._audit(None, method, "", "UNAUTHENTICATED", why)
            return _abort_handler(S.build("UNAUTHENTICATED", f"{why}: send metadata 'authorization: Bearer <token>'",
                                          reason="TOKEN_MISSING" if not token else "TOKEN_UNKNOWN"), kind)
        allowed = self.roles.get(method, ())
        if principal.role not in allowed:
            await self._audit(principal, method, "", "PERMISSION_DENIED", f"role {principal.role}")
            return _abort_handler(S.build("PERMISSION_DENIED",
                                          f"role '{principal.role}' may not call {method.rsplit('/', 1)[-1]}",
                                          reason="ROLE_NOT_ALLOWED"), kind)
        return self._wrap(handler, kind, principal, method)

    async def _audit(self, principal: Principal | None, method: str, task_id: str, code: str, detail: str,
                     peer: str = "") -> None:
        row = {"time_s": time.time(), "principal": principal.name if principal else "",
               "role": principal.role if principal else "", "rpc": method.rsplit("/", 1)[-1] if method else "",
               "task_id": task_id, "code": code, "detail": detail[:500], "peer": peer,
               "durable": method in MUTATING or code != "OK"}
        try:
            res = self.audit(row)
            if asyncio.iscoroutine(res) or isinstance(res, asyncio.Future):
                await res
        except Exception:  # the audit must never take the RPC down; it is logged loudly
            log.exception("could not write the audit row %s", row)

    def _wrap(self, handler: grpc.RpcMethodHandler, kind: str, principal: Principal | None,
              method: str) -> grpc.RpcMethodHandler:
        """``principal`` None: a public call (no audit row)."""
        from dream2flow.errors import Dream2FlowError
        from dream2flow.service import status as S

        interceptor = self
        admission = self.admission

        def outcome(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
            try:
                code = context.code()
            except Exception:  # pragma: no cover - older grpc without code()
                code = None
            if code is not None and code != grpc.StatusCode.OK:
                return code.name if hasattr(code, "name") else str(code)
            if isinstance(exc, asyncio.CancelledError):
                return "CANCELLED"
            if exc is not None:
                return "INTERNAL"
            return "OK"

        def start(context: grpc.aio.ServicerContext) -> CallInfo:
            # The peer is read now, while the call is alive: asking a finished (e.g. cancelled)
            # call for its peer crashes grpcio's C core.
            try:
                peer = context.peer()
            except Exception:  # pragma: no cover
                peer = ""
            return CallInfo(principal, peer=peer or "")

        async def admit(info: CallInfo, context: grpc.aio.ServicerContext) -> Any:
            """The admission ticket, or the call ends here with RESOURCE_EXHAUSTED + details."""
            if admission is None:
                return None
            try:
                return admission.enter(method, info.peer, principal.name if principal else None)
            except Dream2FlowError as exc:
                info.detail = exc.message
                await S.abort(context, S.from_error(exc))

        async def finish(info: CallInfo, context: grpc.aio.ServicerContext, exc: BaseException | None,
                         ticket: Any) -> None:
            if ticket is not None:
                admission.leave(ticket)
            if principal is not None:
                await interceptor._audit(principal, method, info.task_id, outcome(context, exc), info.detail,
                                         info.peer)

        @contextlib.asynccontextmanager
        async def guarded(context: grpc.aio.ServicerContext, request: Any = None) -> AsyncIterator[None]:
            """One RPC's bracket: call info bound, admitted (or aborted), undecodable request refused,
            and always the admission ticket returned and the audit row written — however it ends."""
            info = start(context)
            token = CURRENT_CALL.set(info)
            exc: BaseException | None = None
            ticket = None
            try:
                ticket = await admit(info, context)
                if isinstance(request, _Undecodable):
                    await _abort_undecodable(context, request)
                yield
            except BaseException as e:
                exc = e
                raise
            finally:
                _reset(token)
                await finish(info, context, exc, ticket)

        deserializer = _lenient(handler.request_deserializer)
        if kind == "unary_unary":
            inner = handler.unary_unary

            async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarded(context, request):
                    return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(behavior, deserializer, handler.response_serializer)
        if kind == "stream_unary":
            inner_su = handler.stream_unary

            async def behavior_su(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarded(context):
                    return await inner_su(_checked(request_iterator, context), context)

            return grpc.stream_unary_rpc_method_handler(behavior_su, deserializer, handler.response_serializer)
        if kind == "unary_stream":
            inner_us = handler.unary_stream

            async def behavior_us(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with guarded(context, request):
                    async for item in inner_us(request, context):
                        yield item

            async def behavior_us_writer(request: Any, context: grpc.aio.ServicerContext) -> None:
                """For streaming handlers that ``await context.write(...)`` (grpc.health's Watch)."""
                async with guarded(context, request):
                    await inner_us(request, context)

            chosen = behavior_us if inspect.isasyncgenfunction(inner_us) else behavior_us_writer
            return grpc.unary_stream_rpc_method_handler(chosen, deserializer, handler.response_serializer)
        inner_ss = handler.stream_stream

        async def behavior_ss(request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
            async with guarded(context):
                async for item in inner_ss(_checked(request_iterator, context), context):
                    yield item

        return grpc.stream_stream_rpc_method_handler(behavior_ss, deserializer, handler.response_serializer)


def server_credentials(cfg: Any) -> grpc.ServerCredentials:
    """TLS credentials from [tls]; with ``client_ca_file`` clients must present a certificate
    signed by that CA (mutual TLS)."""
    cert = cfg.path(cfg.tls.cert_file).read_bytes()
    key = cfg.path(cfg.tls.key_file).read_bytes()
    ca = cfg.path(cfg.tls.client_ca_file).read_bytes() if cfg.tls.client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(ca_file: str | Path | None = None, cert_file: str | Path | None = None,
                        key_file: str | Path | None = None) -> grpc.ChannelCredentials:
    """Client TLS: trust ``ca_file`` (default: the system roots); present ``cert_file``/``key_file``
    for mutual TLS."""
    ca = Path(ca_file).read_bytes() if ca_file else None
    cert = Path(cert_file).read_bytes() if cert_file else None
    key = Path(key_file).read_bytes() if key_file else None
    if (cert is None) != (key is None):
        raise InvalidInput("a client certificate needs both --cert-file and --key-file")
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
