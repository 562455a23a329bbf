"""``MujocoRobotBackend``: the control issue's ``RobotBackend`` on top of a ``SimEnv``'s physics.

Why it looks like this: the real Panda under Polymetis is a joint impedance controller that
receives streamed joint targets; here each arm joint is a MuJoCo position servo (kp, kv per
joint, torque-limited, gravity compensated by ``gravcomp``). Between two commands the target
is extrapolated with the commands' own velocity for at most one command period (a first-order
hold, as a streaming motion generator does), and that velocity is fed forward to the damping
term, so a smooth trajectory is tracked without the lag of a pure PD. ``step(dt_s)`` advances
physics by round(dt_s / timestep) steps: the same commands give bit-identical rollouts.

Two joint impedances (``IMPEDANCES``, chosen by ``impedance=``; default ``stiff``):
``stiff`` keeps the model's servos (MuJoCo Menagerie's kp 2000-4500 N·m/rad: the arm goes where
it is told, whatever pushes back); ``franka`` sets the gains Polymetis runs the real arm with
(``hw/robot/polymetis.toml`` Kq/Kqd, 20-120 N·m/rad), so a hinge or a slide the hand holds can
guide it off an imperfect path, as on the real robot. A compliant arm trails its target under
contact forces; the control loop's deviation check is unchanged (``max_deviation_rad``), so a
hinge may guide the hand only within it. Joint friction in the model (``frictionloss``) is scaled by
the same factor as the gains' (the Franka's link-side torque control compensates most of its
joint friction; a 1.2 N·m friction against a 20 N·m/rad spring would be a 0.06 rad dead band).

The gripper grasps by contact only: ``gripper(grasp=True)`` drives the fingers closed through a
force-limited servo (50 N per finger); nothing is welded to the hand.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from dream2flow.errors import InvalidInput, NotReady, SafetyViolation
from dream2flow.sim import panda_model
from dream2flow.types import RobotState

if TYPE_CHECKING:
    from dream2flow.sim.env import SimEnv

LIMIT_TOL_RAD = 1e-6
IMPEDANCES = ("stiff", "franka")
DEFAULT_IMPEDANCE = "stiff"  # what the RL and Push-T environments were tuned with; episodes choose their own


def impedance_gains(impedance: str) -> tuple[np.ndarray, np.ndarray]:
    """(Kq [7] N·m/rad, Kqd [7] N·m·s/rad) of an ``IMPEDANCES`` name."""
    if impedance == "stiff":
        return np.asarray(panda_model.KP, dtype=np.float64), np.asarray(panda_model.KV, dtype=np.float64)
    if impedance == "franka":
        from dream2flow.control.backends.polymetis import load_polymetis_config

        cfg = load_polymetis_config()
        return np.asarray(cfg.Kq, dtype=np.float64), np.asarray(cfg.Kqd, dtype=np.float64)
    raise InvalidInput(f"unknown mujoco impedance {impedance!r} (choose from {', '.join(IMPEDANCES)})")


class MujocoRobotBackend:
    """RobotBackend over ``env`` (a SimEnv), or over a fresh ``make_env(task, seed)``."""

    name = "mujoco"
    simulated = True

    def __init__(self, env: "SimEnv | None" = None, *, task: str | None = None, seed: int = 0,
                 impedance: str | None = None, **_: Any) -> None:
        import mujoco

        if env is None:
            from dream2flow.sim.env import make_env

            env = make_env(task or "bread_in_bowl", seed)
        self.env = env
        self.model = env.model
        self.data = env.data
        m = self.model
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in panda_model.ARM_JOINTS]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jid])
        self._dadr = np.array([m.jnt_dofadr[j] for j in jid])
        self._act = np.array([m.actuator(a).id for a in panda_model.ARM_ACTUATORS])
        self._act0 = int(self._act[0])
        if not np.array_equal(self._act, np.arange(self._act0, self._act0 + 7)):  # pragma: no cover - model layout
            raise NotReady("mujoco model: the arm actuators must be contiguous")
        self._grip_act = m.actuator(panda_model.GRIPPER_ACTUATOR).id
        fj = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in panda_model.FINGER_JOINTS]
        self._finger_qadr = np.array([m.jnt_qposadr[j] for j in fj])
        from dream2flow.config import load_robot_limits

        self.limits = load_robot_limits()
        self.impedance = impedance or DEFAULT_IMPEDANCE
        self._set_impedance(self.impedance)
        self._lock = threading.Lock()
        self._version = 0  # bumped on every change of the target (lock-free check in step())
        self._connected = False
        self._closed = False
        self._sync_from_state()

    # --- protocol ------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._closed:
            raise NotReady("the mujoco backend was closed; make a new one")
        self._connected = True

    def state(self) -> RobotState:
        d = self.data
        return RobotState(q=np.array(d.qpos[self._qadr]), dq=np.array(d.qvel[self._dadr]), t_s=float(d.time),
                          gripper_width_m=self.gripper_width())

    def command_joint_positions(self, q: np.ndarray) -> None:
        self._require_connected()
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (7,) or not np.isfinite(q).all():
            raise InvalidInput(f"joint command must be 7 finite numbers, got shape {list(q.shape)}")
        problems = self.limits.check_q(q, margin_rad=-LIMIT_TOL_RAD)
        if problems:
            self.stop()
            raise SafetyViolation(f"joint command outside the limits: {problems[0]}")
        t = float(self.data.time)
        with self._lock:
            dt = t - self._t_cmd
            if dt > 1e-9:
                v = (q - self._q_cmd) / dt
                self._dq_ff = np.clip(v, -self.limits.dq_max, self.limits.dq_max)
                self._hold_s = dt
            self._q_cmd = q
            self._t_cmd = t
            self._version += 1

    def gripper(self, width_m: float | None = None, grasp: bool = False) -> None:
        """Open to ``width_m`` (default fully open, 0.08 m), or close on an object (``grasp=True``)."""
        self._require_connected()
        if grasp:
            target = panda_model.GRASP_TARGET_M
        else:
            w = self.limits.gripper_max_width_m if width_m is None else float(width_m)
            if not (0.0 <= w <= self.limits.gripper_max_width_m + 1e-9) or not np.isfinite(w):
                raise InvalidInput(f"gripper width must be in 0..{self.limits.gripper_max_width_m} m, got {width_m}")
            target = w / 2.0
        self.data.ctrl[self._grip_act] = target

    def step(self, dt_s: float) -> None:
        """Advance physics by round(dt_s / timestep) steps (at least one)."""
        import mujoco

        if not (dt_s > 0 and np.isfinite(dt_s)):
            raise InvalidInput(f"step dt_s must be a positive number, got {dt_s}")
        m, d = self.model, self.data
        n = max(1, int(round(dt_s / m.opt.timestep)))
        ctrl = d.ctrl[self._act0:self._act0 + 7]  # a view: arm actuators are contiguous
        version = -1
        for _ in range(n):
            if version != self._version:  # a command or stop() arrived (maybe from another thread)
                with self._lock:
                    version = self._version
                    q_cmd, dq, t_cmd, hold = self._q_cmd, self._dq_ff, self._t_cmd, self._hold_s
                ff = self._ff_gain * dq
                q_end = np.clip(q_cmd + dq * hold, self.limits.q_min, self.limits.q_max)
            age = d.time - t_cmd
            if age < hold:  # first-order hold with velocity feed-forward
                ctrl[:] = np.clip(q_cmd + dq * max(age, 0.0), self.limits.q_min, self.limits.q_max) + ff
            else:
                ctrl[:] = q_end
            mujoco.mj_step(m, d)

    def stop(self) -> None:
        """Hold the current joint positions now (thread-safe, idempotent)."""
        self._sync_from_state()
        self.data.ctrl[self._act] = self._q_cmd

    def close(self) -> None:
        self.stop()
        self._connected = False
        self._closed = True

    # --- extras --------------------------------------------------------------------------------
    def gripper_width(self) -> float:
        """Distance between the finger pads (m)."""
        return float(self.data.qpos[self._finger_qadr].sum())

    def target(self) -> np.ndarray:
        """The joint target the servos are tracking now [7] rad."""
        return np.array(self._q_cmd)

    @property
    def joint_stiffness_nm_per_rad(self) -> np.ndarray | None:
        """[7] joint stiffness of a compliant arm (the loop's compliance allowance); None when stiff."""
        return None if self.impedance == "stiff" else self._kq.copy()

    def _set_impedance(self, impedance: str) -> None:
        """Joint gains (and friction, scaled alike) of the arm's actuators in this env's model."""
        kq, kqd = impedance_gains(impedance)
        m = self.model
        kp0 = np.asarray(panda_model.KP, dtype=np.float64)
        if not hasattr(self.env, "_arm_frictionloss0"):
            self.env._arm_frictionloss0 = np.array(m.dof_frictionloss[self._dadr])
        for i, a in enumerate(self._act):
            m.actuator_gainprm[a, 0] = kq[i]
            m.actuator_biasprm[a, 1] = -kq[i]
            m.actuator_biasprm[a, 2] = -kqd[i]
        m.dof_frictionloss[self._dadr] = self.env._arm_frictionloss0 * np.minimum(1.0, kq / kp0)
        self._kq, self._kqd = kq, kqd
        self._ff_gain = kqd / kq

    def _sync_from_state(self) -> None:
        """Adopt the current qpos as the held target (after an env reset)."""
        with self._lock:
            self._q_cmd = np.array(self.data.qpos[self._qadr])
            self._dq_ff = np.zeros(7)
            self._t_cmd = float(self.data.time)
            self._hold_s = 0.0
            self._version += 1

    def _require_connected(self) -> None:
        if self._closed:
            raise NotReady("the mujoco backend was closed")
        if not self._connected:
            raise NotReady("mujoco backend: call connect() first")
