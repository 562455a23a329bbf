"""The two embodiments behind one interface: a policy action becomes ``ticks`` safety-checked
commands at the loop rate.

- ``PandaArm``: any ``RobotBackend`` (``mujoco`` in training and evaluation, ``kinematic`` for
  tests, ``polymetis`` on the robot). Every joint command passes the control package's
  ``SafetyLayer.check_next`` (joint margins, finite-difference velocity/acceleration/jerk,
  workspace box) and the measured joints must stay within ``max_deviation_rad`` of the last
  command, exactly the checks of ``control.loop``; a violation stops the arm (``backend.stop()``)
  and nothing more is sent.
- ``FloatingHand``: the floating Franka Hand's three slide servos (MuJoCo only); its TCP target
  must stay inside the same workspace box and the measured TCP within ``max_deviation_m`` of it.

Both ``apply(action)`` and return ``None`` or the one-sentence reason of a violation.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dream2flow.config import RobotLimits, load_robot_limits
from dream2flow.control.command_log import CommandLogBuilder
from dream2flow.control.kinematics import fk_points
from dream2flow.control.safety import SafetyLayer
from dream2flow.control.settings import LoopConfig, load_loop_config
from dream2flow.rl.controller import (ControllerConfig, FloatingVelocityController, PandaVelocityController,
                                      action_to_velocity, check_action)

EMBODIMENTS: tuple[str, ...] = ("panda", "floating")
FLOAT_MAX_DEVIATION_M = 0.03  # measured vs commanded TCP of the floating hand (its servos saturate at 150 N, 2.5 cm)


class PandaArm:
    """Policy actions -> joint commands on ``backend`` (module docstring). ``on_tick(backend)``
    runs after each command (e.g. a real-time pacer or a recorder)."""

    name = "panda"

    def __init__(self, backend: Any, *, ticks_per_action: int, controller: ControllerConfig | None = None,
                 loop: LoopConfig | None = None, limits: RobotLimits | None = None,
                 log_capacity: int = 0, on_tick: Callable[[Any], None] | None = None) -> None:
        self.backend = backend
        self.ticks = int(ticks_per_action)
        self.ctrl_cfg = controller or ControllerConfig()
        self.loop_cfg = loop or load_loop_config()
        self.limits = limits or load_robot_limits()
        self.safety = SafetyLayer(self.limits, self.loop_cfg)
        self.controller = PandaVelocityController(self.ctrl_cfg, self.limits)
        self.period = self.ctrl_cfg.dt_s
        self.log = CommandLogBuilder(log_capacity) if log_capacity else None
        self.on_tick = on_tick
        self.tick = 0
        self.grasping: bool | None = None
        self.q = np.zeros(7)
        self.gripper_width = 0.0

    def start(self) -> None:
        """Adopt the measured joints as the first command (call after every reset of the robot)."""
        st = self.backend.state()
        q = np.asarray(st.q, dtype=np.float64)
        self.controller.reset(q)
        t_h, q_h = SafetyLayer.history(0.0, q, self.period)
        self.hist_t = np.append(t_h, 0.0)
        self.hist_q = np.vstack([q_h, q_h[-1]])
        self.last_cmd = q.copy()
        self.tick = 0
        self.grasping = None
        self.q = q
        self.gripper_width = float(st.gripper_width_m)

    def tcp(self) -> np.ndarray:
        """Measured TCP position [3] (m), by the runtime's forward kinematics of the measured joints."""
        return np.array(fk_points(self.q)[0])

    def apply(self, action: np.ndarray) -> str | None:
        bad = check_action(action)
        if bad:
            self.backend.stop()
            return bad
        v, grasp = action_to_velocity(action, self.ctrl_cfg.v_max_mps)
        b = self.backend
        if grasp != self.grasping:
            if grasp:
                b.gripper(None, True)
            else:
                b.gripper(self.limits.gripper_max_width_m, False)
            self.grasping = grasp
        for _ in range(self.ticks):
            st = b.state()
            q_meas = np.asarray(st.q, dtype=np.float64)
            t = (self.tick + 1) * self.period
            bad = self.safety.check_deviation(q_meas, self.last_cmd, t - self.period)
            if bad:
                b.stop()
                return bad
            q = self.controller.tick(v)
            self.hist_t[3], self.hist_q[3] = t, q
            bad = self.safety.check_next(self.hist_t, self.hist_q)
            if bad:
                b.stop()
                return bad
            if self.log is not None:
                self.log.append(self.tick, t, q, 1.0 if grasp else 0.0)
            b.command_joint_positions(q)
            self.last_cmd = q
            self.hist_t[:3], self.hist_q[:3] = self.hist_t[1:], self.hist_q[1:]
            self.tick += 1
            b.step(self.period)
            if self.on_tick is not None:
                self.on_tick(b)
        st = b.state()
        self.q = np.asarray(st.q, dtype=np.float64)
        self.gripper_width = float(st.gripper_width_m)
        return None


