"""Planner benchmark: JIT time and median solve time of the flow-following optimiser for
H in {30, 60} x n in {64, 256, 1024}, plus the first full plan after start-up (fresh process).
Prints one JSON line per measurement, with the ratio to PyRoki's reference numbers from issue 9
(measured on this 2-core CPU for a comparable 7-DOF pose-tracking trajectory: median ~100-150 ms
per solve at T=30, 0.5-1 s at T=60, 20-45 s of JIT before the first solve; midpoints used).

    .venv/bin/python bench/plan_bench.py [--quick] [--repeats N] [--cold] [--no-startup]

--cold uses an empty persistent compilation cache (a temporary D2F_CACHE_DIR), so the JIT
numbers include XLA compilation; without it a warm ~/.cache/dream2flow/jax may serve them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

PYROKI_SOLVE_MS = {30: 125.0, 60: 750.0}   # midpoints of the 100-150 ms and 0.5-1 s
PYROKI_JIT_S = 32.5                        # midpoint of 20-45 s


def _problem(H: int, n: int, seed: int = 0):
    """A reachable rigid-part motion: n points of a 6 cm part grasped at a downward TCP pose,
    lifted 12 cm and moved 25 cm sideways with a 30 deg turn (min-jerk timing), 50 % visible."""
    import numpy as np

    from dream2flow.config import load_robot_limits
    from dream2flow.planning.kinematics import fk_tcp_np
    from dream2flow.planning.solver import ik_batch

    rng = np.random.default_rng(seed)
    lim = load_robot_limits()
    T0 = fk_tcp_np(lim.q_ready)
    T0[:3, 3] = [0.5, -0.12, 0.2]
    q_start, pe, _ = ik_batch(T0[None], lim.q_ready[None])
    q_start = q_start[0]
    T0 = fk_tcp_np(q_start)
    X0 = T0[:3, 3] + rng.uniform(-0.03, 0.03, (n, 3))
    s = np.linspace(0, 1, H)
    s = s ** 3 * (10 - 15 * s + 6 * s ** 2)
    targets = np.zeros((H, n, 3))
    c = T0[:3, 3]
    for h in range(H):
        a = np.radians(30) * s[h]
        R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        targets[h] = (X0 - c) @ R.T + c + np.array([0.0, 0.25 * s[h], 0.12 * np.sin(np.pi * s[h])])
    vis = rng.random((H, n)) < 0.5
    return q_start, X0, targets, vis, lim


def bench_solver(Hs, ns, repeats: int) -> list[dict]:
    import numpy as np

    from dream2flow.planning.config import PlannerConfig
    from dream2flow.planning.optimizer import follow_flow

    out = []
    for H in Hs:
        for n in ns:
            cfg = PlannerConfig(horizon=H)
            q_start, X0, targets, vis, lim = _problem(H, n)
            t = time.perf_counter()
            res = follow_flow(q_start, X0, targets, vis, limits=lim, config=cfg)
            first = time.perf_counter() - t
            times = []
            for r in range(repeats):
                tg = targets + (r % 2) * 1e-4  # vary the data a little: nothing is cached but the executable
                t = time.perf_counter()
                res = follow_flow(q_start, X0, tg, vis, limits=lim, config=cfg)
                times.append(time.perf_counter() - t)
            med = float(np.median(times))
            rec = {"bench": "plan_solve", "H": H, "n": n, "bucket_H": res.stats["bucket_H"],
                   "bucket_n": res.stats["bucket_n"], "first_call_s": round(first, 3),
                   "jit_s": round(max(first - med, 0.0), 3), "median_solve_ms": round(med * 1000, 2),
                   "p90_solve_ms": round(float(np.percentile(times, 90)) * 1000, 2), "repeats": repeats,
                   "iterations": res.stats["iterations"], "tracking_error_mm": round(res.task_error_mean_m * 1000, 3)}
            if H in PYROKI_SOLVE_MS:
                rec["pyroki_ref_ms"] = PYROKI_SOLVE_MS[H]
                rec["ratio_vs_pyroki"] = round(med * 1000 / PYROKI_SOLVE_MS[H], 4)
            rec["jit_ratio_vs_pyroki"] = round(max(first - med, 0.0) / PYROKI_JIT_S, 4)
            print(json.dumps(rec), flush=True)
            out.append(rec)
    return out


_STARTUP = r"""
import time, json
t0 = time.perf_counter()
from dream2flow.planning import synthetic
task = synthetic.make_task("block")
t1 = time.perf_counter()
from dream2flow.planning.planner import plan_from_flow
plan = plan_from_flow(task.flow, task.rgbd)
t2 = time.perf_counter()
plan2 = plan_from_flow(task.flow, task.rgbd)
t3 = time.perf_counter()
print(json.dumps({"scene_s": t1 - t0, "first_plan_s": t2 - t1, "second_plan_s": t3 - t2,
                  "timing": plan.meta["timing"], "timing2": plan2.meta["timing"]}))
"""


def bench_startup(cache_dir: str | None, label: str) -> dict:
    env = dict(os.environ)
    if cache_dir:
        env["D2F_CACHE_DIR"] = cache_dir
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _STARTUP], capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        rec = {"bench": "plan_first_after_startup", "cache": label, "error": r.stderr.strip().splitlines()[-1:]}
    else:
        d = json.loads(r.stdout.strip().splitlines()[-1])
        rec = {"bench": "plan_first_after_startup", "cache": label, "process_wall_s": round(wall, 2),
               "first_plan_s": round(d["first_plan_s"], 2), "second_plan_s": round(d["second_plan_s"], 2),
               "first_plan_grasps_s": round(d["timing"]["grasps_s"], 2),
               "first_plan_solve_s": round(d["timing"]["solve_s"], 2), "target_first_plan_s": 10.0,
               "ratio_vs_target": round(d["first_plan_s"] / 10.0, 3),
               "jit_ratio_vs_pyroki": round(d["first_plan_s"] / PYROKI_JIT_S, 3)}
    print(json.dumps(rec), flush=True)
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="H=30, n=64, 3 repeats, no start-up runs (for the test suite)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--cold", action="store_true", help="use an empty persistent compilation cache")
    ap.add_argument("--no-startup", action="store_true", help="skip the fresh-process first-plan measurements")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="d2f-bench-cache-") if args.cold else None
    if tmp:
        os.environ["D2F_CACHE_DIR"] = tmp
    if args.quick:
        bench_solver([30], [64], 3)
        return 0
    bench_solver([30, 60], [64, 256, 1024], args.repeats)
    if not args.no_startup:
        cold = tempfile.mkdtemp(prefix="d2f-bench-cold-")
        bench_startup(cold, "cold")
        bench_startup(cold, "warm (persistent cache filled by the cold run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
