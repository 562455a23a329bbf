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

TOKEN = "bench-operator-token-0123456789"


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
                C.upload_file(conn, depth, "VIDEO_DEPTH", chunk_bytes=chunk, sha256_hex=sha)
                dt = time.perf_counter() - t0
                mbs = len(data) / dt / 1e6
                emit(name="upload_mb_s", value=round(mbs, 1), unit="MB/s", chunk_bytes=chunk, bytes=len(data),
                     baseline="local write+sha256+fsync", baseline_value=round(base, 1), ratio=round(mbs / base, 3),
                     **common)
            video = write_test_video(tmp / "v.mp4", frames=48, width=640, height=480)
            vt = timed(lambda: C.upload_file(conn, video, "VIDEO"), 3 if args.quick else 10)
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
