"""Time-indexed interpolation of a ``Plan`` into the command stream the loop sends.

Why precompute the whole stream: the command at tick k is a pure function of (plan, measured
start joints, rate) — so it can be checked completely before the first command leaves the
process (no half-executed motion), and two runs give bit-identical command logs.

The trajectory, in plan time t (s):
1. move-to-start (only when the measured joints differ from ``plan.q[0]`` by more than
   ``start_tolerance_rad``): a minimum-jerk quintic ``q(s) = q_a + (q_b - q_a)(10s³ - 15s⁴ + 6s⁵)``,
   zero velocity/acceleration at both ends, its duration the smallest that keeps every joint
   under a fraction of Franka's velocity/acceleration/jerk limits (peaks of the profile:
   1.875·Δ/T, 5.774·Δ/T², 60·Δ/T³);
2. the plan: a clamped cubic spline through ``plan.q[k]`` at ``k·dt_s`` (C², zero velocity at
   both ends, piecewise-constant jerk), so velocity and acceleration are continuous;
3. hold ``plan.q[-1]`` for ``settle_s``.
Gripper: the state commanded at tick k is ``plan.gripper[i]`` with i the plan index in effect at
that time; a change 0→1 is a grasp, 1→0 an open, issued when plan time reaches ``i·dt_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dream2flow.config import RobotLimits
from dream2flow.control.settings import LoopConfig
from dream2flow.types import Plan

if TYPE_CHECKING:
    from jaxtyping import Float

# Peaks of the unit min-jerk profile s(τ)=10τ³-15τ⁴+6τ⁵ over τ in [0,1].
MINJERK_PEAK_VEL = 1.875
MINJERK_PEAK_ACC = 10.0 / math.sqrt(3.0)
MINJERK_PEAK_JERK = 60.0


def min_jerk_duration(delta: np.ndarray, limits: RobotLimits, *, velocity_fraction: float,
                      acceleration_fraction: float, jerk_fraction: float, min_duration_s: float) -> float:
    """Shortest duration (s) of a min-jerk move by ``delta`` [7] rad keeping every joint under the
    given fractions of the velocity, acceleration and jerk limits (and at least ``min_duration_s``)."""
    d = np.abs(np.asarray(delta, dtype=np.float64))
    t_v = MINJERK_PEAK_VEL * d / (velocity_fraction * limits.dq_max)
    t_a = np.sqrt(MINJERK_PEAK_ACC * d / (acceleration_fraction * limits.ddq_max))
    t_j = np.cbrt(MINJERK_PEAK_JERK * d / (jerk_fraction * limits.dddq_max))
    return float(max(min_duration_s, t_v.max(), t_a.max(), t_j.max()))


def min_jerk(q_a: np.ndarray, q_b: np.ndarray, duration_s: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-jerk positions and velocities [N,7] from ``q_a`` to ``q_b`` at times ``t`` [N] (clamped to [0, T])."""
    tau = np.clip(np.asarray(t, dtype=np.float64) / duration_s, 0.0, 1.0)[:, None]
    delta = (np.asarray(q_b) - np.asarray(q_a))[None, :]
    s = tau ** 3 * (10.0 - 15.0 * tau + 6.0 * tau ** 2)
    ds = 30.0 * tau ** 2 * (1.0 - tau) ** 2 / duration_s
    return np.asarray(q_a)[None, :] + delta * s, delta * ds


