"""Acceptance 3: SIGKILL the server (a real `dream2flow serve` process) while a task runs, start
it again: the task is INTERRUPTED with its history intact, the queue is preserved, and nothing
runs (no motion, no fetch) until an operator calls Reset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from drip_server import DripServer

from dream2flow.service import client as C
from dream2flow.service.testing import OPERATOR_TOKEN, write_test_depth
from dream2flow.v1 import robot_pb2, task_pb2

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses POSIX signals")


@pytest.fixture
def drip() -> Iterator[DripServer]:
    d = DripServer()
    yield d
    d.close()


def write_config(tmp_path: Path, extra: str = "", robot_extra: str = "") -> tuple[Path, Path]:
    """An insecure loopback service with one operator token, a mock camera and the kinematic robot;
    returns (data_dir, service.toml)."""
    data = tmp_path / "data"
    cfg = tmp_path / "service.toml"
    cfg.write_text(f"""
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
insecure = true
[[auth.tokens]]
name = "op"
role = "operator"
token = "{OPERATOR_TOKEN}"
[camera]
type = "mock"
[robot]
backend = "kinematic"
{robot_extra}{extra}""")
    return data, cfg


def start_server(config: Path, log: Path, module: str = "dream2flow.cli") -> tuple[subprocess.Popen[bytes], str]:
    """``dream2flow serve --config`` (or the test launcher with the loop-only pipeline)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = ["serve", "--config", str(config)] if module == "dream2flow.cli" else [str(config), "30"]
    proc = subprocess.Popen([sys.executable, "-m", module, *argv],
                            stdout=subprocess.PIPE, stderr=open(log, "ab"), env=env)
    t_end = time.monotonic() + 120
    assert proc.stdout is not None
    while time.monotonic() < t_end:
        line = proc.stdout.readline().decode()
        if not line:
            break
        if "listening on" in line:
            addr = line.split("listening on ", 1)[1].split(" ", 1)[0]
            return proc, addr
    proc.kill()
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