class FloatingHand:
    """Policy actions -> TCP targets for the floating hand's slide servos in a MuJoCo scene."""

    name = "floating"

    def __init__(self, model: Any, data: Any, *, ticks_per_action: int, controller: ControllerConfig | None = None,
                 loop: LoopConfig | None = None) -> None:
        import mujoco

        from dream2flow.sim import panda_model

        self.model, self.data = model, data
        self.ticks = int(ticks_per_action)
        self.ctrl_cfg = controller or ControllerConfig()
        self.loop_cfg = loop or load_loop_config()
        self.controller = FloatingVelocityController(self.ctrl_cfg)
        jids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in panda_model.FLOAT_JOINTS]
        self.qadr = np.array([model.jnt_qposadr[j] for j in jids])
        self.act = np.array([model.actuator(a).id for a in panda_model.FLOAT_ACTUATORS])
        self.grip_act = model.actuator(panda_model.GRIPPER_ACTUATOR).id
        fj = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in panda_model.FINGER_JOINTS]
        self.finger_qadr = np.array([model.jnt_qposadr[j] for j in fj])
        self.site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, panda_model.TCP_SITE)
        self.hand_max_width = 2 * panda_model.FINGER_MAX_M
        self.grasp_target = panda_model.GRASP_TARGET_M
        self.ws_lo = np.asarray(self.loop_cfg.workspace_min, dtype=np.float64)
        self.ws_hi = np.asarray(self.loop_cfg.workspace_max, dtype=np.float64)
        self.n_sub = max(1, int(round(self.ctrl_cfg.dt_s / model.opt.timestep)))
        self.ff_gain = panda_model.FLOAT_KV / panda_model.FLOAT_KP  # servo damping cancelled while moving
        self.grasping: bool | None = None
        scratch = mujoco.MjData(model)  # the TCP's offset from the slide joints' position (constant)
        mujoco.mj_forward(model, scratch)
        self.tcp_offset = np.array(scratch.site_xpos[self.site]) - np.array(scratch.qpos[self.qadr])
        self.gripper_width = 0.0

    def set_tcp(self, p_tcp: np.ndarray) -> None:
        """Put the hand (qpos and servo targets) so that its TCP is at ``p_tcp`` (before mj_forward)."""
        self.data.qpos[self.qadr] = p_tcp - self.tcp_offset
        self.data.ctrl[self.act] = p_tcp - self.tcp_offset

    def start(self) -> None:
        self.controller.reset(self.tcp())
        self.grasping = None
        self.gripper_width = float(self.data.qpos[self.finger_qadr].sum())

    def tcp(self) -> np.ndarray:
        return np.array(self.data.qpos[self.qadr]) + self.tcp_offset

    def apply(self, action: np.ndarray) -> str | None:
        import mujoco

        bad = check_action(action)
        if bad:
            return bad
        v, grasp = action_to_velocity(action, self.ctrl_cfg.v_max_mps)
        if grasp != self.grasping:
            self.data.ctrl[self.grip_act] = self.grasp_target if grasp else self.hand_max_width / 2
            self.grasping = grasp
        m, d = self.model, self.data
        for _ in range(self.ticks):
            dev = float(np.linalg.norm(self.tcp() - self.controller.p_cmd))
            if dev > FLOAT_MAX_DEVIATION_M:
                return (f"the hand is {dev:.3f} m from its target (max {FLOAT_MAX_DEVIATION_M} m): "
                        f"it is pushing against something")
            p = self.controller.tick(v)
            if ((p < self.ws_lo) | (p > self.ws_hi)).any():
                return f"TCP target {np.round(p, 3).tolist()} leaves the workspace box"
            d.ctrl[self.act] = p - self.tcp_offset + self.ff_gain * self.controller.v_cmd  # velocity feed-forward
            for _ in range(self.n_sub):
                mujoco.mj_step(m, d)
        self.gripper_width = float(d.qpos[self.finger_qadr].sum())
        return None