@dataclass
class Trajectory:
    """The continuous reference ``q(t)`` for one plan execution (see module docstring)."""

    q_start: np.ndarray        # [7] measured joints at the start (rad)
    plan: Plan
    start_segment_s: float     # 0 when no move-to-start was needed
    settle_s: float

    def __post_init__(self) -> None:
        from scipy.interpolate import CubicSpline

        H = self.plan.horizon
        knots = np.arange(H, dtype=np.float64) * float(self.plan.dt_s)
        self._spline = CubicSpline(knots, self.plan.q, axis=0, bc_type="clamped")

    @property
    def plan_offset_s(self) -> float:
        """Plan time 0 (``plan.q[0]``) happens at this trajectory time."""
        return self.start_segment_s

    @property
    def duration_s(self) -> float:
        return self.start_segment_s + self.plan.duration_s + self.settle_s

    def position_velocity(self, t: Float[np.ndarray, "N"]) -> tuple[np.ndarray, np.ndarray]:
        """q(t), dq(t) [N,7] (rad, rad/s) at trajectory times ``t`` [N] (s)."""
        t = np.asarray(t, dtype=np.float64)
        q = np.empty((t.size, 7))
        dq = np.zeros((t.size, 7))
        T0, Tp = self.start_segment_s, self.plan.duration_s
        pre = t < T0
        if pre.any():
            q[pre], dq[pre] = min_jerk(self.q_start, self.plan.q[0], T0, t[pre])
        mid = (~pre) & (t <= T0 + Tp)
        if mid.any():
            tp = t[mid] - T0
            q[mid] = self._spline(tp)
            dq[mid] = self._spline(tp, 1)
        post = t > T0 + Tp
        q[post] = self.plan.q[-1]
        return q, dq

    def gripper(self, t: Float[np.ndarray, "N"]) -> np.ndarray:
        """Commanded gripper state [N] float32 (0 open, 1 closed) at trajectory times ``t``."""
        t = np.asarray(t, dtype=np.float64)
        idx = np.floor((t - self.start_segment_s) / float(self.plan.dt_s) + 1e-9).astype(np.int64)
        idx = np.clip(idx, 0, self.plan.horizon - 1)
        return (self.plan.gripper[idx] > 0.5).astype(np.float32)


def build_trajectory(plan: Plan, q_measured: np.ndarray, limits: RobotLimits, config: LoopConfig) -> Trajectory:
    """Reference trajectory from the measured joints through the plan (adds move-to-start if needed)."""
    q_measured = np.asarray(q_measured, dtype=np.float64).reshape(7)
    delta = plan.q[0] - q_measured
    if np.abs(delta).max() > config.start_tolerance_rad:
        T0 = min_jerk_duration(delta, limits, velocity_fraction=config.start_velocity_fraction,
                               acceleration_fraction=config.start_acceleration_fraction,
                               jerk_fraction=config.start_jerk_fraction, min_duration_s=config.start_min_duration_s)
    else:
        T0 = 0.0
    return Trajectory(q_start=q_measured, plan=plan, start_segment_s=T0, settle_s=config.settle_s)


@dataclass
class CommandStream:
    """What the loop will send, one row per tick: ``tick`` [N] int64, plan time ``t_s`` [N] = tick/rate
    (s), joint targets ``q`` [N,7] (rad), gripper state ``gripper`` [N] float32 (0 open, 1 closed)."""

    rate_hz: float
    tick: np.ndarray
    t_s: np.ndarray
    q: np.ndarray
    gripper: np.ndarray
    start_segment_s: float = 0.0

    def __len__(self) -> int:
        return int(self.tick.size)


def sample_stream(traj: Trajectory, rate_hz: float) -> CommandStream:
    """Sample the trajectory at ``t_k = k / rate_hz`` for k = 0..ceil(duration·rate) (the last tick
    reaches the end). Pure function of its inputs: identical inputs give identical bits."""
    n = int(math.ceil(traj.duration_s * rate_hz - 1e-9)) + 1
    tick = np.arange(n, dtype=np.int64)
    t = tick / float(rate_hz)
    q, _ = traj.position_velocity(t)
    return CommandStream(rate_hz=float(rate_hz), tick=tick, t_s=t, q=q, gripper=traj.gripper(t),
                         start_segment_s=traj.start_segment_s)


def dense_trajectory(traj: Trajectory, hz: float) -> tuple[np.ndarray, np.ndarray]:
    """The whole trajectory resampled at ``hz`` (e.g. Polymetis' 1 kHz): positions and velocities
    [M,7], as Polymetis' own ``move_to_joint_positions`` feeds its ``JointTrajectoryExecutor``."""
    m = int(math.ceil(traj.duration_s * hz - 1e-9)) + 1
    return traj.position_velocity(np.arange(m, dtype=np.float64) / float(hz))
