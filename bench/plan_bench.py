"""Planner benchmark (issues 9 and 21). Prints one JSON line per measurement; every ratio compares
two numbers measured in this run, in this process.

* ``plan_solve``: JIT time and median solve time of the flow-following optimiser (``follow_flow``)
  for H in {30, 60} x n in {64, 256, 1024}.
* ``pyroki_side_by_side``: the same padded problem (same residuals, weights, padding and start,
  float32) solved by this project's solver and by PyRoki's default solver (jaxls
  Levenberg-Marquardt, conjugate-gradient linear solves) in interleaved rounds, at H=30 n=256
  and H=60 n=1024: median times and their ratio, JIT times, and both solutions' objective
  (one float64 evaluation for both) and tracking error. Runs when ``pyroki`` and ``jaxls`` import
  (install them from their sources into a separate venv and run this script with that venv's
  Python and ``PYTHONPATH=runtime``); otherwise one line says it was skipped and why.
* ``solver_h_scaling``: median solve at H in {30, 60, 120, 240} (n=1024, interleaved rounds), ratios to H=60.
* ``plan_stage``: the whole plan (grasps, IK, part, solve, timing, assembly) on the synthetic
  tasks in a warm process, and its ratio to the optimiser's own time inside it.
* ``plan_first_after_startup``: the first plan of a fresh process with an empty and with a
  filled persistent compilation cache.

    .venv/bin/python bench/plan_bench.py [--quick] [--repeats N] [--cold] [--no-startup] [--no-pyroki] [--startup-only]

--cold uses an empty persistent compilation cache (a temporary D2F_CACHE_DIR), so the JIT
numbers include XLA compilation; without it a warm ~/.cache/dream2flow/jax may serve them.
Report timings measured on an otherwise idle machine (``flock /tmp/d2f-heavy.lock`` here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDE_BY_SIDE = ((30, 256), (60, 1024))
H_SCALING = (30, 60, 120, 240)


def emit(rec: dict) -> dict:
    print(json.dumps(rec), flush=True)
    return rec


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


def _config(H: int):
    from dream2flow.planning.config import PlannerConfig

    return PlannerConfig(horizon=H)


def objective64(args: dict, Q) -> float:
    """The trajectory problem's objective (½ Σ residual²) of a padded solution Q [Hb,7], in float64
    NumPy from the problem's own arrays: one yardstick for every solver."""
    import numpy as np

    from dream2flow.control.kinematics import fk_tcp

    Q = np.asarray(Q, dtype=np.float64)
    w_task, w_limit, w_rest, w_orient = np.asarray(args["scal"], dtype=np.float64)[:4]
    T = fk_tcp(Q[1:])
    Rm, p = T[:, :3, :3], T[:, :3, 3]
    pred = np.einsum("nk,tjk->tnj", args["local_pts"], Rm) + p[:, None]
    w = np.asarray(args["weights"], dtype=np.float64)[1:]
    ws = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
    task = 0.5 * w_task * np.sum(ws * np.sum((pred - args["targets"][1:]) ** 2, -1))
    lim = 0.5 * w_limit * np.sum(np.maximum(Q[1:] - args["q_hi"], 0) ** 2 + np.maximum(args["q_lo"] - Q[1:], 0) ** 2)
    mask = np.asarray(args["step_mask"], dtype=np.float64)[1:]
    rest = 0.5 * w_rest * np.sum(mask[:, None] * (Q[1:] - args["q_rest"]) ** 2)
    ori = 0.25 * w_orient * np.sum(mask[:, None, None] * (Rm - args["R_keep"]) ** 2)
    d = np.diff(Q, axis=0)
    dp = np.concatenate([np.zeros((1, 7)), d[:-1]])
    vel = 0.5 * np.sum(np.asarray(args["vel_w"])[1:, None] * d ** 2)
    acc = 0.5 * np.sum(np.asarray(args["acc_w"])[:-1, None] * (d - dp) ** 2)
    return float(task + lim + rest + ori + vel + acc)


def bench_solver(Hs, ns, repeats: int) -> list[dict]:
    import numpy as np

    from dream2flow.planning.optimizer import follow_flow

    out = []
    for H in Hs:
        for n in ns:
            cfg = _config(H)
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
            out.append(emit({"bench": "plan_solve", "H": H, "n": n, "bucket_H": res.stats["bucket_H"],
                             "bucket_n": res.stats["bucket_n"], "first_call_s": round(first, 3),
                             "jit_s": round(max(first - med, 0.0), 3), "median_solve_ms": round(med * 1000, 2),
                             "p90_solve_ms": round(float(np.percentile(times, 90)) * 1000, 2), "repeats": repeats,
                             "iterations": res.stats["iterations"],
                             "tracking_error_mm": round(res.task_error_mean_m * 1000, 4)}))
    return out


