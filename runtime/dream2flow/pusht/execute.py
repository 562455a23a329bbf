"""Executing a push with the Panda: IK on the JAX solver, the planner's segment builders, and
the control loop with its safety layer (``control.loop.execute_plan``) on the MuJoCo backend.

One push is one ``Plan`` with the gripper closed throughout: from the current joints (a joint-
space quintic) to ``HOVER_Z_M`` above the start, a straight line down to ``PUSH_Z_M``, the stroke
along ``u`` (straight line, quintic, peak ``PUSH_SPEED_MPS`` — the floating pusher's profile),
a straight line up, and back to the ready pose, where the arm waits while the camera looks.
The hand points straight down in the ready pose's orientation (TCP x = base x). The plan is
slowed (never clipped) until the loop's own pre-flight check passes; a push the arm cannot
reach raises ``Unreachable`` before anything moves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from dream2flow.errors import ExecutionFailed, Unreachable
from dream2flow.pusht.primitive import HOVER_Z_M, PUSH_SPEED_MPS, PUSH_Z_M, Pushes
from dream2flow.types import Plan

R_PUSH = np.diag([1.0, -1.0, -1.0])   # TCP orientation while pushing (the ready pose's)
TRANSIT_SPEED_MPS = 0.25
TRANSIT_MARGIN = 0.8      # joint-space transits use this fraction of the velocity/acceleration limits
RATE_HZ = 50.0            # control rate of the pushes (the loop's safety checks run every tick)
PLAN_DT_S = 0.05
REACH_X = (0.31, 0.80)   # push start/end must lie here (m): checked before IK. Nearer the base than
                         # x = 0.30 the fingers cannot point down at table height (joint 4's limit).
REACH_Y = (-0.40, 0.40)


P_MID = (0.45, 0.0)       # mid-table (m): IK paths to every push start from here
CONTINUATION_STEPS = 8
IK_BUCKET = 32


@lru_cache(maxsize=1)
def q_mid() -> np.ndarray:
    """Joints with the finger tips down at ``HOVER_Z_M`` over the middle of the table (continuation
    from the ready pose along a straight line; once per process): every push's IK starts here."""
    from dream2flow.config import load_robot_limits
    from dream2flow.planning.config import load_planner_config
    from dream2flow.planning.kinematics import fk_tcp_np
    from dream2flow.planning.solver import ik_sequence

    lim, cfg = load_robot_limits(), load_planner_config()
    p0 = fk_tcp_np(lim.q_ready)[:3, 3]
    p1 = np.array([*P_MID, HOVER_Z_M])
    path = [_T(p0 + (p1 - p0) * s) for s in np.linspace(0.0, 1.0, CONTINUATION_STEPS + 1)[1:]]
    q, pe, _ = ik_sequence(np.array(path), lim.q_ready, horizon_bucket=IK_BUCKET, config=cfg, limits=lim)
    if pe[-1] > cfg.ik_tol_pos_m:
        raise Unreachable(f"the mid-table pose {p1.tolist()} is out of reach (IK error {pe[-1] * 1000:.1f} mm)")
    return q[-1]


def reachable(pushes: Pushes) -> np.ndarray:
    """[r] bool: start and end inside the box the arm pushes in (a cheap pre-filter; IK decides)."""
    ok = np.ones(len(pushes), bool)
    for p in (pushes.c, pushes.end()):
        ok &= (p[:, 0] >= REACH_X[0]) & (p[:, 0] <= REACH_X[1]) & (p[:, 1] >= REACH_Y[0]) & (p[:, 1] <= REACH_Y[1])
    return ok


