"""The job store: one SQLite database (WAL, ``synchronous=FULL``) plus a data directory.

Why SQLite: the robot computer must not lose a task, its history or the audit trail on a
crash or power cut, and must not need a database server. Every state change commits (and is
fsynced) before the caller acts on it; the audit, transitions and events tables are
append-only (triggers refuse UPDATE/DELETE).

Layout of the data directory::

    dream2flow.sqlite (+ -wal, -shm)   tasks, transitions, events, audit, uploads, upload_parts
    server.lock                        held (flock) by the one server using this directory
    uploads/<upload_id>.bin            finished uploads
    uploads/part-<sha256>-<purpose>.part   an upload still arriving (resumable; row in upload_parts)
    tasks/<task_id>/                   inputs and artifacts of one task

Schema 2 (from 1 by ``_migrate``): ``tasks.outcome_json`` (the outcome check),
``uploads.last_used_s`` (a task naming an upload keeps it), table ``upload_parts``.

States: QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED | INTERRUPTED, and QUEUED → CANCELLED.
After a restart ``recover()`` turns RUNNING into INTERRUPTED (never resumed); QUEUED stay QUEUED.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

from dream2flow.errors import Dream2FlowError, InvalidInput, NotReady, ResourceExhausted

SCHEMA_VERSION = 2
STATES = ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED")
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED"})
_ALLOWED = {
    "QUEUED": {"RUNNING", "CANCELLED"},
    "RUNNING": {"SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED"},
}


class NotFound(InvalidInput):
    """An id the caller named does not exist (task, upload)."""

    grpc_code = "NOT_FOUND"

    def __init__(self, message: str, **kw: Any) -> None:
        low = message.lower()
        kw.setdefault("reason", "UPLOAD_NOT_FOUND" if "upload" in low else "ARTIFACT_NOT_FOUND" if "artifact" in low
                      else "TASK_NOT_FOUND")
        super().__init__(message, **kw)


class AlreadyExists(InvalidInput):
    """An idempotency key reused for a different request."""

    grpc_code = "ALREADY_EXISTS"

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("reason", "IDEMPOTENCY_KEY_REUSED")
        kw.setdefault("field", "idempotency_key")
        super().__init__(message, **kw)


class StaleState(Dream2FlowError):
    """A transition from a state the task is no longer in (raced with cancel / e-stop)."""

    grpc_code = "FAILED_PRECONDITION"
    exit_code = 3


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    created_s REAL NOT NULL,
    started_s REAL,
    finished_s REAL,
    submitted_by TEXT NOT NULL,
    idempotency_key TEXT,
    request_hash TEXT NOT NULL,
    request_json TEXT NOT NULL,
    failed_stage TEXT,
    error_code TEXT,
    error_kind TEXT,
    error_message TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    artifacts_json TEXT NOT NULL DEFAULT '{}',
    metrics_json TEXT NOT NULL DEFAULT '{}',
    last_sequence INTEGER NOT NULL DEFAULT 0,
    outcome_json TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency ON tasks (submitted_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, seq);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    time_s REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS transitions_task ON transitions (task_id, id);
CREATE TABLE IF NOT EXISTS events (
    task_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    time_s REAL NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    metrics_json TEXT NOT NULL DEFAULT '{}',
    error_code TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, sequence)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_s REAL NOT NULL,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    rpc TEXT NOT NULL,
    task_id TEXT NOT NULL DEFAULT '',
    code TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    peer TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_task ON audit (task_id);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    created_s REAL NOT NULL,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    container TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL DEFAULT '',
    info_json TEXT NOT NULL DEFAULT '{}',
    last_used_s REAL
);
CREATE INDEX IF NOT EXISTS uploads_sha ON uploads (sha256, purpose);
CREATE TABLE IF NOT EXISTS upload_parts (
    sha256 TEXT NOT NULL,
    purpose TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    container TEXT NOT NULL,
    owner TEXT NOT NULL,
    filename TEXT NOT NULL DEFAULT '',
    created_s REAL NOT NULL,
    updated_s REAL NOT NULL,
    PRIMARY KEY (sha256, purpose)
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS transitions_no_update BEFORE UPDATE ON transitions
    BEGIN SELECT RAISE(ABORT, 'transitions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS transitions_no_delete BEFORE DELETE ON transitions
    BEGIN SELECT RAISE(ABORT, 'transitions are append-only'); END;
"""