# ----------------------------------------------------------------------------- PyRoki side by side
def _pyroki_version() -> str:
    import importlib.metadata as md

    parts = []
    for name in ("pyroki", "jaxls"):
        try:
            parts.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            parts.append(f"{name} (no metadata)")
    return ", ".join(parts)


def pyroki_solver(urdf_path: Path, tcp_link: str = "panda_hand_tcp"):
    """PyRoki's robot (from the project's Panda URDF) and jaxls costs for exactly the padded problem
    ``optimizer.padded_problem`` builds: visibility-weighted task points on the TCP, joint-limit
    hinges inside the soft margin, rest pull, velocity and acceleration differences (q_0 fixed, at
    rest before it, padding held). Solved with jaxls' defaults (PyRoki's examples do the same).
    Returns a jitted ``solve(arrays...) -> Q [Hb,7]``."""
    import jax
    import jax.numpy as jnp
    import jaxlie
    import jaxls
    import pyroki as pk
    import yourdfpy

    robot = pk.Robot.from_urdf(yourdfpy.URDF.load(str(urdf_path), load_meshes=False))
    tcp = robot.links.names.index(tcp_link)
    JV = robot.joint_var_cls

    def pose(vals, var):
        T = jaxlie.SE3(robot.forward_kinematics(vals[var])[tcp])
        return T.rotation().as_matrix(), T.translation()

    @jaxls.Cost.factory
    def task(vals, var, tgt, s, local):
        R, p = pose(vals, var)
        return (s[:, None] * (local @ R.T + p - tgt)).flatten()

    @jaxls.Cost.factory
    def limits(vals, var, lo, hi, sw):
        q = vals[var]
        return sw * jnp.concatenate([jnp.maximum(q - hi, 0.0), jnp.maximum(lo - q, 0.0)])

    @jaxls.Cost.factory
    def pull(vals, var, q_ref, s):              # rest pull; and the first difference from the fixed q_0
        return s * (vals[var] - q_ref)

    @jaxls.Cost.factory
    def vel(vals, var, var_prev, s):
        return s * (vals[var] - vals[var_prev])

    @jaxls.Cost.factory
    def acc_second(vals, var2, var1, q0, s):      # acceleration row 1: (q2 − q1) − (q1 − q0)
        return s * ((vals[var2] - vals[var1]) - (vals[var1] - q0))

    @jaxls.Cost.factory
    def acc(vals, var_n, var_c, var_p, s):        # acceleration rows c ≥ 2
        return s * ((vals[var_n] - vals[var_c]) - (vals[var_c] - vals[var_p]))

    @jax.jit
    def solve(q_start, q_init, local_pts, targets, weights, step_mask, vel_w, acc_w, q_rest, q_lo, q_hi, scal):
        T = q_init.shape[0] - 1
        w = weights[1:]
        s = jnp.sqrt(scal[0] * w / jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1e-12))
        ids = jnp.arange(T)
        v = JV(ids)
        col = lambda x: x[:, None]  # noqa: E731
        costs = [
            task(v, targets[1:], s, jnp.broadcast_to(local_pts, (T,) + local_pts.shape)),
            limits(v, jnp.broadcast_to(q_lo, (T, 7)), jnp.broadcast_to(q_hi, (T, 7)),
                   jnp.full((T, 1), jnp.sqrt(scal[1]))),
            pull(v, jnp.broadcast_to(q_rest, (T, 7)), col(jnp.sqrt(scal[2] * step_mask[1:]))),
            pull(JV(ids[:1]), q_start[None], col(jnp.sqrt(vel_w[1:2]))),            # velocity, step 1
            vel(JV(ids[1:]), JV(ids[:-1]), col(jnp.sqrt(vel_w[2:]))),                # velocity, steps ≥ 2
            pull(JV(ids[:1]), q_start[None], col(jnp.sqrt(acc_w[0:1]))),            # acceleration row 0: q1 − q0
            acc_second(JV(ids[1:2]), JV(ids[:1]), q_start[None], col(jnp.sqrt(acc_w[1:2]))),
            acc(JV(ids[2:]), JV(ids[1:-1]), JV(ids[:-2]), col(jnp.sqrt(acc_w[2:T]))),
        ]
        sol = jaxls.LeastSquaresProblem(costs, [v]).analyze().solve(
            initial_vals=jaxls.VarValues.make([v.with_value(q_init[1:])]), verbose=False)
        return jnp.concatenate([q_start[None], sol[v]])

    return solve


