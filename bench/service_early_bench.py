#!/usr/bin/env python3
"""The service's per-task stage times with and without early perception (issue 21).

With ``[perception] early = true`` the task runner starts I0's segmentation and the grasp proposals
right after ``observe``, while the video is fetched / generated / decoded; with ``false`` the flow
and plan stages compute them after decoding. This runs the same simulated task on two in-process
servers (``service.testing.ServiceThread``: real gRPC, store, runner, pipeline; simulated camera,
kinematic backend, dry run, the planner warmed at start-up), alternating between them, and prints
one JSON line per task and a summary line per (task, source) with medians and the ratio on / off of
``video_to_plan_s`` = decode + flow + plan (from the moment the video file is on the server to the
plan) -- the time a robot waits once its video exists.

Video sources: ``upload`` (uploaded before the task: I0 is observed when the task starts, so the
early work overlaps decoding only) and ``generate`` (a local stand-in for the cloud video model,
answering ``--generator-delay-s`` after it is asked -- I0 is sent to it, the early work overlaps
the wait). Inputs are **privileged**: the simulator's object box and relative video depth are
given with the task (the classical perception has no detector or video-depth model).

Usage: python bench/service_early_bench.py [--tasks open_drawer,open_oven,bread_in_bowl]
       [--repeat 5] [--sources upload,generate] [--generator-delay-s 1.0] [--frames 48]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from loopback_http import LoopbackHTTP  # noqa: E402  (the same loopback server as the tests)

os.environ.setdefault("MUJOCO_GL", "egl")

STAGES = ("observe_s", "fetch_s", "decode_s", "flow_s", "plan_s", "execute_s")
EARLY = ("early_segment_s", "early_grasps_s", "flow_segment_wait_s", "grasps_prefetched")


def emit(**row: Any) -> None:
    print(json.dumps({"bench": "service_early", **row}), flush=True)


class Generator(LoopbackHTTP):
    """Loopback stand-in for the video-generation endpoint: POST /gen/jobs -> a job that succeeds
    ``delay_s`` after it was asked, then serves the pre-rendered video and its relative depth."""

    def __init__(self, video: bytes, depth: bytes, delay_s: float) -> None:
        from http.server import BaseHTTPRequestHandler

        gen = self
        self.files = {"/video.mp4": video, "/depth.npy": depth}
        self.asked_at = 0.0
        self.delay_s = delay_s

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                gen.asked_at = time.monotonic()
                self._send(202, json.dumps({"job_id": "job"}).encode())

            def do_GET(self) -> None:  # noqa: N802
                if self.path in gen.files:
                    return self._send(200, gen.files[self.path], "application/octet-stream")
                if time.monotonic() - gen.asked_at < gen.delay_s:
                    return self._send(200, json.dumps({"status": "running"}).encode())
                return self._send(200, json.dumps({"status": "succeeded", "video_url": "/video.mp4",
                                                   "video_depth_url": "/depth.npy"}).encode())

        super().__init__(Handler)
        self.url = f"{self.base}/gen"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="open_drawer,open_oven,bread_in_bowl")
    ap.add_argument("--sources", default="upload,generate")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--generator-delay-s", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 1 <= args.repeat <= 100:
        ap.error("--repeat must be in [1, 100]")
    if not 0.0 <= args.generator_delay_s <= 600.0:
        ap.error("--generator-delay-s must be in [0, 600]")

    from dream2flow import sim
    from dream2flow.service import client as C
    from dream2flow.service.testing import OPERATOR_TOKEN, ServiceThread, make_config
    from dream2flow.v1 import task_pb2
    from dream2flow.video.encode import write_video

    sources = [s for s in args.sources.split(",") if s]
    tmp = Path(tempfile.mkdtemp(prefix="d2f-early-bench-"))
    env_info = {"cpus": os.cpu_count(), "python": platform.python_version(), "inputs": "privileged",
                "frames": args.frames, "points": args.points, "generator_delay_s": args.generator_delay_s}
    for task in [t for t in args.tasks.split(",") if t]:
        env = sim.make_env(task, args.seed)
        gen = env.generate_video("clean", num_frames=args.frames, seed=args.seed)
        vpath, dpath = tmp / f"{task}.mp4", tmp / f"{task}_depth.npy"
        write_video(vpath, gen.video.frames, gen.video.fps)
        np.save(dpath, np.asarray(gen.rel_depth, dtype=np.float32), allow_pickle=False)
        x0, y0, x1, y1 = (int(v) for v in env.object_box())
        box = task_pb2.BoxPx(x0_px=x0, y0_px=y0, x1_px=x1, y1_px=y1)
        generator = Generator(vpath.read_bytes(), dpath.read_bytes(), args.generator_delay_s)
        servers: dict[bool, Any] = {}
        try:
            for early in (True, False):
                cfg = make_config(tmp / f"{task}_{int(early)}", camera={"type": "sim", "task": task, "seed": args.seed},
                                  robot={"backend": "kinematic"}, server={"warm_up": True},
                                  perception={"config": "classical", "early": early},
                                  video_sources={"generator_url": generator.url, "generator_poll_interval_s": 0.05,
                                                 "url_allowed_networks": ["127.0.0.1/32"]})
                st = ServiceThread(cfg).start()
                conn = C.connect(st.address, token=OPERATOR_TOKEN, insecure=True)
                servers[early] = (st, conn)
            rows: dict[tuple[str, bool], list[dict[str, float]]] = {}
            for r in range(args.repeat + 1):  # round 0 warms both servers (first-task costs), not counted
                for source in sources:
                    for early in ((True, False) if r % 2 == 0 else (False, True)):
                        st, conn = servers[early]
                        src: dict[str, Any] = {}
                        if source == "upload":
                            src = {"video_upload_id": C.upload_file(conn, vpath).upload_id,
                                   "video_depth_upload_id": C.upload_file(conn, dpath, "VIDEO_DEPTH").upload_id}
                        else:
                            src = {"generate": task_pb2.GenerateVideo(num_frames=args.frames)}
                        t = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
                            instruction=env.instruction, object_prompt=env.object_prompt, box=box,
                            options=task_pb2.TaskOptions(seed=args.seed, num_points=args.points, dry_run=True),
                            **src)).task
                        for _ in C.watch(conn, t.task_id):
                            pass
                        done = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=t.task_id)).task
                        if C.STATE_NAMES[done.state] != "SUCCEEDED":
                            raise SystemExit(f"{task} {source} early={early}: {done.failed_stage}: {done.error_message}")
                        m = dict(done.metrics)
                        m["video_to_plan_s"] = m["decode_s"] + m["flow_s"] + m["plan_s"]
                        m["observe_to_plan_s"] = sum(m[k] for k in ("observe_s", "fetch_s", "decode_s", "flow_s",
                                                                      "plan_s"))
                        if r > 0:
                            rows.setdefault((source, early), []).append(m)
                            emit(task=task, source=source, early=early, round=r, load_avg_1min=os.getloadavg()[0],
                                 **{k: round(m[k], 4) for k in STAGES + ("video_to_plan_s", "observe_to_plan_s")
                                    + EARLY if k in m})
            for source in sources:
                med = {e: {k: round(statistics.median(x[k] for x in rows[(source, e)]), 4)
                           for k in STAGES + ("video_to_plan_s", "observe_to_plan_s") + EARLY
                           if all(k in x for x in rows[(source, e)])} for e in (True, False)}
                emit(summary=True, task=task, source=source, repeat=args.repeat, early_on=med[True],
                     early_off=med[False], ratio_video_to_plan=round(med[True]["video_to_plan_s"]
                                                                     / med[False]["video_to_plan_s"], 3),
                     load_avg_1min=os.getloadavg()[0], **env_info)
        finally:
            for st, conn in servers.values():
                conn.close()
                st.stop()
            generator.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
