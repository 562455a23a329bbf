"""Admission control: which calls may start now, so that the e-stop can never be starved.

Why not gRPC's ``maximum_concurrent_rpcs``: it counts every call server-wide, so 64 open
``Health.Watch`` streams from a client without a token (or 64 WatchTask streams from one
viewer) made ``EmergencyStop`` fail with RESOURCE_EXHAUSTED. The server runs without that cap
and admits each call here instead (one server, one port: clients, load balancers and
reflection-driven tools need nothing extra), by class:

- ``EmergencyStop`` and ``Reset``: never refused, never counted;
- ``GetRobotState`` and ``grpc.health`` ``Check``: their own pool (``[server] max_priority_rpcs``);
- long-lived streams (``WatchTask``, reflection, ``grpc.health`` ``Watch``): bounded per token
  (``max_streams_per_token``), per peer IP (``max_streams_per_peer``), unauthenticated ones
  (health Watch) in total on their own (``max_unauthenticated_streams``), WatchTask in total
  (``max_watchers``);
- everything else (unary calls, uploads, artifact downloads): ``[server] max_concurrent_rpcs``.

A refusal is RESOURCE_EXHAUSTED with reason STREAM_LIMIT / RPC_LIMIT, a QuotaFailure naming
the limit and a RetryInfo. Counting happens in the event loop (one thread), under a lock anyway.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from urllib.parse import unquote

from dream2flow.errors import ResourceExhausted

_ROBOT = "/dream2flow.v1.RobotService/"
_TASK = "/dream2flow.v1.TaskService/"
UNLIMITED = frozenset({_ROBOT + "EmergencyStop", _ROBOT + "Reset"})
PRIORITY = frozenset({_ROBOT + "GetRobotState", "/grpc.health.v1.Health/Check"})
WATCH = _TASK + "WatchTask"
PUBLIC_STREAMS = frozenset({"/grpc.health.v1.Health/Watch"})
STREAMS = frozenset({WATCH, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                     "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}) | PUBLIC_STREAMS


def peer_host(peer: str) -> str:
    """gRPC's peer string ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "unix:...") → the address."""
    p = unquote(peer or "")
    kind, _, rest = p.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        if rest.startswith("["):
            return rest[1:].split("]", 1)[0]
        return rest.rsplit(":", 1)[0]
    return kind or "unknown"


@dataclass(frozen=True)
class Ticket:
    cls: str  # "unlimited" | "priority" | "stream" | "general"
    peer: str
    token: str | None
    method: str


@dataclass
class Limits:
    max_concurrent_rpcs: int = 64
    max_priority_rpcs: int = 32
    max_watchers: int = 64
    max_streams_per_token: int = 32
    max_streams_per_peer: int = 64
    max_unauthenticated_streams: int = 16

    @classmethod
    def from_config(cls, cfg: object) -> "Limits":
        s, lim = cfg.server, cfg.limits  # type: ignore[attr-defined]
        return cls(s.max_concurrent_rpcs, s.max_priority_rpcs, lim.max_watchers, lim.max_streams_per_token,
                   lim.max_streams_per_peer, lim.max_unauthenticated_streams)


def _refuse(what: str, subject: str, limit: int) -> ResourceExhausted:
    reason = "RPC_LIMIT" if what == "calls" else "STREAM_LIMIT"
    return ResourceExhausted(f"{subject}: {limit} {what} are open (the limit); retry later", reason=reason,
                             quota=(subject, f"at most {limit} {what} at once"))


class Admission:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self.general = 0
        self.priority = 0
        self.watchers = 0
        self.public_streams = 0
        self.streams_by_peer: Counter[str] = Counter()
        self.streams_by_token: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    @staticmethod
    def classify(method: str) -> str:
        if method in UNLIMITED:
            return "unlimited"
        if method in PRIORITY:
            return "priority"
        if method in STREAMS:
            return "stream"
        return "general"

    def enter(self, method: str, peer: str, token: str | None) -> Ticket:
        """Admit a call (``token``: the caller's token name, None without one) → a ticket for
        ``leave``; ResourceExhausted when a limit is reached."""
        cls = self.classify(method)
        host = peer_host(peer)
        lim = self.limits
        with self._lock:
            if cls == "priority":
                if self.priority >= lim.max_priority_rpcs:
                    self.refused["priority"] += 1
                    raise _refuse("calls", "priority calls (GetRobotState, health Check)", lim.max_priority_rpcs)
                self.priority += 1
            elif cls == "general":
                if self.general >= lim.max_concurrent_rpcs:
                    self.refused["general"] += 1
                    raise _refuse("calls", "server", lim.max_concurrent_rpcs)
                self.general += 1
            elif cls == "stream":
                public = method in PUBLIC_STREAMS
                if self.streams_by_peer[host] >= lim.max_streams_per_peer:
                    self.refused["peer"] += 1
                    raise _refuse("streams", f"peer {host}", lim.max_streams_per_peer)
                if public and self.public_streams >= lim.max_unauthenticated_streams:
                    self.refused["unauthenticated"] += 1
                    raise _refuse("streams", "unauthenticated streams", lim.max_unauthenticated_streams)
                if not public and token is not None and self.streams_by_token[token] >= lim.max_streams_per_token:
                    self.refused["token"] += 1
                    raise _refuse("streams", f"token {token}", lim.max_streams_per_token)
                if method == WATCH and self.watchers >= lim.max_watchers:
                    self.refused["watchers"] += 1
                    raise _refuse("streams", "WatchTask streams", lim.max_watchers)
                self.streams_by_peer[host] += 1
                if public:
                    self.public_streams += 1
                elif token is not None:
                    self.streams_by_token[token] += 1
                if method == WATCH:
                    self.watchers += 1
        return Ticket(cls, host, None if method in PUBLIC_STREAMS else token, method)

    def leave(self, t: Ticket) -> None:
        with self._lock:
            if t.cls == "priority":
                self.priority -= 1
            elif t.cls == "general":
                self.general -= 1
            elif t.cls == "stream":
                self.streams_by_peer[t.peer] -= 1
                if self.streams_by_peer[t.peer] <= 0:
                    del self.streams_by_peer[t.peer]
                if t.method in PUBLIC_STREAMS:
                    self.public_streams -= 1
                elif t.token is not None:
                    self.streams_by_token[t.token] -= 1
                    if self.streams_by_token[t.token] <= 0:
                        del self.streams_by_token[t.token]
                if t.method == WATCH:
                    self.watchers -= 1

    def snapshot(self) -> dict[str, object]:
        """Counts now (tests, the benchmark, logs)."""
        with self._lock:
            return {"general": self.general, "priority": self.priority, "watchers": self.watchers,
                    "unauthenticated_streams": self.public_streams, "streams_by_peer": dict(self.streams_by_peer),
                    "streams_by_token": dict(self.streams_by_token), "refused": dict(self.refused)}
