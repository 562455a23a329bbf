"""Simulation speed: render ms/frame (RGB with/without the robot, depth, segmentation), physics
steps/s (arm holding, arm moving, arm + grasped object), video generation s/frame.

Prints one JSON line per measurement. Ratios: depth and segmentation vs RGB rendering in the
same process; physics vs real time (steps/s x timestep). Run: ``MUJOCO_GL=egl python
bench/sim_bench.py [--quick] [--task T]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")


def _emit(**kw: object) -> None:
    print(json.dumps(kw, sort_keys=True), flush=True)


def _time_it(fn, n: int) -> float:  # noqa: ANN001
    fn()  # warm-up (GL context, texture upload)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    ap.add_argument("--task", default="open_drawer")
    args = ap.parse_args()
    import mujoco
    import numpy as np

    from dream2flow.sim import make_env

    n_render = 3 if args.quick else 30
    n_steps = 500 if args.quick else 20000
    common = {"bench": "sim", "task": args.task, "mujoco": mujoco.__version__, "gl": os.environ.get("MUJOCO_GL"),
              "machine": platform.machine(), "quick": args.quick}

    t0 = time.perf_counter()
    env = make_env(args.task, 0)
    _emit(**common, measure="make_env_s", value=round(time.perf_counter() - t0, 4), unit="s")

    rgb_ms = 1000 * _time_it(lambda: env.render_rgb(robot=True), n_render)
    _emit(**common, measure="render_rgb_ms", value=round(rgb_ms, 2), unit="ms/frame", size="640x480", robot=True)
    rgb0_ms = 1000 * _time_it(lambda: env.render_rgb(robot=False), n_render)
    _emit(**common, measure="render_rgb_ms", value=round(rgb0_ms, 2), unit="ms/frame", size="640x480", robot=False,
          ratio_vs_robot=round(rgb0_ms / rgb_ms, 3))
    d_ms = 1000 * _time_it(lambda: env.render_depth(), n_render)
    _emit(**common, measure="render_depth_ms", value=round(d_ms, 2), unit="ms/frame", ratio_vs_rgb=round(d_ms / rgb_ms, 3))
    s_ms = 1000 * _time_it(lambda: env.render_segmentation(), n_render)
    _emit(**common, measure="render_segmentation_ms", value=round(s_ms, 2), unit="ms/frame",
          ratio_vs_rgb=round(s_ms / rgb_ms, 3))

    ts = env.model.opt.timestep
    for label, moving in (("hold", False), ("moving", True)):
        env.reset()
        b = env.robot_backend()
        b.connect()
        q = env.q_home.copy()
        k_per_cmd = 5  # 100 Hz commands at 500 Hz physics
        t0 = time.perf_counter()
        for k in range(n_steps // k_per_cmd):
            if moving:
                q = env.q_home + 0.3 * np.sin(2 * np.pi * 0.5 * k * k_per_cmd * ts) * np.ones(7) * [1, 0.5, 1, 0.5, 1, 0.5, 1]
            b.command_joint_positions(q)
            b.step(k_per_cmd * ts)
        dt = time.perf_counter() - t0
        sps = n_steps / dt
        _emit(**common, measure="physics_steps_per_s", arm=label, value=round(sps, 1), unit="steps/s",
              timestep_s=ts, realtime_factor=round(sps * ts, 2))
    raw = mujoco.MjData(env.model)
    raw.qpos[:] = env.data.qpos
    t0 = time.perf_counter()
    for _ in range(n_steps):
        mujoco.mj_step(env.model, raw)
    sps_raw = n_steps / (time.perf_counter() - t0)
    _emit(**common, measure="physics_steps_per_s", arm="raw_mj_step", value=round(sps_raw, 1), unit="steps/s",
          timestep_s=ts, realtime_factor=round(sps_raw * ts, 2))

    frames = 8 if args.quick else 48
    t0 = time.perf_counter()
    env.generate_video("clean", num_frames=frames)
    dt = time.perf_counter() - t0
    _emit(**common, measure="generate_video_s", value=round(dt, 3), unit="s", frames=frames,
          per_frame_ms=round(1000 * dt / frames, 1), ratio_vs_rgb_plus_depth=round(1000 * dt / frames / (rgb0_ms + d_ms), 3))
    env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
