#!/usr/bin/env python3
"""Operator-service benchmark: upload throughput and RPC latency on loopback.

Starts a real ``dream2flow serve`` process (plaintext, loopback, mock camera, kinematic
backend, a temporary data directory) and prints one JSON line per measurement:

- ``upload_mb_s``: UploadVideo of a relative-depth .npy (no decode on the server, so this is
  transport + sha256 + disk + fsync) per chunk size; baseline: writing + hashing + fsyncing the
  same bytes in this process (``ratio`` = upload / baseline).
- ``video_upload_s``: a 48-frame 640x480 MP4, including the server's decode probe.
- ``rpc_latency_ms``: p50/p90/p99 of sequential unary calls (GetTask, ListTasks, GetRobotState,
  SubmitTask); baseline: grpc.health Check (no auth, no store) → ``ratio`` of the p50s.
- ``rpc_concurrent``: 16 clients calling GetTask together: throughput and latency percentiles.
- ``estop_latency_ms`` (issue 16): EmergencyStop round trips while a task runs (a fetch that
  trickles), idle vs. with 200 unauthenticated grpc.health Watch streams and 64 viewer
  WatchTask streams open (``ratio`` = saturated p50 / idle p50); also GetRobotState saturated.
- ``upload_resume``: an upload cut at 50 % and resumed: bytes sent on resume, seconds, against
  a full upload; ``upload_dedup_ms``: naming a file the server already has (GetUpload by sha256).
- ``artifact_fetch_mb_s``: GetArtifact of a 64 MB artifact (chunks + sha256, the client writes
  and checks) against reading + hashing the file locally; and a fetch resumed at 50 %.

Usage: python bench/service_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from drip_server import DripServer  # noqa: E402  (the same never-ending download as the restart test)

TOKEN = "bench-operator-token-0123456789"
VIEWER = "bench-viewer-token-0123456789"


def emit(**row: Any) -> None:
    row = {"bench": "service", **row}
    print(json.dumps(row), flush=True)


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p90": round(float(np.percentile(a, 90)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "n": int(a.size)}


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    cfg = tmp / "service.toml"
    cfg.write_text(f"""
[server]
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
insecure = true
[[auth.tokens]]
name = "bench"
role = "operator"
token = "{TOKEN}"
[[auth.tokens]]
name = "viewer"
role = "viewer"
token = "{VIEWER}"
[camera]
type = "mock"
[robot]
backend = "kinematic"
[video_sources]
retries = 0
connect_timeout_s = 0.5
url_allowed_networks = ["127.0.0.1/32"]  # the bench's fail-fast URL (nothing listens on port 9)
[limits]
max_queued_tasks = 64
max_depth_bytes = 1073741824
max_upload_store_bytes = 8589934592
max_unauthenticated_streams = 256
max_streams_per_peer = 512
max_streams_per_token = 128
max_watchers = 128
""")
    proc = subprocess.Popen([sys.executable, "-m", "dream2flow.cli", "serve", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=open(tmp / "server.log", "wb"),
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end:
        line = proc.stdout.readline().decode()
        if not line:
            break
        if "listening on" in line:
            return proc, line.split("listening on ", 1)[1].split(" ", 1)[0]
    proc.kill()
    raise SystemExit(f"server did not start: {(tmp / 'server.log').read_text()[-2000:]}")


def local_write_mb_s(path: Path, data: bytes, chunk: int) -> float:
    """Baseline: what the server minimally does per byte (write, sha256, fsync), in this process."""
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(0, len(data), chunk):
            block = data[i:i + chunk]
            h.update(block)
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return len(data) / dt / 1e6


def bench_estop(addr: str, conn: Any, dep_sha: str, rounds: int, common: dict[str, Any]) -> None:
    """EmergencyStop latency while a task runs, idle vs. saturated (200 health + 64 watch streams)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from dream2flow.service import client as C
    from dream2flow.v1 import robot_pb2, task_pb2, task_pb2_grpc

    drip = DripServer(max_seconds=200.0)
    opts = [("grpc.use_local_subchannel_pool", 1)]
    op_md = (("authorization", f"Bearer {TOKEN}"),)
    vmd = (("authorization", f"Bearer {VIEWER}"),)
    box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)
    health_chs = [grpc.insecure_channel(addr, options=opts) for _ in range(4)]
    viewer_ch = grpc.insecure_channel(addr, options=opts)
    viewer = task_pb2_grpc.TaskServiceStub(viewer_ch)
    open_health: list[Any] = []
    results: dict[str, list[float]] = {"idle": [], "saturated": []}
    state_ms: list[float] = []
    try:
        for mode in ("idle", "saturated"):
            if mode == "saturated":
                for i in range(200):
                    call = health_pb2_grpc.HealthStub(health_chs[i % 4]).Watch(health_pb2.HealthCheckRequest(),
                                                                              timeout=600)
                    next(call)
                    open_health.append(call)
            for _ in range(rounds):
                tid = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
                    instruction="bench", box=box, video_url=f"{drip.base}/drip.mp4", video_depth_sha256_hex=dep_sha)).task.task_id
                for e in C.watch(conn, tid):
                    if e.stage == "fetch" and e.kind == task_pb2.EVENT_KIND_STAGE_STARTED:
                        break
                watches = []
                if mode == "saturated":
                    for _ in range(64):
                        w = viewer.WatchTask(task_pb2.WatchTaskRequest(task_id=tid), metadata=vmd, timeout=600)
                        next(w)
                        watches.append(w)
                    state_ms += timed(lambda: conn.robot.GetRobotState(robot_pb2.GetRobotStateRequest(),
                                                                       metadata=op_md, timeout=10), 5)
                t0 = time.perf_counter()
                r = conn.robot.EmergencyStop(robot_pb2.EmergencyStopRequest(reason="bench"), metadata=op_md,
                                             timeout=10)
                results[mode].append((time.perf_counter() - t0) * 1e3)
                assert r.stopped_task_id == tid
                for w in watches:
                    w.cancel()
                for _ in range(200):  # Reset is refused while the stopped task winds down
                    try:
                        conn.robot.Reset(robot_pb2.ResetRequest(), metadata=op_md, timeout=10)
                        break
                    except grpc.RpcError:
                        time.sleep(0.02)
    finally:
        for c in open_health:
            c.cancel()
        for ch in (*health_chs, viewer_ch):
            ch.close()
        drip.close()
    idle, sat = percentiles(results["idle"]), percentiles(results["saturated"])
    emit(name="estop_latency_ms", load="idle (a task running)", unit="ms", **idle, **common)
    emit(name="estop_latency_ms", load="200 health + 64 watch streams open, a task running", unit="ms", **sat,
         baseline="idle p50", ratio=round(sat["p50"] / idle["p50"], 2), **common)
    emit(name="rpc_latency_ms", rpc="GetRobotState", load="200 health + 64 watch streams open", unit="ms",
         **percentiles(state_ms), **common)


