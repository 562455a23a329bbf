"""``dream2flow execute --policy``: a shipped policy on ``execute``'s robot backends.

- ``mujoco``: the door scene the policy was trained for, the door placed by ``--seed`` (the same
  placement ``rl eval`` uses for that seed); the simulated Panda is ``MujocoRobotBackend``.
- ``kinematic``: the pure-NumPy arm, started where the mujoco run starts; the door stands still
  at the seeded placement (no physics moves it), so this checks the command path only: every
  command the policy asks for passes the safety layer or the run stops.
- ``polymetis`` (the real Panda): refused. The policy needs the door's pose and hinge angle every
  step; on a real cell that takes a door-state estimator, which this project does not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from dream2flow.errors import InvalidInput, NotReady


def execute_policy(policy_ref: str, backend: str, seed: int, *, realtime: bool = False, log_path: str | None = None,
                   models_dir: str | None = None, progress: Callable[[str], None] = print) -> dict[str, Any]:
    from dream2flow.control.command_log import save_command_log
    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig
    from dream2flow.rl.policy import load_policy
    from dream2flow.rl.runner import evaluate_episode, run_policy

    if backend in ("polymetis", "libfranka"):
        raise NotReady("a door policy needs the door's pose and hinge angle at every step; on the real robot that "
                       "takes a door-state estimator, which this project does not have (run it in simulation: "
                       "--backend mujoco)")
    if backend not in ("mujoco", "kinematic"):
        raise InvalidInput(f"unknown backend '{backend}' for a policy (mujoco, kinematic)")
    policy = load_policy(policy_ref, models_dir=models_dir)
    pe = policy.env
    if pe.get("embodiment") != "panda":
        raise InvalidInput(f"policy '{policy.spec.name}' drives the {pe.get('embodiment')} embodiment; execute drives "
                           f"the Panda (evaluate it with 'dream2flow rl eval')")
    cfg = DoorEnvConfig(embodiment="panda", reward="object_state", scene_seed=int(pe["scene_seed"]),
                        policy_hz=float(pe["policy_hz"]), horizon=int(pe["horizon"]))
    env = DoorEnv(cfg)
    if backend == "mujoco":
        progress(f"execute: policy {policy.spec.name} on the simulated Panda, door seed {seed}")
        res = evaluate_episode(policy, env, seed, realtime=realtime)
        out = res.to_dict()
        records = env.embodiment.log.records()
    else:
        from dream2flow.control.backends import make_backend
        from dream2flow.control.command_log import CommandLogBuilder
        from dream2flow.rl.embodiment import PandaArm

        env.reset(seed=int(seed))
        q0 = np.array(env.embodiment.q)
        kb = make_backend("kinematic", q0=q0)
        kb.connect()
        arm = PandaArm(kb, ticks_per_action=cfg.ticks_per_action, controller=cfg.controller,
                       log_capacity=cfg.horizon * cfg.ticks_per_action)
        arm.start()
        door = env.door.state_at(env.pose, 0.0)
        progress(f"execute: policy {policy.spec.name} on the kinematic arm; the door stands still at seed {seed}'s "
                 f"placement (no physics): a check of the command path")
        r = run_policy(policy.act, arm, lambda: door, steps=cfg.horizon, policy_hz=cfg.policy_hz,
                       success_rad=env.door.success_rad, realtime=realtime)
        records = arm.log.records() if isinstance(arm.log, CommandLogBuilder) else np.zeros(0)
        out = {"seed": int(seed), "steps": r["steps"], "violation": r["violation"], "door_moved": False,
               "commands": int(records.size), "tcp_end_m": arm.tcp().tolist(),
               "handle_m": door.handle_m.tolist(), "policy_s_mean": r["policy_s_mean"]}
    out.update({"policy": policy.spec.name, "backend": backend})
    if log_path:
        save_command_log(Path(log_path), records, rate_hz=cfg.controller.tick_hz,
                         meta={"policy": policy.spec.name, "backend": backend, "seed": int(seed)})
    return out