def _T(p: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R_PUSH
    T[:3, 3] = p
    return T


def push_plan(push: Pushes, q0: np.ndarray, *, limits: Any = None, config: Any = None) -> Plan:
    """The joint plan of one push (module docstring) starting at joints ``q0`` [7]."""
    from dream2flow.config import load_robot_limits
    from dream2flow.planning.assemble import cartesian_segment, joint_segment
    from dream2flow.planning.config import load_planner_config
    from dream2flow.planning.solver import ik_sequence

    lim = limits or load_robot_limits()
    cfg = config or load_planner_config()
    c, u, d = push.c[0], push.u[0], float(push.d[0])
    e = c + u * d
    keys = [_T(np.array([c[0], c[1], HOVER_Z_M])), _T(np.array([c[0], c[1], PUSH_Z_M])),
            _T(np.array([e[0], e[1], PUSH_Z_M])), _T(np.array([e[0], e[1], HOVER_Z_M]))]
    # Warm-started IK along a path: from the mid-table pose to the start (continuation keeps the arm
    # on one branch; a cold start from the ready pose misses poses near the base), then the keys.
    a = np.array([*P_MID[:2], HOVER_Z_M])
    path = [_T(a + (keys[0][:3, 3] - a) * s) for s in np.linspace(0.0, 1.0, CONTINUATION_STEPS + 1)[1:-1]]
    q_all, pe_all, re_all = ik_sequence(np.array(path + keys), q_mid(), horizon_bucket=IK_BUCKET,
                                        config=cfg, limits=lim)
    q, pe, re = q_all[-4:], pe_all[-4:], re_all[-4:]
    bad = (pe > cfg.ik_tol_pos_m) | (re > cfg.ik_tol_rot_rad)
    if bad.any():
        i = int(np.argmax(bad))
        raise Unreachable(f"push waypoint {i + 1}/4 at {keys[i][:3, 3].round(3).tolist()} is out of reach "
                          f"(IK error {pe[i] * 1000:.1f} mm, {np.degrees(re[i]):.1f} deg)")
    dt = PLAN_DT_S
    fast = cfg.replace(approach_speed_mps=TRANSIT_SPEED_MPS, vel_margin=TRANSIT_MARGIN, acc_margin=TRANSIT_MARGIN)
    slow = cfg.replace(approach_speed_mps=PUSH_SPEED_MPS)
    segs = [joint_segment(np.asarray(q0, np.float64), q[0], dt, lim, fast),
            cartesian_segment(keys[0], keys[1], q[0], q[1], dt, lim, fast, "push descent"),
            cartesian_segment(keys[1], keys[2], q[1], q[2], dt, lim, slow, "push stroke", line_tol_m=0.002),
            cartesian_segment(keys[2], keys[3], q[2], q[3], dt, lim, fast, "push ascent"),
            joint_segment(q[3], lim.q_ready, dt, lim, fast)]
    qq = np.concatenate([segs[0]] + [s[1:] for s in segs[1:]], axis=0)
    plan = Plan(q=qq, dt_s=dt, gripper=np.ones(len(qq), np.float32), predicted_points=np.zeros((len(qq), 0, 3)),
                meta={"method": "pusht_push", "push": push.to_list()[0]})
    return fit_to_loop(plan, np.asarray(q0, np.float64))


def fit_to_loop(plan: Plan, q0: np.ndarray, max_slowdowns: int = 12) -> Plan:
    """``plan`` slowed (larger ``dt_s``, same waypoints) until the control loop's own pre-flight check
    at ``RATE_HZ`` passes; a position/workspace violation (or still too fast) is a PlanningFailed."""
    from dream2flow.control.loop import preflight
    from dream2flow.errors import PlanningFailed

    for k in range(max_slowdowns + 1):
        violation = preflight(plan, q0, rate_hz=RATE_HZ)
        if violation is None:
            return plan
        if k == max_slowdowns or not any(w in violation for w in ("velocity", "acceleration", "jerk")):
            break
        plan = Plan(q=plan.q, dt_s=plan.dt_s * 1.15, gripper=plan.gripper, predicted_points=plan.predicted_points,
                    meta=plan.meta)
    raise PlanningFailed(f"the control loop would refuse this push: {violation}")


@dataclass
class PushRecord:
    ok: bool
    reason: str
    sim_s: float
    wall_s: float
    plan_s: float
    commands: int


class PandaPusher:
    """Pushes with the Panda of a ``PushTEnv`` through the control loop (gripper closed)."""

    def __init__(self, env: Any, rate_hz: float = RATE_HZ) -> None:
        self.env = env
        self.rate_hz = float(rate_hz)
        self.backend = env.sim.robot_backend()
        self.backend.connect()
        self.backend.gripper(grasp=True)
        for _ in range(int(0.5 * rate_hz)):
            self.backend.step(1.0 / rate_hz)
        self.log: list[np.ndarray] = []

    def push(self, push: Pushes, on_tick: Any = None) -> PushRecord:
        from dream2flow.control.loop import execute_plan

        t0 = time.perf_counter()
        q0 = self.backend.state().q
        plan = push_plan(push, q0)
        t_plan = time.perf_counter() - t0
        t_sim0 = float(self.env.data.time)
        res = execute_plan(plan, self.backend, rate_hz=self.rate_hz, on_tick=on_tick)
        self.log.append(res.command_log)
        if not res.ok:
            raise ExecutionFailed(f"push execution stopped: {res.reason}")
        return PushRecord(True, res.reason, float(self.env.data.time) - t_sim0, time.perf_counter() - t0, t_plan,
                          res.commands_sent)