def test_sigkill_during_run_then_restart(tmp_path: Path, drip: DripServer) -> None:
    data, cfg = write_config(tmp_path, """[video_sources]
read_timeout_s = 30.0
retries = 0
url_allowed_networks = ["127.0.0.1/32"]  # the test's own HTTP server (loopback is refused by default)
""")
    log = tmp_path / "server.log"
    depth = write_test_depth(tmp_path / "d.npy")
    box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)
    proc, addr = start_server(cfg, log)
    try:
        with C.connect(addr, token=OPERATOR_TOKEN, insecure=True) as conn:
            dep = C.upload_file(conn, depth, "VIDEO_DEPTH").upload_id
            submit = lambda url: C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(  # noqa: E731
                instruction="put the bread in the bowl", box=box, video_url=url, video_depth_upload_id=dep)).task
            running = submit(f"{drip.base}/drip.mp4").task_id
            queued = [submit(f"{drip.base}/missing.mp4").task_id for _ in range(2)]
            before: list[task_pb2.TaskEvent] = []
            for ev in C.watch(conn, running):
                before.append(ev)
                if ev.stage == "fetch" and C.KIND_NAMES[ev.kind] == "STAGE_STARTED":
                    break
            t_end = time.monotonic() + 30
            while drip.drip_requests == 0:
                assert time.monotonic() < t_end
                time.sleep(0.05)
            time.sleep(0.3)  # bytes are flowing: the task is mid-run
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    drip.stop.set()  # the old connection dies with the server; new requests would be counted
    requests_at_kill = drip.drip_requests

    proc, addr = start_server(cfg, log)
    try:
        with C.connect(addr, token=OPERATOR_TOKEN, insecure=True) as conn:
            t = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=running)).task
            assert C.STATE_NAMES[t.state] == "INTERRUPTED" and t.error_code == "ABORTED"
            history = list(C.watch(conn, running))  # ends: the task is terminal
            assert history[:len(before)] == before  # nothing recorded before the kill was lost
            assert [e.sequence for e in history] == list(range(1, len(history) + 1))
            assert C.STATE_NAMES[history[-1].state] == "INTERRUPTED"
            st = C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest()).state
            assert st.mode == robot_pb2.MOTION_MODE_HELD and st.queued_tasks == 2 and not st.running_task_id
            time.sleep(1.5)  # nothing starts by itself
            for tid in queued:
                q = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=tid)).task
                assert C.STATE_NAMES[q.state] == "QUEUED"
            st = C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest()).state
            assert st.motion_commands_sent == 0 and not st.running_task_id
            assert drip.drip_requests == requests_at_kill  # the interrupted fetch was not resumed
            listed = C.call(conn, conn.tasks.ListTasks, task_pb2.ListTasksRequest()).tasks
            assert {x.task_id for x in listed} == {running, *queued}
            # The operator re-arms: the preserved queue runs, in order (these fail fast: 404 videos).
            C.call(conn, conn.robot.Reset, robot_pb2.ResetRequest())
            for tid in queued:
                for _ in C.watch(conn, tid):
                    pass
                q = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=tid)).task
                assert (C.STATE_NAMES[q.state], q.failed_stage) == ("FAILED", "fetch")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # The audit trail of the killed server survived, and the database is sound.
    import sqlite3

    db = sqlite3.connect(data / "dream2flow.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rpcs = [r[0] for r in db.execute("SELECT rpc FROM audit WHERE code='OK' ORDER BY id")]
        assert rpcs[:4] == ["UploadVideo", "SubmitTask", "SubmitTask", "SubmitTask"]
        assert "Reset" in rpcs
    finally:
        db.close()


def test_sigkill_during_motion_then_restart(tmp_path: Path) -> None:
    """Killed while the real control loop streams joint commands (a 30 s move, paced in real time);
    after the restart nothing moves: the command counter stays at zero, the task is INTERRUPTED."""
    from dream2flow.service.testing import write_test_video

    data, cfg = write_config(tmp_path, robot_extra="realtime = true\n")
    log = tmp_path / "server.log"
    video = write_test_video(tmp_path / "v.mp4")
    depth = write_test_depth(tmp_path / "d.npy")
    box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)
    proc, addr = start_server(cfg, log, module="dream2flow.service.testing")
    try:
        with C.connect(addr, token=OPERATOR_TOKEN, insecure=True) as conn:
            vid = C.upload_file(conn, video).upload_id
            dep = C.upload_file(conn, depth, "VIDEO_DEPTH").upload_id
            req = task_pb2.SubmitTaskRequest(instruction="move", box=box, video_upload_id=vid,
                                             video_depth_upload_id=dep)
            moving = C.call(conn, conn.tasks.SubmitTask, req).task.task_id
            waiting = C.call(conn, conn.tasks.SubmitTask, req).task.task_id
            for ev in C.watch(conn, moving):
                if ev.stage == "execute" and C.KIND_NAMES[ev.kind] == "PROGRESS":
                    break
            time.sleep(0.5)
            st = C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest()).state
            assert st.running_task_id == moving and st.motion_commands_sent > 10  # it is moving
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()

    proc, addr = start_server(cfg, log, module="dream2flow.service.testing")  # could move, must not
    try:
        with C.connect(addr, token=OPERATOR_TOKEN, insecure=True) as conn:
            t = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=moving)).task
            assert C.STATE_NAMES[t.state] == "INTERRUPTED"
            stages = [e.stage for e in C.watch(conn, moving) if C.KIND_NAMES[e.kind] == "STAGE_STARTED"]
            assert stages == ["observe", "fetch", "decode", "execute"]
            time.sleep(1.5)
            st = C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest()).state
            assert st.mode == robot_pb2.MOTION_MODE_HELD and st.motion_commands_sent == 0 and not st.running_task_id
            w = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=waiting)).task
            assert C.STATE_NAMES[w.state] == "QUEUED"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
