"""RL door benchmark (issue 20): environment speed and the ONNX policy in the control loop.

Prints JSON lines:
- ``rl_env``: per embodiment, environment steps/s with random actions (10 Hz policy steps, each
  10 ticks of the 100 Hz command loop with the safety checks, 50 physics steps), and the ratio to a
  baseline measured in the same process: bare ``mj_step`` on the same scene, converted to
  steps/s of 50 physics steps (what physics alone allows);
- ``rl_policy``: the shipped policy through the runtime engine (``InferenceEngine``, CPU): latency
  per inference p50/p99/max (us), ratio of p99 to the 10 ms period of a 100 Hz loop;
- ``rl_loop_every_tick``: the policy evaluated at EVERY tick of the loop (observation, ONNX,
  controller, safety layer, command) on the kinematic backend, as fast as possible: ticks/s and
  its ratio to 100 Hz (the rate the loop must sustain);
- ``rl_loop_realtime``: the shipped policy opening doors on the simulated Panda with the loop
  paced on the wall clock at 100 Hz: missed deadlines and the longest tick (compute + physics).

    .venv/bin/python bench/rl_bench.py            # ~1 minute
    .venv/bin/python bench/rl_bench.py --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

POLICY = "door_panda_flow_reward"


def emit(d: dict) -> None:
    print(json.dumps(d, sort_keys=True), flush=True)


def env_speed(embodiment: str, steps: int) -> dict:
    import mujoco

    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig

    env = DoorEnv(DoorEnvConfig(embodiment=embodiment, reward="object_state"))
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    n, t0 = 0, time.perf_counter()
    while n < steps:
        _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 4))
        n += 1
        if term or trunc:
            env.reset()
    rate = n / (time.perf_counter() - t0)
    env.reset(seed=0)
    m, d = env.model, env.data
    k, t0 = 0, time.perf_counter()
    while k < 20 * steps:
        mujoco.mj_step(m, d)
        k += 1
    phys = k / (time.perf_counter() - t0)
    per_step = env.cfg.ticks_per_action * int(round(env.cfg.controller.dt_s / m.opt.timestep))
    return {"bench": "rl_env", "embodiment": embodiment, "env_steps_per_s": round(rate, 1),
            "baseline_physics_only_env_steps_per_s": round(phys / per_step, 1),
            "ratio_to_physics_only": round(rate / (phys / per_step), 3), "steps": n}


def policy_latency(n: int) -> dict:
    from dream2flow.rl.observation import OBS_DIM
    from dream2flow.rl.policy import load_policy

    pol = load_policy(POLICY)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    for o in obs[:50]:
        pol.act(o)
    ts = np.empty(n)
    for i, o in enumerate(obs):
        t0 = time.perf_counter()
        pol.act(o)
        ts[i] = time.perf_counter() - t0
    us = ts * 1e6
    return {"bench": "rl_policy", "policy": POLICY, "provider": pol.session.provider, "calls": n,
            "latency_us": {"p50": round(float(np.percentile(us, 50)), 1), "p99": round(float(np.percentile(us, 99)), 1),
                           "max": round(float(us.max()), 1)},
            "p99_ratio_to_100hz_period": round(float(np.percentile(us, 99)) / 10000.0, 4)}


def loop_every_tick(ticks: int) -> dict:
    from dream2flow.control.backends import make_backend
    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig
    from dream2flow.rl.embodiment import PandaArm
    from dream2flow.rl.policy import load_policy
    from dream2flow.rl.runner import run_policy

    pol = load_policy(POLICY)
    env = DoorEnv(DoorEnvConfig(reward="object_state"))
    env.reset(seed=1000)
    kb = make_backend("kinematic", q0=np.array(env.embodiment.q), record_calls=False)
    kb.connect()
    arm = PandaArm(kb, ticks_per_action=1)
    arm.start()
    door = env.door.state_at(env.pose, 0.0)
    t0 = time.perf_counter()
    out = run_policy(pol.act, arm, lambda: door, steps=ticks, policy_hz=100.0, success_rad=10.0)
    rate = out["steps"] / (time.perf_counter() - t0)
    return {"bench": "rl_loop_every_tick", "policy": POLICY, "backend": "kinematic", "ticks": out["steps"],
            "violation": out["violation"], "ticks_per_s": round(rate, 1), "ratio_to_100hz": round(rate / 100.0, 2),
            "policy_us_mean": round(1e6 * out["policy_s_mean"], 1)}


def loop_realtime(episodes: int) -> dict:
    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig
    from dream2flow.rl.policy import load_policy
    from dream2flow.rl.runner import evaluate_episode

    pol = load_policy(POLICY)
    pe = pol.env
    env = DoorEnv(DoorEnvConfig(reward="object_state", scene_seed=int(pe["scene_seed"]), horizon=int(pe["horizon"])))
    res = [evaluate_episode(pol, env, 2000 + i, realtime=True) for i in range(episodes)]
    ticks = sum(r.commands for r in res)
    return {"bench": "rl_loop_realtime", "policy": POLICY, "rate_hz": 100.0, "episodes": episodes, "ticks": ticks,
            "missed_deadlines": int(sum(r.missed_deadlines for r in res)),
            "max_tick_ms": round(1000 * max(r.tick_compute_s_max for r in res), 2),
            "successes": int(sum(r.success for r in res))}


def main() -> None:
    global POLICY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--policy", default=POLICY, help="manifest name or .onnx file (default: the shipped policy)")
    a = ap.parse_args()
    POLICY = a.policy
    emit({"bench": "rl_machine", "python": platform.python_version(), "cpu": platform.processor(),
          "note": "timings on a shared machine; run under flock /tmp/d2f-heavy.lock"})
    for emb in ("panda", "floating"):
        emit(env_speed(emb, 200 if a.quick else 1500))
    emit(policy_latency(200 if a.quick else 5000))
    emit(loop_every_tick(300 if a.quick else 3000))
    emit(loop_realtime(1 if a.quick else 5))


if __name__ == "__main__":
    main()
