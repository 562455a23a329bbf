"""Plan assembly: timing (one ``dt_s`` for the whole plan), joint and Cartesian segments,
dwells after gripper changes, and the final limit check by finite differences.

The plan is q0 → (joint-space quintic) pre-grasp → (straight line along the approach, IK)
grasp → close + dwell → flow-following → [open + dwell → retreat along −approach].
Every segment starts and ends at rest, so the junctions are smooth; the check treats the
arm as at rest before q[0] and after q[-1]. A broken limit raises ``PlanningFailed``
naming the joint, the limit and the time — never clipped.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import PlanningFailed, Unreachable

if TYPE_CHECKING:
    from dream2flow.config import RobotLimits
    from dream2flow.planning.config import PlannerConfig

_QUINTIC_V = 1.875           # peak of ds/dτ for s = 10τ³ − 15τ⁴ + 6τ⁵
_QUINTIC_A = 10.0 / math.sqrt(3.0)  # peak |d²s/dτ²|


def quintic(n: int) -> np.ndarray:
    """[n] smooth 0 → 1 profile (zero velocity and acceleration at both ends)."""
    tau = np.linspace(0.0, 1.0, n)
    return tau ** 3 * (10 - 15 * tau + 6 * tau ** 2)


def diffs(q: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Finite-difference velocity [H+1,7] and acceleration [H,7]... with rest before and after."""
    qq = np.concatenate([q[:1], q, q[-1:]], axis=0)
    v = np.diff(qq, axis=0) / dt
    a = np.diff(qq, n=2, axis=0) / dt ** 2
    return v, a


def required_dt(q: np.ndarray, limits: "RobotLimits", vel_margin: float, acc_margin: float) -> float:
    """Smallest step (s) at which ``q`` [H,7] keeps |v| ≤ vel_margin·dq_max and |a| ≤ acc_margin·ddq_max."""
    v1, a1 = diffs(q, 1.0)
    need_v = float(np.max(np.abs(v1) / (vel_margin * limits.dq_max))) if len(v1) else 0.0
    need_a = float(np.sqrt(np.max(np.abs(a1) / (acc_margin * limits.ddq_max)))) if len(a1) else 0.0
    return max(need_v, need_a)


def joint_segment(qa: np.ndarray, qb: np.ndarray, dt: float, limits: "RobotLimits", cfg: "PlannerConfig",
                  min_duration_s: float = 0.5) -> np.ndarray:
    """Quintic joint-space move qa → qb [N,7] (both included), timed for the margins."""
    d = np.abs(np.asarray(qb) - np.asarray(qa))
    T = max(min_duration_s,
            float(np.max(_QUINTIC_V * d / (cfg.vel_margin * limits.dq_max))),
            float(np.max(np.sqrt(_QUINTIC_A * d / (cfg.acc_margin * limits.ddq_max)))))
    n = max(2, int(math.ceil(T / dt)) + 1)
    s = quintic(n)[:, None]
    return (1 - s) * qa[None] + s * qb[None]


def line_poses(T_a: np.ndarray, T_b: np.ndarray, n: int) -> np.ndarray:
    """[n,4,4] poses along the straight line T_a → T_b (same orientation as T_b), quintic timing."""
    s = quintic(n)
    out = np.repeat(T_b[None], n, axis=0).copy()
    out[:, :3, 3] = (1 - s)[:, None] * T_a[None, :3, 3] + s[:, None] * T_b[None, :3, 3]
    return out


