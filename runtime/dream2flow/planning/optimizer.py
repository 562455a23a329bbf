"""Flow-following trajectory optimisation: pad the problem to shape buckets, run the compiled
LM (``solver.py``), measure the tracking error.

Variables q[1..H-1] (q[0] = the grasp configuration, fixed). Costs (½ Σ residual²):
* task: per step, w_task × visibility-weighted mean squared distance between the predicted
  grasped points ``T_base_tcp(q_t) · T_base_tcp(q_0)⁻¹ · p`` and the time-warped flow targets;
* velocity w_vel·Σ(q_t − q_{t−1})² and acceleration w_acc·Σ(q_{t+1} − 2q_t + q_{t−1})²,
  with the arm at rest before step 0 and after step H−1 (so the segment starts and ends still);
* joint limits: squared hinge beyond [q_min + margin, q_max − margin], weight w_limit;
* rest: w_rest·Σ(q_t − q_0)² (keeps redundancy resolved and the arm near a reachable posture);
* orientation keeping (optional, w_orient): ½‖R_t − R_0‖²_F ≈ angle² for small angles.
Weights are data, not constants of the compiled function, so tuning never recompiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dream2flow.errors import PlanningFailed
from dream2flow.planning import rigid
from dream2flow.planning.kinematics import fk_tcp_np

if TYPE_CHECKING:
    from dream2flow.config import RobotLimits
    from dream2flow.planning.config import PlannerConfig

W_HOLD = 1.0e3  # velocity weight that pins padding steps to the last real step


def bucket_for(value: int, buckets: tuple[int, ...], what: str) -> int:
    for b in sorted(buckets):
        if b >= value:
            return b
    raise PlanningFailed(f"{what} {value} exceeds the largest compile bucket {max(buckets)}")


@dataclass
class FollowResult:
    q: np.ndarray                    # [H,7] float64 (q[0] = q_start)
    task_error_mean_m: float
    task_error_max_m: float
    worst_step_error_m: float
    stats: dict[str, Any] = field(default_factory=dict)
    terms: dict[str, float] = field(default_factory=dict)


def predicted_points(q: np.ndarray, X0: np.ndarray) -> np.ndarray:
    """Rigid-grasp dynamics: [H,k,3] = T_base_tcp(q_t) · T_base_tcp(q_0)⁻¹ · X0."""
    T = fk_tcp_np(q)
    rel = T @ rigid.invert(T[0])
    return rigid.apply(rel, X0)


def tracking_error(pred: np.ndarray, targets: np.ndarray, vis: np.ndarray) -> tuple[float, float, float]:
    """Mean and max distance (m) over visible (step, point) pairs, and the worst step's mean
    distance; step 0 excluded."""
    d = np.linalg.norm(pred[1:] - targets[1:], axis=-1)
    m = vis[1:]
    if not m.any():
        return 0.0, 0.0, 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_step = np.where(m, d, 0.0).sum(1) / m.sum(1)
    return float(d[m].mean()), float(d[m].max()), float(np.nanmax(per_step))


@dataclass
class PaddedProblem:
    """The flow-following problem padded to its compile bucket: the arguments of
    ``solver.solve_trajectory`` (float64 here; the solver casts to float32) and the bucket."""

    args: dict[str, Any]
    bucket_H: int
    bucket_n: int
    points_used: int


def padded_problem(q_start: np.ndarray, X0: np.ndarray, targets: np.ndarray, vis: np.ndarray, *,
                   limits: "RobotLimits", config: "PlannerConfig", q_init: np.ndarray | None = None) -> PaddedProblem:
    """Pad (steps and points) and weight the problem of ``follow_flow`` for the compiled solver.
    Benchmarks build the same problem for other solvers from it."""
    cfg = config
    H, k = targets.shape[:2]
    Hb = bucket_for(H + 1, cfg.horizon_buckets, "horizon")
    if k == 0:
        raise PlanningFailed("the grasped part has no flow points to follow")
    if k > max(cfg.point_buckets):
        rng = np.random.default_rng(cfg.seed)
        sel = np.sort(rng.choice(k, size=max(cfg.point_buckets), replace=False))
        X0_s, tg_s, vis_s = X0[sel], targets[:, sel], vis[:, sel]
    else:
        X0_s, tg_s, vis_s = X0, targets, vis
    ks = len(X0_s)
    nb = bucket_for(ks, cfg.point_buckets, "point count")
    q_start = np.asarray(q_start, dtype=np.float64)
    T0 = fk_tcp_np(q_start)
    local = np.zeros((nb, 3))
    local[:ks] = rigid.apply(rigid.invert(T0), X0_s)
    tg = np.zeros((Hb, nb, 3))
    tg[:H, :ks] = tg_s
    tg[H:, :ks] = tg_s[-1]
    w = np.zeros((Hb, nb))
    w[1:H, :ks] = vis_s[1:H]
    step_mask = np.zeros(Hb)
    step_mask[1:H] = 1.0
    vel_w = np.full(Hb, W_HOLD)
    vel_w[0] = 0.0
    vel_w[1:H] = cfg.w_vel
    acc_w = np.zeros(Hb)
    acc_w[:H] = cfg.w_acc  # c = H-1 couples to the held padding: "stop at the end"
    qi = np.repeat(q_start[None], Hb, axis=0) if q_init is None else np.concatenate(
        [np.asarray(q_init, dtype=np.float64), np.repeat(np.asarray(q_init)[-1:], Hb - H, axis=0)])
    qi[0] = q_start
    scal = np.array([cfg.w_task, cfg.w_limit, cfg.w_rest, cfg.w_orient, cfg.lm_lambda0])
    args = {"q_start": q_start, "q_init": qi, "local_pts": local, "targets": tg, "weights": w, "step_mask": step_mask,
            "vel_w": vel_w, "acc_w": acc_w, "q_rest": q_start, "R_keep": T0[:3, :3], "scal": scal,
            "q_lo": limits.q_min + cfg.limit_margin_rad, "q_hi": limits.q_max - cfg.limit_margin_rad,
            "max_iters": cfg.traj_max_iters}
    return PaddedProblem(args=args, bucket_H=Hb, bucket_n=nb, points_used=ks)


def follow_flow(q_start: np.ndarray, X0: np.ndarray, targets: np.ndarray, vis: np.ndarray, *,
                limits: "RobotLimits", config: "PlannerConfig", q_init: np.ndarray | None = None) -> FollowResult:
    """Optimise q [H,7] so the part points ``X0`` [k,3] (grasped at ``q_start``) follow
    ``targets`` [H,k,3] (visible where ``vis`` [H,k])."""
    from dream2flow.planning.solver import solve_trajectory

    H = targets.shape[0]
    prob = padded_problem(q_start, X0, targets, vis, limits=limits, config=config, q_init=q_init)
    q_start = np.asarray(q_start, dtype=np.float64)
    out = solve_trajectory(**prob.args)
    q = out["q"][:H].astype(np.float64)
    q[0] = q_start
    if not np.isfinite(q).all():
        raise PlanningFailed("the trajectory optimiser diverged (non-finite joints)")
    pred = predicted_points(q, X0)
    err_mean, err_max, err_step = tracking_error(pred, targets, np.asarray(vis) > 0)
    stats = {"iterations": out["iterations"], "accepted_steps": out["accepted"], "initial_cost": out["cost0"],
             "final_cost": out["cost"], "bucket_H": prob.bucket_H, "bucket_n": prob.bucket_n,
             "points_used": prob.points_used}
    return FollowResult(q=q, task_error_mean_m=err_mean, task_error_max_m=err_max, worst_step_error_m=err_step,
                        stats=stats, terms=out["terms"])