def bench_pyroki(rounds: int) -> list[dict]:
    try:
        import jaxls  # noqa: F401
        import pyroki  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not installed here"
        return [emit({"bench": "pyroki_side_by_side", "skipped": f"pyroki/jaxls not importable ({type(exc).__name__}: "
                      f"{exc}); install them from their sources into a separate venv and run this script with it"})]
    import logging

    import numpy as np

    from dream2flow.planning.optimizer import padded_problem, predicted_points, tracking_error
    from dream2flow.planning.solver import solve_trajectory

    logging.getLogger("jaxls").setLevel(logging.WARNING)
    try:
        from loguru import logger as _loguru

        _loguru.remove()  # jaxls logs its problem analysis at INFO on every trace
    except Exception:  # noqa: BLE001
        pass
    solve_pk = pyroki_solver(ROOT / "hw" / "robot" / "panda.urdf")
    keys = ("q_start", "q_init", "local_pts", "targets", "weights", "step_mask", "vel_w", "acc_w", "q_rest",
            "q_lo", "q_hi", "scal")
    out = []
    for H, n in SIDE_BY_SIDE:
        q_start, X0, targets, vis, lim = _problem(H, n)
        prob = padded_problem(q_start, X0, targets, vis, limits=lim, config=_config(H))
        args = {k: (np.asarray(v, dtype=np.float32) if k != "max_iters" else v) for k, v in prob.args.items()}
        pk_args = [args[k] for k in keys]

        def ours():
            return solve_trajectory(**args)["q"]

        def theirs():
            return np.asarray(solve_pk(*pk_args))

        t = time.perf_counter()
        Q_ours = ours()
        jit_ours = time.perf_counter() - t
        t = time.perf_counter()
        Q_pk = theirs()
        jit_pk = time.perf_counter() - t
        t_ours, t_pk = [], []
        for _ in range(rounds):  # interleaved: both see the same machine state
            t = time.perf_counter()
            Q_ours = ours()
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            Q_pk = theirs()
            t_pk.append(time.perf_counter() - t)
        m_ours, m_pk = float(np.median(t_ours)), float(np.median(t_pk))
        obj_ours, obj_pk = objective64(prob.args, Q_ours), objective64(prob.args, Q_pk)
        err_ours = tracking_error(predicted_points(np.asarray(Q_ours[:H], np.float64), X0), targets, vis)[0]
        err_pk = tracking_error(predicted_points(np.asarray(Q_pk[:H], np.float64), X0), targets, vis)[0]
        out.append(emit({
            "bench": "pyroki_side_by_side", "H": H, "n": n, "bucket_H": prob.bucket_H, "bucket_n": prob.bucket_n,
            "rounds": rounds, "pyroki": _pyroki_version(), "pyroki_solver": "jaxls default (LM, conjugate gradient)",
            "dtype": "float32", "project_median_ms": round(m_ours * 1000, 2), "pyroki_median_ms": round(m_pk * 1000, 2),
            "ratio_project_vs_pyroki": round(m_ours / m_pk, 4), "target_ratio": 0.08,
            "project_jit_s": round(jit_ours, 2), "pyroki_jit_s": round(jit_pk, 2),
            "project_objective": obj_ours, "pyroki_objective": obj_pk,
            "objective_rel_diff": round((obj_ours - obj_pk) / obj_pk, 6),
            "project_tracking_error_mm": round(err_ours * 1000, 4), "pyroki_tracking_error_mm": round(err_pk * 1000, 4)}))
    return out


# ----------------------------------------------------------------------------- scaling, plan stage
def bench_h_scaling(n: int, repeats: int) -> list[dict]:
    """Median solve per horizon, the horizons timed in interleaved rounds (every round solves each H
    once), so a slow moment of a shared machine hits all of them, not one H's block of repeats."""
    import numpy as np

    from dream2flow.planning.optimizer import padded_problem, predicted_points, tracking_error
    from dream2flow.planning.solver import solve_trajectory

    probs, outs, times = {}, {}, {H: [] for H in H_SCALING}
    for H in H_SCALING:
        q_start, X0, targets, vis, lim = _problem(H, n)
        probs[H] = (padded_problem(q_start, X0, targets, vis, limits=lim, config=_config(H)), X0, targets, vis)
        outs[H] = solve_trajectory(**probs[H][0].args)  # compile or load first
    for _ in range(repeats):
        for H in H_SCALING:
            t = time.perf_counter()
            outs[H] = solve_trajectory(**probs[H][0].args)
            times[H].append(time.perf_counter() - t)
    rows = []
    for H in H_SCALING:
        prob, X0, targets, vis = probs[H]
        err = tracking_error(predicted_points(outs[H]["q"][:H].astype(np.float64), X0), targets, vis)[0]
        rows.append({"H": H, "n": n, "bucket_H": prob.bucket_H, "median_ms": float(np.median(times[H])) * 1000,
                     "iterations": outs[H]["iterations"], "tracking_error_mm": err * 1000})
    base = {r["H"]: r["median_ms"] for r in rows}
    out_rows = []
    for r in rows:
        out_rows.append(emit({"bench": "solver_h_scaling", **{k: (round(v, 4) if isinstance(v, float) else v)
                                                              for k, v in r.items()},
                              "ratio_vs_H60": round(r["median_ms"] / base[60], 3),
                              "ratio_vs_H30": round(r["median_ms"] / base[30], 3), "repeats": repeats,
                              **({"target_ratio_vs_H60": 4.0} if r["H"] == 240 else {})}))
    return out_rows