def bench_resume(conn: Any, depth: Path, common: dict[str, Any]) -> None:
    """An upload cut at 50 % and resumed, against a full upload; naming a file the server has."""
    from dream2flow.service import client as C
    from dream2flow.v1 import task_pb2

    sha = C.sha256_file(depth)
    size = depth.stat().st_size
    chunk = 1024 * 1024
    have = C.find_upload(conn, sha, "VIDEO_DEPTH")
    if have is not None and have.upload_id:  # uploaded earlier in this run: measure a real upload
        conn.tasks.DeleteUpload(task_pb2.DeleteUploadRequest(upload_id=have.upload_id), metadata=conn.metadata)
    t0 = time.perf_counter()
    full = C.upload_file(conn, depth, "VIDEO_DEPTH", chunk_bytes=chunk, sha256_hex=sha)
    full_s = time.perf_counter() - t0
    conn.tasks.DeleteUpload(task_pb2.DeleteUploadRequest(upload_id=full.upload_id), metadata=conn.metadata)
    half = size // 2 // chunk * chunk
    sent = [0]
    reached = threading.Event()

    def cut() -> Any:
        for r in C.upload_requests(depth, "VIDEO_DEPTH", chunk_bytes=chunk, sha256_hex=sha):
            if r.HasField("chunk"):
                if sent[0] >= half:
                    reached.set()
                    time.sleep(30)
                    return
                sent[0] += len(r.chunk)
            yield r

    fut = conn.tasks.UploadVideo.future(cut(), metadata=conn.metadata, timeout=120)
    reached.wait(60)
    while True:
        u = C.find_upload(conn, sha, "VIDEO_DEPTH")
        if u is not None and u.received_bytes >= half:
            break
        time.sleep(0.01)
    fut.cancel()
    time.sleep(0.2)
    t0 = time.perf_counter()
    resumed = C.upload_file(conn, depth, "VIDEO_DEPTH", chunk_bytes=chunk, sha256_hex=sha)
    resume_s = time.perf_counter() - t0
    emit(name="upload_resume", unit="s", value=round(resume_s, 3), bytes=size, kept_bytes=resumed.resumed_from_bytes,
         sent_on_resume_bytes=resumed.received_bytes, baseline="full upload s", baseline_value=round(full_s, 3),
         ratio=round(resume_s / full_s, 3), **common)
    t0 = time.perf_counter()
    again = C.upload_file(conn, depth, "VIDEO_DEPTH", chunk_bytes=chunk, sha256_hex=sha)
    emit(name="upload_dedup_ms", unit="ms", value=round((time.perf_counter() - t0) * 1e3, 2), bytes=size,
         deduplicated=again.deduplicated, baseline="full upload s", baseline_value=round(full_s, 3), **common)