def cartesian_segment(T_a: np.ndarray, T_b: np.ndarray, qa: np.ndarray, qb: np.ndarray, dt: float,
                      limits: "RobotLimits", cfg: "PlannerConfig", what: str, line_tol_m: float = 0.005) -> np.ndarray:
    """Straight TCP line T_a → T_b with known joint solutions qa, qb at the ends: [N,7], timed by
    the slower of the Cartesian speed and the joint margins (quintic, at rest at both ends).

    The joint-space quintic between two nearby solutions on one IK branch is nearly straight in
    Cartesian space; it is used when its TCP stays within ``line_tol_m`` of the line (checked by
    FK). Otherwise the waypoints are solved by IK (seeded there) and must be as smooth."""
    from dream2flow.planning.kinematics import fk_tcp_np
    from dream2flow.planning.solver import ik_batch

    dist = float(np.linalg.norm(T_b[:3, 3] - T_a[:3, 3]))
    T_lin = dist * _QUINTIC_V / max(cfg.approach_speed_mps, 1e-6)
    d = np.abs(qb - qa)
    T_j = max(float(np.max(_QUINTIC_V * d / (cfg.vel_margin * limits.dq_max))),
              float(np.max(np.sqrt(_QUINTIC_A * d / (cfg.acc_margin * limits.ddq_max)))))
    n = max(3, int(math.ceil(max(T_lin, T_j, 0.5) / dt)) + 1)
    s = quintic(n)[:, None]
    q = (1 - s) * qa[None] + s * qb[None]
    p = fk_tcp_np(q)[:, :3, 3]
    a, b = T_a[:3, 3], T_b[:3, 3]
    ab = b - a
    u = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    dev = np.linalg.norm(p - (a + u[:, None] * ab), axis=1)
    if dev.max() <= line_tol_m:
        return q
    poses = line_poses(T_a, T_b, n)
    qi, pe, re = ik_batch(poses[1:-1], q[1:-1], config=cfg, limits=limits)
    bad = (pe > cfg.ik_tol_pos_m) | (re > cfg.ik_tol_rot_rad)
    if bad.any():
        i = int(np.argmax(bad))
        raise Unreachable(f"the {what} line leaves the arm's reach at waypoint {i + 1}/{n} "
                          f"(IK error {pe[i] * 1000:.1f} mm, {np.degrees(re[i]):.1f} deg)")
    return np.concatenate([qa[None], qi, qb[None]], axis=0)


def dwell(q: np.ndarray, dt: float, seconds: float) -> np.ndarray:
    """[m,7] copies of q covering ≥ ``seconds`` after the sample where the gripper changes."""
    m = int(math.ceil(seconds / dt - 1e-9))
    return np.repeat(np.asarray(q)[None], m, axis=0)


def check_limits(q: np.ndarray, dt: float, limits: "RobotLimits", margin_rad: float = 0.0) -> None:
    """Raise PlanningFailed naming the first broken position (with ``margin_rad`` inside the
    limits) / velocity / acceleration limit."""
    pos = limits.check_q(q, margin_rad)
    if pos:
        raise PlanningFailed(f"plan breaks a joint position limit (with {margin_rad:.2f} rad margin): {pos[0]}")
    v, a = diffs(q, dt)
    for arr, lim, what, unit in ((v, limits.dq_max, "velocity", "rad/s"), (a, limits.ddq_max, "acceleration", "rad/s^2")):
        ratio = np.abs(arr) / lim[None]
        if (ratio > 1.0).any():
            k, j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
            raise PlanningFailed(f"plan breaks joint {j + 1} {what} limit: {abs(arr[k, j]):.3f} {unit} > "
                                 f"{lim[j]:.3f} {unit} at t={k * dt:.2f} s")


def limit_usage(q: np.ndarray, dt: float, limits: "RobotLimits") -> dict[str, float]:
    v, a = diffs(q, dt)
    span = limits.q_max - limits.q_min
    pos_margin = float(np.min(np.minimum(q - limits.q_min[None], limits.q_max[None] - q)))
    return {"max_velocity_ratio": float(np.max(np.abs(v) / limits.dq_max[None])),
            "max_acceleration_ratio": float(np.max(np.abs(a) / limits.ddq_max[None])),
            "min_position_margin_rad": pos_margin,
            "max_position_fraction": float(np.max(np.abs(q - 0.5 * (limits.q_min + limits.q_max)[None]) / (0.5 * span)))}