_TASK_COLUMNS = ("seq", "task_id", "state", "created_s", "started_s", "finished_s", "submitted_by",
                 "idempotency_key", "request_hash", "request_json", "failed_stage", "error_code", "error_kind",
                 "error_message", "cancel_requested", "artifacts_json", "metrics_json", "last_sequence",
                 "outcome_json")


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:20]}"


_ID_RE = re.compile(r"^[tu]_[0-9a-f]{20}$")


def _check_id(kind: str, value: str) -> None:
    """Ids come from callers: anything but our own format is unknown (and never reaches a path)."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise NotFound(f"unknown {kind} id {str(value)[:64]!r}")


def _task_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = {k: row[k] for k in _TASK_COLUMNS}
    d["request"] = json.loads(d.pop("request_json"))
    d["artifacts"] = json.loads(d.pop("artifacts_json"))
    d["metrics"] = json.loads(d.pop("metrics_json"))
    d["outcome"] = json.loads(d.pop("outcome_json") or "{}")
    d["cancel_requested"] = bool(d["cancel_requested"])
    return d


def _upload_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["info"] = json.loads(d.pop("info_json"))
    d["last_used_s"] = d.get("last_used_s") or d["created_s"]
    return d


class Store:
    """Thread-safe (one connection behind a lock; SQLite serialises writers anyway). Callers in
    the event loop run these methods in a worker thread so an fsync never stalls it."""

    def __init__(self, data_dir: str | Path, *, lock: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "uploads").mkdir(exist_ok=True)
        (self.data_dir / "tasks").mkdir(exist_ok=True)
        self._lock_fd: int | None = None
        if lock:
            self._take_dir_lock()
        self.db_path = self.data_dir / "dream2flow.sqlite"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.db_path), isolation_level=None, check_same_thread=False, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise NotReady(f"{self.db_path}: SQLite refused WAL mode (got {mode}); is the data directory on NFS?")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        row = self._db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        version = None
        if row is not None:
            v = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(v[0]) if v is not None else None
        if version is not None and version > SCHEMA_VERSION:
            raise NotReady(f"{self.db_path}: schema version {version}, this server knows {SCHEMA_VERSION}")
        if version is not None and version < SCHEMA_VERSION:
            self._migrate(version)
        self._db.executescript(_SCHEMA)
        if version is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _migrate(self, version: int) -> None:
        """Older schema → this one, in one transaction (columns added, nothing dropped)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if version < 2:
                    self._db.execute("ALTER TABLE tasks ADD COLUMN outcome_json TEXT NOT NULL DEFAULT '{}'")
                    self._db.execute("ALTER TABLE uploads ADD COLUMN last_used_s REAL")
                self._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- plumbing ---------------------------------------------------------------------------
    def _take_dir_lock(self) -> None:
        import fcntl

        fd = os.open(str(self.data_dir / "server.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise NotReady(f"another dream2flow server is using the data directory {self.data_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    class _Tx:
        def __init__(self, store: "Store") -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            self.store._db.execute("BEGIN IMMEDIATE")
            return self.store._db

        def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
            try:
                self.store._db.execute("COMMIT" if et is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def _tx(self) -> "Store._Tx":
        return Store._Tx(self)

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def integrity_check(self) -> str:
        return str(self._query("PRAGMA integrity_check")[0][0])

    def task_dir(self, task_id: str) -> Path:
        return self.data_dir / "tasks" / task_id

    def upload_path(self, upload_id: str) -> Path:
        return self.data_dir / "uploads" / f"{upload_id}.bin"

    # -- tasks ------------------------------------------------------------------------------
    def create_task(self, *, submitted_by: str, request: dict[str, Any], request_hash: str,
                    idempotency_key: str | None, max_queued: int, reason: str = "submitted",
                    task_id: str | None = None) -> tuple[dict[str, Any], bool]:
        """Insert a QUEUED task (with its first transition and event) → (task, deduplicated).
        Same caller + key + request hash → the earlier task; different hash → AlreadyExists;
        ``max_queued`` queued tasks already → ResourceExhausted."""
        now = time.time()
        task_id = task_id or new_id("t_")
        with self._tx() as db:
            if idempotency_key:
                row = db.execute("SELECT * FROM tasks WHERE submitted_by=? AND idempotency_key=?",
                                 (submitted_by, idempotency_key)).fetchone()
                if row is not None:
                    if row["request_hash"] != request_hash:
                        raise AlreadyExists(f"idempotency key {idempotency_key!r} was used for a different request "
                                            f"(task {row['task_id']})")
                    return _task_dict(row), True
            queued = db.execute("SELECT COUNT(*) FROM tasks WHERE state='QUEUED'").fetchone()[0]
            if queued >= max_queued:
                raise ResourceExhausted(f"the task queue is full ({queued} queued, limit {max_queued}); retry later",
                                        reason="QUEUE_FULL", quota=("task queue", f"at most {max_queued} queued tasks"))
            db.execute(
                "INSERT INTO tasks (task_id, state, created_s, submitted_by, idempotency_key, request_hash, request_json)"
                " VALUES (?, 'QUEUED', ?, ?, ?, ?, ?)",
                (task_id, now, submitted_by, idempotency_key or None, request_hash, json.dumps(request, sort_keys=True)))
            db.execute("INSERT INTO transitions (task_id, from_state, to_state, time_s, reason) VALUES (?,?,?,?,?)",
                       (task_id, None, "QUEUED", now, reason))
            self._event(db, task_id, "STATE", "QUEUED", message=reason, now=now)
            row = db.execute("SELECT * FROM tasks WHERE task_id=?", (task_id,)).fetchone()
        return _task_dict(row), False

    def _event(self, db: sqlite3.Connection, task_id: str, kind: str, state: str, *, stage: str = "",
               progress: float = 0.0, message: str = "", metrics: dict[str, float] | None = None,
               error_code: str = "", now: float | None = None) -> int:
        seq = db.execute("SELECT last_sequence FROM tasks WHERE task_id=?", (task_id,)).fetchone()[0] + 1
        db.execute("UPDATE tasks SET last_sequence=? WHERE task_id=?", (seq, task_id))
        db.execute("INSERT INTO events (task_id, sequence, time_s, kind, state, stage, progress, message, metrics_json,"
                   " error_code) VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (task_id, seq, time.time() if now is None else now, kind, state, stage, float(progress),
                    message[:2000], json.dumps(metrics or {}, sort_keys=True), error_code))
        return seq

    def add_event(self, task_id: str, kind: str, *, stage: str = "", progress: float = 0.0, message: str = "",
                  metrics: dict[str, float] | None = None, error_code: str = "") -> int:
        """Append one event (its state is the task's current one) → its sequence number."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM tasks WHERE task_id=?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(f"unknown task id {task_id!r}")
            return self._event(db, task_id, kind, row["state"], stage=stage, progress=progress, message=message,
                               metrics=metrics, error_code=error_code)

    def transition(self, task_id: str, to_state: str, reason: str = "", *, expect_from: Iterable[str] | None = None,
                   **fields: Any) -> dict[str, Any]:
        """Move a task to ``to_state`` (legal moves only), set ``fields`` (failed_stage, error_code,
        error_kind, error_message, artifacts, metrics), record the transition and a STATE event,
        all in one transaction. ``StaleState`` if the task is not in ``expect_from``."""
        if to_state not in STATES:
            raise ValueError(f"unknown state {to_state}")
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM tasks WHERE task_id=?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(f"unknown task id {task_id!r}")
            cur = row["state"]
            allowed_from = set(expect_from) if expect_from is not None else {s for s, t in _ALLOWED.items()
                                                                             if to_state in t}
            if cur not in allowed_from or to_state not in _ALLOWED.get(cur, set()):
                raise StaleState(f"task {task_id} is {cur}; cannot become {to_state}")
            sets = {"state": to_state}
            if to_state == "RUNNING":
                sets["started_s"] = now
            if to_state in TERMINAL:
                sets["finished_s"] = now
            for k, v in fields.items():
                if k in ("artifacts", "metrics"):
                    merged = json.loads(row[f"{k}_json"])
                    merged.update(v or {})
                    sets[f"{k}_json"] = json.dumps(merged, sort_keys=True)
                elif k in ("failed_stage", "error_code", "error_kind", "error_message"):
                    sets[k] = None if v is None else str(v)[:2000]
                elif k == "outcome":
                    sets["outcome_json"] = json.dumps(v or {}, sort_keys=True)
                else:
                    raise ValueError(f"unknown task field {k}")
            db.execute(f"UPDATE tasks SET {', '.join(f'{k}=?' for k in sets)} WHERE task_id=?",
                       (*sets.values(), task_id))
            db.execute("INSERT INTO transitions (task_id, from_state, to_state, time_s, reason) VALUES (?,?,?,?,?)",
                       (task_id, cur, to_state, now, reason[:2000]))
            self._event(db, task_id, "STATE", to_state, message=reason, now=now,
                        error_code=str(fields.get("error_code") or ""))
            row = db.execute("SELECT * FROM tasks WHERE task_id=?", (task_id,)).fetchone()
        return _task_dict(row)

    def update_task(self, task_id: str, *, artifacts: dict[str, str] | None = None,
                    metrics: dict[str, float] | None = None, cancel_requested: bool | None = None) -> None:
        with self._tx() as db:
            row = db.execute("SELECT artifacts_json, metrics_json FROM tasks WHERE task_id=?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(f"unknown task id {task_id!r}")
            a = json.loads(row["artifacts_json"])
            a.update(artifacts or {})
            m = json.loads(row["metrics_json"])
            m.update(metrics or {})
            db.execute("UPDATE tasks SET artifacts_json=?, metrics_json=? WHERE task_id=?",
                       (json.dumps(a, sort_keys=True), json.dumps(m, sort_keys=True), task_id))
            if cancel_requested is not None:
                db.execute("UPDATE tasks SET cancel_requested=? WHERE task_id=?", (int(cancel_requested), task_id))

    def claim_next(self, *, dry_run_only: bool = False) -> dict[str, Any] | None:
        """The oldest QUEUED task (only dry runs with ``dry_run_only``: they send no motion, so
        they may run during an e-stop or a hold), moved to RUNNING in the same transaction."""
        with self._lock:
            rows = self._db.execute("SELECT task_id, request_json FROM tasks WHERE state='QUEUED' ORDER BY seq"
                                    ).fetchall()
            for row in rows:
                if dry_run_only and not json.loads(row["request_json"]).get("options", {}).get("dry_run"):
                    continue
                return self.transition(row["task_id"], "RUNNING", "started", expect_from=("QUEUED",))
            return None

    def get_task(self, task_id: str) -> dict[str, Any]:
        _check_id("task", task_id)
        rows = self._query("SELECT * FROM tasks WHERE task_id=?", (task_id,))
        if not rows:
            raise NotFound(f"unknown task id {task_id!r}")
        return _task_dict(rows[0])

    def list_tasks(self, *, states: Iterable[str] = (), limit: int = 20,
                   before_seq: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first → (tasks, seq to pass as ``before_seq`` for the next page, or None)."""
        where, args = [], []
        states = list(states)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += states
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC LIMIT ?"
        rows = self._query(sql, (*args, limit + 1))
        tasks = [_task_dict(r) for r in rows[:limit]]
        nxt = tasks[-1]["seq"] if len(rows) > limit else None
        return tasks, nxt

    def queued_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT task_id FROM tasks WHERE state='QUEUED' ORDER BY seq")]

    def queue_position(self, task_id: str) -> int:
        row = self._query("SELECT seq, state FROM tasks WHERE task_id=?", (task_id,))
        if not row or row[0]["state"] != "QUEUED":
            return 0
        return int(self._query("SELECT COUNT(*) FROM tasks WHERE state='QUEUED' AND seq < ?", (row[0]["seq"],))[0][0])

    def running_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT task_id FROM tasks WHERE state='RUNNING' ORDER BY seq")]

    def events_after(self, task_id: str, after_sequence: int, limit: int = 500) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM events WHERE task_id=? AND sequence>? ORDER BY sequence LIMIT ?",
                           (task_id, int(after_sequence), int(limit)))
        out = []
        for r in rows:
            d = dict(r)
            d["metrics"] = json.loads(d.pop("metrics_json"))
            out.append(d)
        return out

    def transitions(self, task_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query("SELECT * FROM transitions WHERE task_id=? ORDER BY id", (task_id,))]

    def recover(self) -> dict[str, list[str]]:
        """At start-up: RUNNING tasks → INTERRUPTED (the server died under them; never resumed).
        Returns {"interrupted": [...], "queued": [...]}."""
        interrupted = []
        for tid in self.running_ids():
            self.transition(tid, "INTERRUPTED", "the server stopped while this task was running; it was not resumed",
                            expect_from=("RUNNING",), error_code="ABORTED", error_kind="ExecutionFailed",
                            error_message="interrupted by a server restart")
            interrupted.append(tid)
        return {"interrupted": interrupted, "queued": self.queued_ids()}

    # -- audit ------------------------------------------------------------------------------
    def append_audit(self, row: dict[str, Any], *, durable: bool = True) -> None:
        """One audit row. ``durable=False`` (read-only calls) commits without an fsync of its own
        (WAL + synchronous=NORMAL: still atomic, made durable by the next full commit), so that
        polling clients do not wear out the robot computer's flash with one fsync per call."""
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._tx() as db:
                    db.execute("INSERT INTO audit (time_s, principal, role, rpc, task_id, code, detail, peer)"
                               " VALUES (?,?,?,?,?,?,?,?)",
                               (float(row.get("time_s", time.time())), str(row.get("principal", "")),
                                str(row.get("role", "")), str(row.get("rpc", "")), str(row.get("task_id", "")),
                                str(row.get("code", "")), str(row.get("detail", ""))[:500],
                                str(row.get("peer", ""))[:200]))
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    def audit_rows(self, task_id: str | None = None, limit: int = 10000) -> list[dict[str, Any]]:
        if task_id is None:
            return [dict(r) for r in self._query("SELECT * FROM audit ORDER BY id LIMIT ?", (limit,))]
        return [dict(r) for r in self._query("SELECT * FROM audit WHERE task_id=? ORDER BY id LIMIT ?",
                                             (task_id, limit))]

    # -- uploads ----------------------------------------------------------------------------
    def add_upload(self, *, upload_id: str, owner: str, purpose: str, container: str, size_bytes: int,
                   sha256: str, filename: str, info: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO uploads (upload_id, created_s, owner, purpose, container, size_bytes, sha256,"
                       " filename, info_json) VALUES (?,?,?,?,?,?,?,?,?)",
                       (upload_id, time.time(), owner, purpose, container, int(size_bytes), sha256, filename,
                        json.dumps(info, sort_keys=True)))

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        _check_id("upload", upload_id)
        rows = self._query("SELECT * FROM uploads WHERE upload_id=?", (upload_id,))
        if not rows or not self.upload_path(upload_id).is_file():
            raise NotFound(f"unknown upload id {upload_id!r} (never uploaded, or expired)")
        return _upload_dict(rows[0])

    def find_upload(self, sha256: str, purpose: str) -> dict[str, Any] | None:
        """The finished upload of this content and purpose (None if none)."""
        for row in self._query("SELECT * FROM uploads WHERE sha256=? AND purpose=? ORDER BY created_s", (sha256, purpose)):
            if self.upload_path(row["upload_id"]).is_file():
                return _upload_dict(row)
        return None

    def touch_upload(self, upload_id: str) -> None:
        """A task used it: its expiry clock starts again."""
        with self._tx() as db:
            db.execute("UPDATE uploads SET last_used_s=? WHERE upload_id=?", (time.time(), upload_id))

    def list_uploads(self, *, limit: int = 100, before_created: float | None = None) -> list[dict[str, Any]]:
        """Finished uploads, newest first."""
        sql = "SELECT * FROM uploads" + (" WHERE created_s < ?" if before_created is not None else "") + \
            " ORDER BY created_s DESC LIMIT ?"
        args = ((before_created,) if before_created is not None else ()) + (int(limit),)
        return [_upload_dict(r) for r in self._query(sql, args)]

    def delete_upload(self, upload_id: str) -> dict[str, Any]:
        """Remove a finished upload (tasks that used it keep their own links) → its record."""
        rec = self.get_upload(upload_id)
        with self._tx() as db:
            db.execute("DELETE FROM uploads WHERE upload_id=?", (upload_id,))
        self.upload_path(upload_id).unlink(missing_ok=True)
        return rec

    def uploads_total_bytes(self) -> int:
        done = int(self._query("SELECT COALESCE(SUM(size_bytes), 0) FROM uploads")[0][0])
        parts = int(self._query("SELECT COALESCE(SUM(size_bytes), 0) FROM upload_parts")[0][0])
        return done + parts

    # -- partial (resumable) uploads ---------------------------------------------------------
    def part_path(self, sha256: str, purpose: str) -> Path:
        if not re.match(r"^[0-9a-f]{64}$", sha256) or purpose not in ("VIDEO", "VIDEO_DEPTH"):
            raise InvalidInput("an upload part needs a 64-hex sha256 and purpose VIDEO or VIDEO_DEPTH")
        return self.data_dir / "uploads" / f"part-{sha256}-{purpose}.part"

    def get_part(self, sha256: str, purpose: str) -> dict[str, Any] | None:
        """The partial upload of this content (with ``received_bytes`` from its file), or None."""
        rows = self._query("SELECT * FROM upload_parts WHERE sha256=? AND purpose=?", (sha256, purpose))
        if not rows:
            return None
        d = dict(rows[0])
        try:
            d["received_bytes"] = self.part_path(sha256, purpose).stat().st_size
        except OSError:
            d["received_bytes"] = 0
        return d

    def put_part(self, *, sha256: str, purpose: str, size_bytes: int, container: str, owner: str,
                 filename: str) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT INTO upload_parts (sha256, purpose, size_bytes, container, owner, filename, created_s,"
                       " updated_s) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (sha256, purpose) DO UPDATE SET"
                       " updated_s=excluded.updated_s", (sha256, purpose, int(size_bytes), container, owner,
                                                          filename, now, now))

    def touch_part(self, sha256: str, purpose: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE upload_parts SET updated_s=? WHERE sha256=? AND purpose=?", (time.time(), sha256, purpose))

    def drop_part(self, sha256: str, purpose: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM upload_parts WHERE sha256=? AND purpose=?", (sha256, purpose))
        self.part_path(sha256, purpose).unlink(missing_ok=True)

    def list_parts(self) -> list[dict[str, Any]]:
        out = []
        for r in self._query("SELECT sha256, purpose FROM upload_parts ORDER BY updated_s DESC"):
            p = self.get_part(r["sha256"], r["purpose"])
            if p is not None:
                out.append(p)
        return out

    def delete_expired_uploads(self, ttl_s: float) -> int:
        """Delete uploads unused for ``ttl_s`` (tasks keep their own hard links), partial uploads
        idle that long, and stray .part files → how many were removed."""
        cutoff = time.time() - ttl_s
        n = 0
        with self._lock:
            rows = self._db.execute("SELECT upload_id FROM uploads WHERE COALESCE(last_used_s, created_s) < ?",
                                    (cutoff,)).fetchall()
            for r in rows:
                self.upload_path(r[0]).unlink(missing_ok=True)
                self._db.execute("DELETE FROM uploads WHERE upload_id=?", (r[0],))
                n += 1
            for r in self._db.execute("SELECT sha256, purpose FROM upload_parts WHERE updated_s < ?",
                                      (cutoff,)).fetchall():
                self.drop_part(r[0], r[1])
                n += 1
        known = {self.part_path(p["sha256"], p["purpose"]).name for p in self.list_parts()}
        for part in (self.data_dir / "uploads").glob("*.part"):
            try:
                if part.name not in known and part.stat().st_mtime < cutoff:
                    part.unlink(missing_ok=True)
            except OSError:  # pragma: no cover
                pass
        return n

    def remove_partial_uploads(self) -> int:
        """At start-up no upload is in flight: .part files without an upload_parts row are
        garbage (resumable parts are kept), and so are rows whose file is gone."""
        known = set()
        for p in self.list_parts():
            path = self.part_path(p["sha256"], p["purpose"])
            if path.is_file():
                known.add(path.name)
            else:
                self.drop_part(p["sha256"], p["purpose"])
        n = 0
        for part in (self.data_dir / "uploads").glob("*.part"):
            if part.name not in known:
                part.unlink(missing_ok=True)
                n += 1
        return n
