"""Deployment: an ONNX policy closing the loop on a robot backend, with the safety layer in front.

Per policy step (10 Hz): observation (``observation.py``: the TCP by forward kinematics of the
*measured* joints, the door's state from a door source) -> the engine's ONNX session -> action
-> ``embodiment.PandaArm.apply`` (10 ticks at 100 Hz: controller, ``SafetyLayer`` checks on
every command, deviation check, ``backend.command_joint_positions``, ``backend.step``). A
refused action or command stops the arm and ends the run; nothing is clipped.

The door source is where the door's pose and angle come from: the MuJoCo door when the backend
is the simulated Panda (``rl eval``, ``execute --policy ... --backend mujoco``); a door standing
still at its seeded placement for the ``kinematic`` backend (there is no door to move: a dry
check of the command path); on the real robot a door-pose estimator would have to provide it,
which this project does not have (``execute`` says so and refuses).

Timing: simulated backends run as fast as they can (deterministic: the same seed gives the same
command stream); ``realtime=True`` paces every tick on the wall clock at the loop rate (as on
the robot) and counts missed deadlines.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dream2flow.control.command_log import CommandLogBuilder
from dream2flow.rl.door import DoorState
from dream2flow.rl.embodiment import PandaArm
from dream2flow.rl.observation import observation


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    door_angle_deg: float
    max_door_angle_deg: float
    steps: int
    violation: str | None
    door_pose: dict[str, float]
    commands: int = 0
    command_sha256_16: str = ""
    policy_s_mean: float = 0.0
    policy_s_max: float = 0.0
    tick_compute_s_max: float = 0.0
    missed_deadlines: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d.update(self.extra)
        return d


class _Pacer:
    """Real-time pacing of the loop ticks (absolute deadlines t0 + k / rate)."""

    def __init__(self, rate_hz: float) -> None:
        from dream2flow.control.watchdog import WallClockPacer

        self.pacer = WallClockPacer(0.0002)
        self.period = 1.0 / rate_hz
        self.t0 = self.pacer.now()
        self.k = 0
        self.missed = 0
        self.last = self.t0
        self.max_compute = 0.0

    def __call__(self, _backend: Any) -> None:
        now = self.pacer.now()
        self.max_compute = max(self.max_compute, now - self.last)
        self.k += 1
        deadline = self.t0 + self.k * self.period
        if now > deadline:
            self.missed += 1
        self.pacer.wait_until(deadline, None)
        self.last = self.pacer.now()


def run_policy(act: Callable[[np.ndarray], np.ndarray], arm: Any, door_source: Callable[[], DoorState], *,
               steps: int, policy_hz: float, success_rad: float, realtime: bool = False,
               stop_early: bool = False) -> dict[str, Any]:
    """Close the loop for ``steps`` policy steps (``arm`` already ``start()``-ed). -> dict with
    ``steps``, ``violation``, ``door`` (last DoorState), ``max_angle_rad``, policy timings."""
    dt = 1.0 / policy_hz
    pacer = _Pacer(arm.ctrl_cfg.tick_hz) if realtime else None
    if pacer is not None:
        arm.on_tick = pacer
    tcp_prev = arm.tcp()
    door = door_source()
    max_angle = door.angle_rad
    t_policy: list[float] = []
    violation = None
    k = 0
    try:
        for k in range(1, steps + 1):
            tcp = arm.tcp()
            obs = observation(tcp, tcp_prev, dt, arm.gripper_width, door)
            tcp_prev = tcp
            t0 = time.perf_counter()
            action = act(obs)
            t_policy.append(time.perf_counter() - t0)
            violation = arm.apply(action)
            door = door_source()
            max_angle = max(max_angle, door.angle_rad)
            if violation is not None or (stop_early and door.angle_rad >= success_rad):
                break
    finally:
        if pacer is not None:
            arm.on_tick = None
    return {"steps": k, "violation": violation, "door": door, "max_angle_rad": max_angle,
            "policy_s_mean": float(np.mean(t_policy)) if t_policy else 0.0,
            "policy_s_max": float(np.max(t_policy)) if t_policy else 0.0,
            "missed_deadlines": pacer.missed if pacer else 0, "tick_compute_s_max": pacer.max_compute if pacer else 0.0}


def evaluate_episode(policy: Any, env: Any, seed: int, *, realtime: bool = False,
                     door_pose: Any = None) -> EpisodeResult:
    """One evaluation episode of ``policy`` (``act(obs)``) in a ``DoorEnv`` through the deployment
    loop (not ``env.step``): reset with ``seed`` (door placement and start drawn from it), run the
    env's horizon, judge the door angle at the end."""
    options = {"door_pose": door_pose} if door_pose is not None else None
    env.reset(seed=int(seed), options=options)
    arm = env.embodiment
    if isinstance(arm, PandaArm):  # record the command stream (its digest shows determinism)
        arm.log = CommandLogBuilder(env.cfg.horizon * env.cfg.ticks_per_action)
    out = run_policy(policy.act, arm, env.door_state, steps=env.cfg.horizon, policy_hz=env.cfg.policy_hz,
                     success_rad=env.door.success_rad, realtime=realtime)
    door = out["door"]
    ok = bool(door.angle_rad >= env.door.success_rad and out["violation"] is None)
    digest, n = "", 0
    if getattr(arm, "log", None) is not None:
        rec = arm.log.records()
        n = int(rec.size)
        digest = hashlib.sha256(rec.tobytes()).hexdigest()[:16]
    return EpisodeResult(seed=int(seed), success=ok, door_angle_deg=float(np.rad2deg(door.angle_rad)),
                         max_door_angle_deg=float(np.rad2deg(out["max_angle_rad"])), steps=int(out["steps"]),
                         violation=out["violation"], door_pose=env.pose.to_dict(), commands=n,
                         command_sha256_16=digest, policy_s_mean=out["policy_s_mean"],
                         policy_s_max=out["policy_s_max"], tick_compute_s_max=out["tick_compute_s_max"],
                         missed_deadlines=out["missed_deadlines"])
