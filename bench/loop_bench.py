"""Control-loop timing: period jitter and missed periods at 100 Hz and 500 Hz against the
kinematic backend in real-time mode (wall-clock pacing on absolute deadlines, as on the robot).

Prints JSON lines:
- ``control_loop``: per rate — ticks, missed periods, tick period p50/p99/max (us), period
  jitter |period - 1/rate| p50/p99/max (us), lateness of tick start vs its deadline, and the ratio
  of the loop's p99 jitter to a baseline measured in the same process: a bare loop on the same
  pacer doing no work (what the OS/Python timer gives by itself);
- ``control_loop_baseline``: that baseline;
- ``control_loop_compute``: the same plan as fast as possible (simulated time): microseconds of
  loop work per tick (safety checks, FK, logging), i.e. the headroom at each rate.

    .venv/bin/python bench/loop_bench.py            # 30 s per rate (+10 s baseline per rate)
    .venv/bin/python bench/loop_bench.py --quick    # 1.5 s per rate
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from dream2flow.config import load_robot_limits
from dream2flow.control.backends.kinematic import KinematicBackend
from dream2flow.control.loop import execute_plan
from dream2flow.control.settings import load_loop_config
from dream2flow.control.watchdog import WallClockPacer
from dream2flow.types import Plan


def bench_plan(seconds: float) -> Plan:
    """A slow, smooth whole-arm motion lasting ``seconds`` (well inside every limit)."""
    lim = load_robot_limits()
    dt = 0.05
    H = int(round(seconds / dt)) + 1
    t = np.arange(H) * dt
    w = np.sin(np.pi * t / seconds) ** 2 * np.sin(2 * np.pi * t / 10.0)
    q = lim.q_ready + 0.25 * w[:, None] * np.array([1.0, 0.5, -0.6, 0.5, 1.0, 0.5, 1.0])
    return Plan(q=q, dt_s=dt, gripper=np.zeros(H), predicted_points=np.zeros((H, 1, 3)))


def pct(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"p50": round(float(np.percentile(x, 50)), 1), "p99": round(float(np.percentile(x, 99)), 1),
            "max": round(float(x.max()), 1)}


def baseline(rate: float, seconds: float, spin_s: float) -> dict[str, object]:
    """A loop on the same pacer and deadlines with no work: the timer's own jitter."""
    pacer = WallClockPacer(spin_s)
    n = int(seconds * rate)
    starts = np.empty(n)
    t0 = pacer.now()
    for k in range(n):
        pacer.wait_until(t0 + k / rate, None)
        starts[k] = pacer.now() - t0
    period = np.diff(starts) * 1e6
    return {"bench": "control_loop_baseline", "rate_hz": rate, "seconds": seconds, "ticks": n,
            "period_jitter_us": pct(np.abs(period - 1e6 / rate)), "lateness_us": pct((starts - np.arange(n) / rate) * 1e6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1.5 s per rate (smoke test)")
    ap.add_argument("--seconds", type=float, default=30.0, help="real time per rate (default 30)")
    ap.add_argument("--baseline-seconds", type=float, default=10.0)
    ap.add_argument("--rates", default="100,500")
    args = ap.parse_args()
    seconds = 1.5 if args.quick else args.seconds
    base_s = 0.5 if args.quick else args.baseline_seconds
    cfg = load_loop_config().replace(settle_s=0.0)
    plan = bench_plan(seconds)
    host = {"python": platform.python_version(), "machine": platform.machine()}
    for rate in (float(r) for r in args.rates.split(",")):
        # loop work per tick, simulated time (no pacing)
        r_fast = execute_plan(plan, KinematicBackend(plan.q[0], record_calls=False), rate_hz=rate, config=cfg)
        assert r_fast.ok, r_fast.reason
        print(json.dumps({"bench": "control_loop_compute", "rate_hz": rate, "ticks": r_fast.commands_sent,
                          "us_per_tick": round(r_fast.wall_s / r_fast.commands_sent * 1e6, 1),
                          "budget_used": round(r_fast.wall_s / r_fast.commands_sent * rate, 4), **host}), flush=True)
        base = baseline(rate, base_s, cfg.spin_s)
        print(json.dumps({**base, **host}), flush=True)
        # real-time run
        t0 = time.perf_counter()
        r = execute_plan(plan, KinematicBackend(plan.q[0], record_calls=False), rate_hz=rate, config=cfg, realtime=True)
        wall = time.perf_counter() - t0
        ticks = r.command_log["tick"][: r.tick_wall_s.size]
        starts = r.tick_wall_s
        consecutive = np.diff(ticks) == 1
        period = np.diff(starts)[consecutive] * 1e6
        jitter = np.abs(period - 1e6 / rate)
        lateness = (starts - ticks / rate) * 1e6
        base_p99 = base["period_jitter_us"]["p99"]  # type: ignore[index]
        print(json.dumps({
            "bench": "control_loop", "backend": "kinematic", "mode": "realtime", "rate_hz": rate,
            "seconds": round(wall, 2), "ok": r.ok, "reason": r.reason, "ticks": int(r.commands_sent),
            "missed_periods": int(r.missed_periods), "period_us": pct(period), "period_jitter_us": pct(jitter),
            "lateness_us": pct(lateness), "baseline_period_jitter_us_p99": base_p99,
            "ratio_p99_jitter_vs_baseline": round(float(np.percentile(jitter, 99)) / base_p99, 2) if base_p99 else None,
            **host}), flush=True)


if __name__ == "__main__":
    main()
