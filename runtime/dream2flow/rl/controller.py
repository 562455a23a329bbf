"""How a policy's action becomes a command stream: Cartesian velocity → joint (or hand) targets
at the control-loop rate, smooth enough by construction for the safety layer's limits.

The policy (10 Hz) asks for a TCP velocity ``v_des`` [3] m/s and a gripper state. Every loop
tick (100 Hz) the controller turns that into the next command:

- Panda: resolved-rate control with the runtime's NumPy kinematics (``control.kinematics``):
  ``dq = Jᵀ(JJᵀ + λ²I)⁻¹ [v_des; k_ori·e_R]`` holds the TCP orientation ``R_des`` (top-down,
  fingers closing along world x) while moving, a null-space term pulls towards ``q_rest``;
  each joint brakes before its limit (``|dq| ≤ sqrt(2·a·distance)``), the joint velocity vector
  is scaled down uniformly to ``joint_velocity_fraction`` of Franka's limits, and the commanded
  joint velocity moves towards it by at most ``joint_acceleration_fraction`` of Franka's
  acceleration limits per tick (the change scaled uniformly, so the twist keeps its direction and
  the hand its orientation while it speeds up or turns). So the stream's finite-difference velocity, acceleration and
  jerk stay under the safety layer's limits (0.9, 0.9, 1.0 of Franka's) without the safety layer
  ever changing a command: if something still breaks a limit, the loop refuses it.
- Floating hand: the TCP target integrates ``v_des`` with the same acceleration-limited ramp in
  Cartesian space.

Why integrate the *commanded* state, not the measured one: measurement noise would turn into
command jerk. When the robot is blocked (pushing into the door or the table) the command runs
ahead of the measurement and the loop's deviation check stops the run; the RL environment uses
the same checks, so policies learn not to do that.

The same code runs in training (``rl.door_env``) and in deployment (``rl.runner``), one source of
truth for the action's meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dream2flow.config import RobotLimits, load_robot_limits
from dream2flow.control.kinematics import fk_links

if TYPE_CHECKING:
    from jaxtyping import Float

# TCP orientation held by both embodiments: z (approach) straight down, y (finger closing axis)
# along world +x, i.e. across a handle bar that runs along the door front (columns: TCP axes).
R_BASE_TCP_DES = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass(frozen=True)
class ControllerConfig:
    """Units: m/s, rad/s, 1/s, Hz. ``v_max_mps``: the TCP speed of a full action (per axis)."""

    v_max_mps: float = 0.25
    tick_hz: float = 100.0
    joint_velocity_fraction: float = 0.5      # of dq_max
    joint_acceleration_fraction: float = 0.5  # of ddq_max
    orientation_gain: float = 8.0             # 1/s on the rotation error
    nullspace_gain: float = 0.5               # 1/s towards q_rest
    damping: float = 0.03                     # DLS lambda (m)
    limit_buffer_rad: float = 0.05            # brake to stop this far inside the safety margin
    joint_margin_rad: float = 0.05            # the safety layer's margin (hw/robot/control.toml)
    cart_acceleration_mps2: float = 2.0       # floating hand

    @property
    def dt_s(self) -> float:
        return 1.0 / self.tick_hz


def tcp_jacobian(q: Float[np.ndarray, "7"]) -> tuple[np.ndarray, np.ndarray]:
    """(T_base_tcp [4,4], geometric Jacobian [6,7]: rows v (m/s) then ω (rad/s) per rad/s).
    Modified DH: joint i turns about the z axis of link frame i."""
    T = fk_links(q)
    p = T[8, :3, 3]
    z = T[:7, :3, 2]
    o = T[:7, :3, 3]
    r = p - o
    J = np.empty((6, 7))
    J[0] = z[:, 1] * r[:, 2] - z[:, 2] * r[:, 1]   # z × (p - o), written out: np.cross is slow on small arrays
    J[1] = z[:, 2] * r[:, 0] - z[:, 0] * r[:, 2]
    J[2] = z[:, 0] * r[:, 1] - z[:, 1] * r[:, 0]
    J[3:] = z.T
    return T[8], J


def rotation_error(R: np.ndarray, R_des: np.ndarray) -> np.ndarray:
    """Axis-angle-like error [3] (rad) that rotates ``R`` towards ``R_des`` (small angles):
    ``0.5 · Σ_i R[:, i] × R_des[:, i] = 0.5 · vee(M - Mᵀ)`` with ``M = R_des Rᵀ``."""
    M = R_des @ R.T
    return 0.5 * np.array([M[2, 1] - M[1, 2], M[0, 2] - M[2, 0], M[1, 0] - M[0, 1]])


def solve_ik(p_des: np.ndarray, q0: np.ndarray, *, R_des: np.ndarray = R_BASE_TCP_DES, iters: int = 200,
             tol_m: float = 1e-5, limits: RobotLimits | None = None) -> np.ndarray:
    """Joint angles [7] putting the TCP at ``p_des`` with orientation ``R_des``, by damped
    least squares from ``q0`` (deterministic). ValueError if it does not converge within limits."""
    lim = limits or load_robot_limits()
    q = np.asarray(q0, dtype=np.float64).copy()
    for _ in range(iters):
        T, J = tcp_jacobian(q)
        err = np.concatenate([p_des - T[:3, 3], rotation_error(T[:3, :3], R_des)])
        if np.abs(err).max() < tol_m:
            break
        dq = J.T @ np.linalg.solve(J @ J.T + 1e-4 * np.eye(6), err)
        q = np.clip(q + dq, lim.q_min + 0.1, lim.q_max - 0.1)
    T, _ = tcp_jacobian(q)
    if np.linalg.norm(T[:3, 3] - p_des) > 1e-3:
        raise ValueError(f"IK did not reach {p_des} (stopped {np.linalg.norm(T[:3, 3] - p_des):.4f} m away)")
    return q


class PandaVelocityController:
    """TCP velocity → joint command stream (module docstring). ``reset(q)`` then ``tick(v_des)``
    once per loop period; ``q_cmd``/``dq_cmd`` are the last command and its velocity."""

    def __init__(self, config: ControllerConfig | None = None, limits: RobotLimits | None = None,
                 q_rest: np.ndarray | None = None, R_des: np.ndarray = R_BASE_TCP_DES) -> None:
        self.cfg = config or ControllerConfig()
        self.limits = limits or load_robot_limits()
        lim, c = self.limits, self.cfg
        self.v_lim = lim.dq_max * c.joint_velocity_fraction
        self.a_lim = lim.ddq_max * c.joint_acceleration_fraction
        inside = c.joint_margin_rad + c.limit_buffer_rad
        self.q_lo = lim.q_min + inside
        self.q_hi = lim.q_max - inside
        self.R_des = np.asarray(R_des, dtype=np.float64)
        self.q_rest = np.asarray(q_rest if q_rest is not None else lim.q_ready, dtype=np.float64)
        self.q_cmd = self.q_rest.copy()
        self.dq_cmd = np.zeros(7)
        self._lam2 = c.damping ** 2

    def reset(self, q: np.ndarray) -> None:
        self.q_cmd = np.asarray(q, dtype=np.float64).copy()
        self.dq_cmd = np.zeros(7)

    def tcp_pose(self, q: np.ndarray | None = None) -> np.ndarray:
        """T_base_tcp [4,4] of ``q`` (default: the last command)."""
        return fk_links(self.q_cmd if q is None else q)[8]

    def desired_joint_velocity(self, v_des: np.ndarray) -> np.ndarray:
        c = self.cfg
        q = self.q_cmd
        T, J = tcp_jacobian(q)
        xdot = np.concatenate([np.asarray(v_des, dtype=np.float64),
                               c.orientation_gain * rotation_error(T[:3, :3], self.R_des)])
        JJt = J @ J.T
        JJt[np.diag_indices(6)] += self._lam2
        Jpinv = J.T @ np.linalg.inv(JJt)                      # [7,6] damped pseudo-inverse
        dq = Jpinv @ xdot
        dq += c.nullspace_gain * ((self.q_rest - q) - Jpinv @ (J @ (self.q_rest - q)))
        # brake before joint limits: never faster towards a limit than one can stop within it
        room_hi = np.maximum(self.q_hi - q, 0.0)
        room_lo = np.maximum(q - self.q_lo, 0.0)
        dq = np.minimum(dq, np.sqrt(2.0 * 0.5 * self.a_lim * room_hi))
        dq = np.maximum(dq, -np.sqrt(2.0 * 0.5 * self.a_lim * room_lo))
        s = float(np.max(np.abs(dq) / self.v_lim))
        if s > 1.0:
            dq /= s
        return dq

    def tick(self, v_des: np.ndarray) -> np.ndarray:
        """Advance one period with TCP velocity ``v_des`` [3] m/s -> the next joint command [7] rad."""
        dt = self.cfg.dt_s
        dq_des = self.desired_joint_velocity(v_des)
        delta = dq_des - self.dq_cmd
        s = float(np.max(np.abs(delta) / (self.a_lim * dt)))
        self.dq_cmd = self.dq_cmd + (delta / s if s > 1.0 else delta)  # uniform: keeps the twist's direction
        self.q_cmd = self.q_cmd + self.dq_cmd * dt
        return self.q_cmd.copy()


class FloatingVelocityController:
    """TCP velocity → TCP position targets for the floating hand (acceleration-limited ramp)."""

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.cfg = config or ControllerConfig()
        self.p_cmd = np.zeros(3)
        self.v_cmd = np.zeros(3)

    def reset(self, p: np.ndarray) -> None:
        self.p_cmd = np.asarray(p, dtype=np.float64).copy()
        self.v_cmd = np.zeros(3)

    def tick(self, v_des: np.ndarray) -> np.ndarray:
        dt = self.cfg.dt_s
        dv = np.asarray(v_des, dtype=np.float64) - self.v_cmd
        n = float(np.linalg.norm(dv))
        step = self.cfg.cart_acceleration_mps2 * dt
        if n > step:
            dv *= step / n
        self.v_cmd = self.v_cmd + dv
        self.p_cmd = self.p_cmd + self.v_cmd * dt
        return self.p_cmd.copy()


def action_to_velocity(action: np.ndarray, v_max_mps: float) -> tuple[np.ndarray, bool]:
    """Policy action [4] in [-1, 1] -> (TCP velocity [3] m/s, close the gripper?). Actions outside
    [-1, 1] or non-finite are refused by the caller (``check_action``), never clipped here."""
    a = np.asarray(action, dtype=np.float64)
    return a[:3] * v_max_mps, bool(a[3] > 0.0)


def check_action(action: np.ndarray) -> str | None:
    """None, or why ``action`` is not a valid policy action (shape [4], finite, within [-1, 1])."""
    a = np.asarray(action)
    if a.shape != (4,):
        return f"a policy action must have 4 numbers, got shape {list(a.shape)}"
    if not np.isfinite(a).all():
        return "the policy action contains NaN or inf"
    if (np.abs(a) > 1.0 + 1e-6).any():
        return f"the policy action {np.round(a, 4).tolist()} leaves [-1, 1]"
    return None


__all__ = ["ControllerConfig", "PandaVelocityController", "FloatingVelocityController", "R_BASE_TCP_DES",
           "tcp_jacobian", "rotation_error", "solve_ik", "action_to_velocity", "check_action"]
