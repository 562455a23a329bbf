"""libfranka backend timing slack against franka-sim (a libfranka-protocol FR3 simulator).

How much of libfranka's 1 ms budget the 1 kHz process uses, how often it misses cycles
(gaps the backend rejoins; 20 in a row stop the robot), tracking, and what CPU contention does to
it: the same smooth 3 s plan through ``execute_plan`` (the control loop at 100 Hz, the backend at
1 kHz), first on a quiet machine, then with ``--hogs`` busy processes competing for the cores.

Prints JSON lines, one per run, and a summary per condition with ratios against the quiet runs
measured in the same process. Needs franka-sim's venv (``$D2F_FRANKA_SIM_PYTHON``, else the one
``tests/fr3_sim/ensure_venv.sh`` makes or reuses) and pylibfranka. Run it alone
(``flock /tmp/d2f-heavy.lock``): other load is what it measures.

    .venv/bin/python bench/libfranka_bench.py --runs 3 --hogs 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
from fr3_sim.loopback import free_loopback  # noqa: E402  (shared with the franka-sim tests)


def emit(**kw) -> None:
    print(json.dumps(kw, sort_keys=True), flush=True)


def _hog() -> None:
    try:  # never real-time, whatever the parent had
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (OSError, AttributeError):
        pass
    while True:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per condition (1..20)")
    ap.add_argument("--hogs", type=int, default=1, help="busy processes in the loaded condition (0..8)")
    ap.add_argument("--rate", type=float, default=100.0, help="control-loop rate, Hz (1..1000)")
    ap.add_argument("--no-rt", action="store_true",
                    help="normal scheduling for the simulator and the 1 kHz process (as where the OS refuses SCHED_FIFO)")
    args = ap.parse_args()
    if not 1 <= args.runs <= 20 or not 0 <= args.hogs <= 8 or not 1.0 <= args.rate <= 1000.0:
        raise SystemExit("--runs must be 1..20, --hogs 0..8, --rate 1..1000 Hz")
    py = os.environ.get("D2F_FRANKA_SIM_PYTHON")
    if not py:
        made = subprocess.run(["bash", str(ROOT / "tests" / "fr3_sim" / "ensure_venv.sh")], capture_output=True, text=True)
        if made.returncode != 0:
            raise SystemExit(f"franka-sim's venv could not be made: {made.stderr.strip()[-500:]}")
        py = made.stdout.strip().splitlines()[-1]
    os.environ.setdefault("D2F_STATE_DIR", tempfile.mkdtemp(prefix="d2f-bench-"))

    from dream2flow.config import load_robot_limits
    from dream2flow.control.backends.libfranka import LibfrankaBackend, load_libfranka_config
    from dream2flow.control.loop import execute_plan
    from dream2flow.types import Plan

    host = free_loopback()
    sim = subprocess.Popen([py, str(ROOT / "tests" / "fr3_sim" / "launch_server.py"), "--host", host,
                            "--object-width", "0.03", "--rt-priority", "0" if args.no_rt else "60"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           start_new_session=True)
    if not (sim.stdout.readline() or "").startswith("READY"):
        raise SystemExit("franka-sim did not start")
    q0 = np.array([0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785])
    t = np.arange(0.0, 3.0 + 1e-9, 0.1)
    s = (1 - np.cos(2 * np.pi * t / 3.0)) / 2
    plan = Plan(q=q0 + s[:, None] * np.array([0.3, 0.2, -0.2, 0.3, 0.3, -0.2, 0.4]), dt_s=0.1,
                gripper=(t >= 1.5).astype(np.float32), predicted_points=np.zeros((len(t), 0, 3), np.float32), meta={})
    fr3 = load_robot_limits(model="fr3")
    cfg = load_libfranka_config()
    if args.no_rt:
        import dataclasses

        cfg = dataclasses.replace(cfg, rt_priority=0)
    summary: dict[str, dict[str, float]] = {}
    try:
        for cond, hogs in (("quiet", 0), (f"{args.hogs}_hogs", args.hogs)):
            if cond != "quiet" and hogs == 0:
                continue
            procs = [mp.get_context("spawn").Process(target=_hog, daemon=True) for _ in range(hogs)]
            for p in procs:
                p.start()
            rows = []
            try:
                for k in range(args.runs):
                    b = LibfrankaBackend(cfg, robot_ip=host, limits=fr3)
                    t0 = time.perf_counter()
                    # consent: the arm is the franka-sim this script started on a loopback address
                    r = execute_plan(plan, b, rate_hz=args.rate, limits=fr3, consent=True)
                    wall = time.perf_counter() - t0
                    st = dict(b.stats)
                    row = {"condition": cond + ("_no_rt" if args.no_rt else ""), "run": k, "ok": r.ok, "reason": r.reason[:160],
                           "final_error_rad": r.final_error_rad, "max_tracking_error_rad": r.max_tracking_error_rad,
                           "missed_loop_periods": r.missed_periods, "cycles": st.get("cycles"),
                           "late_cycles": st.get("late_cycles"), "max_gap_cycles": st.get("max_gap_cycles"),
                           "work_max_ms": st.get("work_max_ms"), "work_over_half_ms": st.get("work_over_half_ms"),
                           "wall_over_plan": wall / (plan.duration_s + 0.3), "rt": st.get("rt_priority")}
                    emit(**row)
                    rows.append(row)
                    if b.fault:
                        b.recover()
                    b.close()
                    b.clear_fault()
            finally:
                for p in procs:
                    p.terminate()
            summary[cond] = {"ok_fraction": float(np.mean([r["ok"] for r in rows])),
                             "late_cycles_mean": float(np.mean([r["late_cycles"] or 0 for r in rows])),
                             "max_gap_cycles": float(max(r["max_gap_cycles"] or 0 for r in rows)),
                             "work_max_ms": float(max(r["work_max_ms"] or 0 for r in rows)),
                             "wall_over_plan": float(np.mean([r["wall_over_plan"] for r in rows]))}
        base = summary["quiet"]
        for cond, sm in summary.items():
            emit(summary=cond, **sm, ratio_wall_over_plan_vs_quiet=sm["wall_over_plan"] / base["wall_over_plan"],
                 slack_cycles_before_reflex=20 - sm["max_gap_cycles"])
    finally:
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