def bench_fetch(conn: Any, tmp: Path, video: Path, big_depth: Path, common: dict[str, Any]) -> None:
    """GetArtifact of a finished task's 64 MB artifact, and a fetch resumed at 50 %."""
    from dream2flow.service import client as C
    from dream2flow.v1 import task_pb2

    box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)
    # The depth has the video's frame count but another aspect: the task fails at decode, after its
    # fetch stage recorded the video and the 64 MB depth as artifacts (a finished task, quickly).
    t = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
        instruction="bench", box=box, video_upload_id=C.upload_file(conn, video).upload_id,
        video_depth_upload_id=C.upload_file(conn, big_depth, "VIDEO_DEPTH").upload_id)).task
    for _ in C.watch(conn, t.task_id):
        pass
    art = next(a for a in C.list_artifacts(conn, t.task_id) if a.name == "video_depth")
    out = tmp / "fetched"
    t0 = time.perf_counter()
    f = C.fetch_artifact(conn, t.task_id, art, out)
    dt = time.perf_counter() - t0
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(big_depth, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    base = art.size_bytes / (time.perf_counter() - t0) / 1e6
    mbs = art.size_bytes / dt / 1e6
    emit(name="artifact_fetch_mb_s", unit="MB/s", value=round(mbs, 1), bytes=art.size_bytes, chunk_bytes=1024 * 1024,
         baseline="local read+sha256", baseline_value=round(base, 1), ratio=round(mbs / base, 3), **common)
    assert f.sha256_hex == art.sha256_hex
    f.path.unlink()

    class Cut(Exception):
        pass

    def stop_half(done: int, size: int) -> None:
        if done >= size // 2:
            raise Cut()

    try:
        C.fetch_artifact(conn, t.task_id, art, out, on_progress=stop_half)
    except Cut:
        pass
    t0 = time.perf_counter()
    f = C.fetch_artifact(conn, t.task_id, art, out)
    emit(name="artifact_fetch_resume", unit="s", value=round(time.perf_counter() - t0, 3), bytes=art.size_bytes,
         resumed_from_bytes=f.resumed_from, received_bytes=f.received_bytes, baseline="full fetch s",
         baseline_value=round(dt, 3), **common)


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and counts (for the test suite)")
    args = ap.parse_args()
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from dream2flow.service import client as C
    from dream2flow.service.testing import write_test_video
    from dream2flow.v1 import robot_pb2, task_pb2

    size_mb = 8 if args.quick else 64
    n_calls = 30 if args.quick else 300
    conc_s = 2.0 if args.quick else 10.0
    common = {"quick": args.quick, "host": platform.node(), "cpus": os.cpu_count(), "server": "subprocess, loopback"}
    with tempfile.TemporaryDirectory(prefix="d2f-bench-") as td:
        tmp = Path(td)
        proc, addr = start_server(tmp)
        try:
            conn = C.connect(addr, token=TOKEN, insecure=True)
            # -- uploads ----------------------------------------------------------------------
            n = max(2, size_mb * 1024 * 1024 // 4 // (480 * 640))  # [T,480,640] float32 within the frame limit
            arr = np.random.default_rng(0).random((n, 480, 640), dtype=np.float32)
            depth = tmp / "depth.npy"
            np.save(depth, arr, allow_pickle=False)
            data = depth.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            for chunk in (64 * 1024, 256 * 1024, 1024 * 1024):
                base = local_write_mb_s(tmp / "baseline.bin", data, chunk)
                t0 = time.perf_counter()
                up = C.upload_file(conn, depth, "VIDEO_DEPTH", chunk_bytes=chunk, sha256_hex=sha)
                dt = time.perf_counter() - t0
                assert not up.deduplicated
                # the next size must really upload again (the server deduplicates by sha256)
                conn.tasks.DeleteUpload(task_pb2.DeleteUploadRequest(upload_id=up.upload_id), metadata=conn.metadata)
                mbs = len(data) / dt / 1e6
                emit(name="upload_mb_s", value=round(mbs, 1), unit="MB/s", chunk_bytes=chunk, bytes=len(data),
                     baseline="local write+sha256+fsync", baseline_value=round(base, 1), ratio=round(mbs / base, 3),
                     **common)
            video = write_test_video(tmp / "v.mp4", frames=48, width=640, height=480)

            def upload_video_fresh() -> None:
                up = C.upload_file(conn, video, "VIDEO")
                conn.tasks.DeleteUpload(task_pb2.DeleteUploadRequest(upload_id=up.upload_id), metadata=conn.metadata)

            vt = timed(upload_video_fresh, 3 if args.quick else 10)
            emit(name="video_upload_s", value=round(float(np.median(vt)) / 1e3, 4), unit="s",
                 bytes=video.stat().st_size, frames=48, size="640x480", note="includes the server's decode probe",
                 **common)
            # -- unary latency -----------------------------------------------------------------
            dep = C.upload_file(conn, depth, "VIDEO_DEPTH", chunk_bytes=1024 * 1024, sha256_hex=sha).upload_id
            box = task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260)

            def submit() -> Any:  # a task that fails fast at fetch (nothing listens on port 9)
                return C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
                    instruction="bench", box=box, video_url="http://127.0.0.1:9/v.mp4", video_depth_upload_id=dep))

            tid = submit().task.task_id
            health = health_pb2_grpc.HealthStub(conn.channel)
            base = percentiles(timed(lambda: health.Check(health_pb2.HealthCheckRequest(service="")), n_calls))
            emit(name="rpc_latency_ms", rpc="HealthCheck", unit="ms", **base, **common)
            calls = {
                "GetTask": lambda: C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=tid)),
                "ListTasks": lambda: C.call(conn, conn.tasks.ListTasks, task_pb2.ListTasksRequest(page_size=20)),
                "GetRobotState": lambda: C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest()),
            }
            for name, fn in calls.items():
                p = percentiles(timed(fn, n_calls))
                emit(name="rpc_latency_ms", rpc=name, unit="ms", **p, baseline="HealthCheck p50",
                     ratio=round(p["p50"] / base["p50"], 2), **common)
            sub_ms: list[float] = []
            for _ in range(10 if args.quick else 40):
                t0 = time.perf_counter()
                try:
                    submit()
                except Exception:  # queue full (back-pressure) is not a latency sample
                    time.sleep(0.2)
                    continue
                sub_ms.append((time.perf_counter() - t0) * 1e3)
            if sub_ms:
                p = percentiles(sub_ms)
                emit(name="rpc_latency_ms", rpc="SubmitTask", unit="ms", **p, baseline="HealthCheck p50",
                     ratio=round(p["p50"] / base["p50"], 2), **common)
            # -- concurrency -----------------------------------------------------------------
            lat: list[float] = []
            errors: dict[str, int] = {}
            lock = threading.Lock()
            stop = threading.Event()

            def worker() -> None:
                with grpc.insecure_channel(addr) as ch:
                    from dream2flow.v1 import task_pb2_grpc

                    stub = task_pb2_grpc.TaskServiceStub(ch)
                    md = (("authorization", f"Bearer {TOKEN}"),)
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        try:
                            stub.GetTask(task_pb2.GetTaskRequest(task_id=tid), metadata=md, timeout=30)
                        except grpc.RpcError as exc:
                            with lock:
                                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                            continue
                        with lock:
                            lat.append((time.perf_counter() - t0) * 1e3)

            threads = [threading.Thread(target=worker, daemon=True) for _ in range(16)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            time.sleep(conc_s)
            stop.set()
            for t in threads:
                t.join(30)
            dt = time.perf_counter() - t0
            emit(name="rpc_concurrent", rpc="GetTask", clients=16, seconds=round(dt, 2),
                 rpc_per_s=round(len(lat) / dt, 1), unit="ms", errors=errors, **percentiles(lat), **common)
            # -- issue 16: e-stop under saturation, resumable uploads, artifacts over the API ----
            while conn.robot.GetRobotState(robot_pb2.GetRobotStateRequest(), metadata=conn.metadata).state.queued_tasks:
                time.sleep(0.1)  # the fail-fast tasks above have drained
            bench_estop(addr, conn, sha, 3 if args.quick else 20, common)
            bench_resume(conn, depth, common)
            big = tmp / "odd_aspect_depth.npy"
            np.save(big, np.random.default_rng(1).random((n, 480, 500), dtype=np.float32), allow_pickle=False)
            fvideo = write_test_video(tmp / "fv.mp4", frames=n, width=160, height=120)
            bench_fetch(conn, tmp, fvideo, big, common)
            conn.close()
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
