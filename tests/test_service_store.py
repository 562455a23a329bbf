"""The SQLite job store: durable transitions and events, append-only audit, restart recovery,
idempotency and the queue bound."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dream2flow.errors import NotReady, ResourceExhausted
from dream2flow.service.store import AlreadyExists, NotFound, StaleState, Store


def _submit(store: Store, key: str | None = None, req: dict | None = None, who: str = "op", max_queued: int = 8):
    return store.create_task(submitted_by=who, request=req or {"instruction": "x"}, request_hash=str(req or "h"),
                             idempotency_key=key, max_queued=max_queued)


def test_wal_and_full_sync(tmp_path: Path) -> None:
    s = Store(tmp_path)
    try:
        assert s._query("PRAGMA journal_mode")[0][0].lower() == "wal"
        assert int(s._query("PRAGMA synchronous")[0][0]) == 2  # FULL
    finally:
        s.close()


def test_life_cycle_events_are_sequenced(tmp_path: Path) -> None:
    s = Store(tmp_path)
    t, dedup = _submit(s)
    assert not dedup and t["state"] == "QUEUED" and t["last_sequence"] == 1
    run = s.claim_next()
    assert run is not None and run["task_id"] == t["task_id"] and run["state"] == "RUNNING"
    s.add_event(t["task_id"], "PROGRESS", stage="flow", progress=0.5, metrics={"points": 12})
    done = s.transition(t["task_id"], "SUCCEEDED", "done", artifacts={"flow": "tasks/x/flow.npz"}, metrics={"flow_s": 1.5})
    ev = s.events_after(t["task_id"], 0)
    assert [e["sequence"] for e in ev] == [1, 2, 3, 4]
    assert [e["kind"] for e in ev] == ["STATE", "STATE", "PROGRESS", "STATE"]
    assert ev[2]["metrics"] == {"points": 12} and ev[3]["state"] == "SUCCEEDED"
    assert [e["sequence"] for e in s.events_after(t["task_id"], 2)] == [3, 4]
    assert done["artifacts"] == {"flow": "tasks/x/flow.npz"} and done["finished_s"] >= done["started_s"]
    assert [(r["from_state"], r["to_state"]) for r in s.transitions(t["task_id"])] == [
        (None, "QUEUED"), ("QUEUED", "RUNNING"), ("RUNNING", "SUCCEEDED")]
    with pytest.raises(StaleState):  # terminal states are final
        s.transition(t["task_id"], "RUNNING")
    with pytest.raises(NotFound):
        s.get_task("t_nope")
    s.close()


def test_audit_events_and_transitions_are_append_only(tmp_path: Path) -> None:
    s = Store(tmp_path)
    t, _ = _submit(s)
    s.append_audit({"principal": "op", "role": "operator", "rpc": "SubmitTask", "task_id": t["task_id"], "code": "OK"})
    for sql in ("UPDATE audit SET code='X'", "DELETE FROM audit", "DELETE FROM events", "UPDATE transitions SET reason=''"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            s._db.execute(sql)
    assert s.audit_rows(t["task_id"])[0]["rpc"] == "SubmitTask"
    s.close()


def test_restart_interrupts_running_and_keeps_queue(tmp_path: Path) -> None:
    s = Store(tmp_path)
    a, _ = _submit(s)
    b, _ = _submit(s)
    c, _ = _submit(s)
    s.claim_next()  # a is RUNNING when the "power goes"
    s.close()
    s2 = Store(tmp_path)
    rec = s2.recover()
    assert rec == {"interrupted": [a["task_id"]], "queued": [b["task_id"], c["task_id"]]}
    ta = s2.get_task(a["task_id"])
    assert ta["state"] == "INTERRUPTED" and ta["error_code"] == "ABORTED"
    assert [e["state"] for e in s2.events_after(a["task_id"], 0)] == ["QUEUED", "RUNNING", "INTERRUPTED"]
    assert s2.integrity_check() == "ok"
    s2.close()


def test_idempotency_and_queue_bound(tmp_path: Path) -> None:
    s = Store(tmp_path)
    t1, d1 = _submit(s, key="k1", req={"a": 1})
    t2, d2 = _submit(s, key="k1", req={"a": 1})
    assert not d1 and d2 and t1["task_id"] == t2["task_id"]
    with pytest.raises(AlreadyExists):
        _submit(s, key="k1", req={"a": 2})
    t3, d3 = _submit(s, key="k1", req={"a": 1}, who="other")  # keys are per caller
    assert not d3 and t3["task_id"] != t1["task_id"]
    with pytest.raises(ResourceExhausted):
        _submit(s, max_queued=2)
    assert len(s.queued_ids()) == 2
    assert s.queue_position(t3["task_id"]) == 1
    s.close()


def test_list_pages_newest_first(tmp_path: Path) -> None:
    s = Store(tmp_path)
    ids = [_submit(s, max_queued=100)[0]["task_id"] for _ in range(7)]
    page, nxt = s.list_tasks(limit=3)
    assert [t["task_id"] for t in page] == ids[::-1][:3] and nxt is not None
    page2, nxt2 = s.list_tasks(limit=3, before_seq=nxt)
    assert [t["task_id"] for t in page2] == ids[::-1][3:6]
    page3, nxt3 = s.list_tasks(limit=3, before_seq=nxt2)
    assert [t["task_id"] for t in page3] == ids[:1] and nxt3 is None
    assert s.list_tasks(states=["RUNNING"])[0] == []
    s.close()


def test_one_server_per_data_dir(tmp_path: Path) -> None:
    s = Store(tmp_path)
    with pytest.raises(NotReady, match="another dream2flow server"):
        Store(tmp_path)
    s.close()
    Store(tmp_path).close()  # released on close


def test_upload_records_expire(tmp_path: Path) -> None:
    s = Store(tmp_path)
    uid = "u_" + "1" * 20
    s.upload_path(uid).write_bytes(b"abc")
    s.add_upload(upload_id=uid, owner="op", purpose="VIDEO", container="MP4", size_bytes=3, sha256="0" * 64,
                 filename="v.mp4", info={"num_frames": 2})
    assert s.get_upload(uid)["info"] == {"num_frames": 2} and s.uploads_total_bytes() == 3
    (tmp_path / "uploads" / "u_2.part").write_bytes(b"partial")
    assert s.remove_partial_uploads() == 1
    assert s.delete_expired_uploads(ttl_s=3600) == 0
    assert s.delete_expired_uploads(ttl_s=-1) == 1
    with pytest.raises(NotFound):
        s.get_upload(uid)
    assert not s.upload_path(uid).exists()
    with pytest.raises(NotFound):  # ids are checked before any path is built
        s.get_upload("../../etc/passwd")
    s.close()


def test_schema_1_database_is_migrated(tmp_path: Path) -> None:
    """A data directory written by the schema-1 server opens: columns are added, nothing is lost."""
    s = Store(tmp_path, lock=False)
    t, _ = s.create_task(submitted_by="op", request={"x": 1}, request_hash="h", idempotency_key=None, max_queued=5)
    s.close()
    db = sqlite3.connect(tmp_path / "dream2flow.sqlite")
    db.execute("DROP INDEX uploads_sha")
    db.execute("ALTER TABLE tasks DROP COLUMN outcome_json")
    db.execute("ALTER TABLE uploads DROP COLUMN last_used_s")
    db.execute("DROP TABLE upload_parts")
    db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    db.commit()
    db.close()
    s = Store(tmp_path, lock=False)
    try:
        assert s.get_task(t["task_id"])["outcome"] == {}
        s.transition(t["task_id"], "RUNNING", "started")
        done = s.transition(t["task_id"], "SUCCEEDED", "done", outcome={"verdict": "NOT_CHECKED"})
        assert done["outcome"] == {"verdict": "NOT_CHECKED"}
        assert s._query("SELECT value FROM meta WHERE key='schema_version'")[0][0] == "2"
        assert s.list_parts() == [] and s.integrity_check() == "ok"
    finally:
        s.close()
