"""Execution-video benchmark (issue 15): what the demo's ``execution.mp4`` costs per frame --
rendering the scene (the baseline, measured in the same process), drawing the overlay
(``control.pictures.annotate_execution``) and H.264 encoding (``video.encode.write_video``).
The overlay and the encoder must stay small next to rendering (issue 21 budgets the demo).

Prints JSON lines: seconds per frame and the ratio to rendering.

    MUJOCO_GL=egl .venv/bin/python bench/video_bench.py [--frames 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--task", default="open_drawer")
    a = ap.parse_args()

    from dream2flow import sim
    from dream2flow.control.loop import execute_plan
    from dream2flow.control.pictures import annotate_execution
    from dream2flow.types import Plan
    from dream2flow.video.encode import write_video

    env = sim.make_env(a.task, 0)
    backend = env.robot_backend()
    H, rate = 60, 100.0
    s = np.linspace(0, 1, H)[:, None]
    q = env.q_home + np.sin(np.pi * s) ** 2 * np.array([0.3, 0.2, -0.2, 0.2, 0.3, 0.2, 0.3])
    pts = np.random.default_rng(0).normal([0.5, 0.0, 0.2], 0.05, size=(256, 3))
    plan = Plan(q=q, dt_s=0.1, gripper=(s[:, 0] > 0.5).astype(np.float32), predicted_points=np.repeat(pts[None], H, 0))
    frames, ticks = [], []

    def on_tick(k: int, t_s: float, b) -> None:
        if k % 10 == 0 and len(frames) < a.frames:
            t0 = time.perf_counter()
            frames.append(env.render_rgb(shadows=False))  # as the demo renders them
            render_s.append(time.perf_counter() - t0)
            ticks.append(k)

    render_s: list[float] = []
    res = execute_plan(plan, backend, rate_hz=rate, on_tick=on_tick)
    n = len(frames)
    cam = env.camera_model()
    overlay, encode = [], []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            drawn = annotate_execution(frames, ticks, rate_hz=rate, result=res, plan=plan, camera=cam,
                                       outcome="SUCCESS: bench", outcome_ok=True)
            overlay.append((time.perf_counter() - t0) / n)
            t0 = time.perf_counter()
            write_video(Path(d) / "e.mp4", drawn, 10.0)
            encode.append((time.perf_counter() - t0) / n)
    render = statistics.median(render_s)
    for name, xs in (("render", [render]), ("overlay", overlay), ("h264_encode", encode)):
        v = statistics.median(xs)
        print(json.dumps({"bench": "execution_video", "part": name, "frames": n, "s_per_frame": round(v, 5),
                          "ratio_to_render": round(v / render, 4)}), flush=True)


if __name__ == "__main__":
    main()