def bench_plan_stage(repeats: int) -> list[dict]:
    """Whole plans on the synthetic tasks in a warm process vs the optimiser's time inside them."""
    import numpy as np

    from dream2flow.planning import synthetic
    from dream2flow.planning.planner import plan_from_flow

    out = []
    for name in synthetic.TASKS:
        task = synthetic.make_task(name)
        plan_from_flow(task.flow, task.rgbd)  # warm: compiled buckets, imports
        totals, opts, grasps = [], [], []
        for _ in range(repeats):
            t = time.perf_counter()
            plan = plan_from_flow(task.flow, task.rgbd)
            totals.append(time.perf_counter() - t)
            opts.append(plan.meta["timing"]["optimizer_s"])
            grasps.append(plan.meta["timing"]["grasps_s"])
        tot, opt = float(np.median(totals)), float(np.median(opts))
        out.append(emit({"bench": "plan_stage", "task": name, "repeats": repeats, "plan_s": round(tot, 4),
                         "grasps_s": round(float(np.median(grasps)), 4), "optimizer_s": round(opt, 4),
                         "ratio_plan_vs_optimizer": round(tot / max(opt, 1e-9), 2),
                         "solver_iterations": plan.meta["solver"]["iterations"]}))
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
        return emit({"bench": "plan_first_after_startup", "cache": label, "error": r.stderr.strip().splitlines()[-1:]})
    d = json.loads(r.stdout.strip().splitlines()[-1])
    return emit({"bench": "plan_first_after_startup", "cache": label, "process_wall_s": round(wall, 2),
                 "first_plan_s": round(d["first_plan_s"], 2), "second_plan_s": round(d["second_plan_s"], 3),
                 "first_plan_grasps_s": round(d["timing"]["grasps_s"], 3),
                 "first_plan_solve_s": round(d["timing"]["solve_s"], 3), "target_first_plan_s": 3.0,
                 "ratio_first_vs_second": round(d["first_plan_s"] / max(d["second_plan_s"], 1e-9), 1)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="H=30, n=64, 3 repeats only (for the test suite)")
    ap.add_argument("--repeats", type=int, default=15, help="timed repeats per measurement (default 15)")
    ap.add_argument("--cold", action="store_true", help="use an empty persistent compilation cache")
    ap.add_argument("--no-startup", action="store_true", help="skip the fresh-process first-plan measurements")
    ap.add_argument("--no-pyroki", action="store_true", help="skip the PyRoki side-by-side run")
    ap.add_argument("--startup-only", action="store_true",
                    help="only the fresh-process first-plan measurements (cold, then warm persistent cache x2)")
    ap.add_argument("--h-scaling-only", action="store_true", help="only the solver's H-scaling (n=1024, interleaved)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    tmp = tempfile.mkdtemp(prefix="d2f-bench-cache-") if args.cold else None
    if tmp:
        os.environ["D2F_CACHE_DIR"] = tmp
    import jax

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    emit({"bench": "env", "cpus": os.cpu_count(), "jax": jax.__version__, "python": sys.version.split()[0],
          "load_avg_1min": load})
    if args.quick:
        bench_solver([30], [64], 3)
        return 0
    if args.h_scaling_only:
        bench_h_scaling(1024, args.repeats)
        return 0
    if args.startup_only:
        cold = tempfile.mkdtemp(prefix="d2f-bench-cold-")
        bench_startup(cold, "cold")
        for _ in range(2):
            bench_startup(cold, "warm (persistent cache filled by the cold run)")
        return 0
    bench_solver([30, 60], [64, 256, 1024], args.repeats)
    if not args.no_pyroki:
        bench_pyroki(args.repeats)
    bench_h_scaling(1024, args.repeats)
    bench_plan_stage(max(3, args.repeats // 3))
    if not args.no_startup:
        cold = tempfile.mkdtemp(prefix="d2f-bench-cold-")
        bench_startup(cold, "cold")
        bench_startup(cold, "warm (persistent cache filled by the cold run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
