"""``dream2flow rl``: 3D object flow as a reward -- door opening learned with SAC, deployed as an
ONNX policy (issue 20): ``flow`` | ``train`` | ``eval``."""

from __future__ import annotations

import argparse

from dream2flow.commands import int_in, seed_type

DESCRIPTION = """\
Reinforcement learning with 3D object flow as the reward (the open_door sim scene's door, a
random position and yaw per episode; the Panda or a floating Franka Hand; actions: TCP velocity
+ gripper at 10 Hz through a 100 Hz safety-checked command loop).

  rl flow   make flow.npz: the simulated generator's video of the door opening -> the normal
            flow stage. Inputs are PRIVILEGED (the simulator's object box and relative video
            depth); the flow's meta and every report say so.
  rl train  SAC (stable-baselines3; needs the 'rl' extra) with the flow reward (reach the mean
            object particle + t*/t_end) or the object-state reward (reach the handle + hinge
            angle); writes policy.onnx (+ .spec.json), the SB3 model, train.json and
            learning_curve.png. --quick: a ~1 minute run that proves the recipe.
  rl eval   run a policy (manifest name or .onnx file) in the runtime's ONNX engine inside the
            command loop with the safety layer in front, over N door placements (seeds S..S+N-1);
            success = door >= 35 deg at the end and no safety stop.

exit codes: 0 ok, 2 bad input, 3 not ready (missing extra, model or flow), 4 the flow could not
be extracted."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rl", help="door opening learned with SAC from a 3D-object-flow reward; ONNX policies",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="rl_command", metavar="ACTION", parser_class=type(p))

    f = s.add_parser("flow", help="make the door-opening flow.npz (privileged inputs)")
    f.add_argument("--scene-seed", type=seed_type(), default=0, help="the door scene (open_door seed; default 0)")
    f.add_argument("--video-seed", type=seed_type(), default=0, help="the generated video's path details (default 0)")
    f.add_argument("--points", type=int_in(8, 8192), default=256, help="query points (default 256)")
    f.add_argument("--out", required=True, metavar="DIR", help="writes DIR/flow.npz, video.mp4, flow.png")
    f.set_defaults(func=run_flow)

    t = s.add_parser("train", help="train a SAC policy and export it to ONNX")
    t.add_argument("--env", default="door", choices=("door",), help="environment (door)")
    t.add_argument("--embodiment", default="panda", choices=("panda", "floating"))
    t.add_argument("--reward", default="flow", choices=("flow", "object_state"))
    t.add_argument("--steps", type=int_in(1, 10_000_000), default=None, help="environment steps (default 60000; --quick: 1500)")
    t.add_argument("--seed", type=seed_type(), default=0, help="training seed (SAC and episode draws; default 0)")
    t.add_argument("--out", required=True, metavar="DIR")
    t.add_argument("--flow", default=None, metavar="FLOW.npz",
                   help="flow for --reward flow (default: make it with 'rl flow' into DIR/flow/)")
    t.add_argument("--scene-seed", type=seed_type(), default=0, help="door scene seed (default 0; must match the flow's)")
    t.add_argument("--name", default="policy", help="policy name (file DIR/NAME.onnx; default 'policy')")
    t.add_argument("--quick", action="store_true", help="a ~1 minute run (small net, 1500 steps) proving the recipe")
    t.add_argument("--demos", type=int_in(0, 10_000), default=0,
                   help="scripted demonstration episodes added to the replay buffer before training (default 0; "
                        "their rewards are the trained reward's)")
    t.set_defaults(func=run_train)

    e = s.add_parser("eval", help="evaluate a policy through the runtime engine and the safety-checked loop")
    e.add_argument("--policy", required=True, metavar="NAME|FILE.onnx",
                   help="a manifest entry with role 'policy' (e.g. door_panda_flow_reward) or an .onnx file")
    e.add_argument("--episodes", type=int_in(1, 100_000), default=100, help="door placements (default 100)")
    e.add_argument("--seed", type=seed_type(), default=1000, help="first episode seed (default 1000; episode i: S+i)")
    e.add_argument("--json", default=None, metavar="FILE", help="write the per-episode results")
    e.add_argument("--models-dir", default=None, help="folder of the manifest (default exported_models/)")
    e.add_argument("--realtime", action="store_true", help="pace the loop on the wall clock at its rate (100 Hz)")
    e.set_defaults(func=run_eval)
    p.set_defaults(func=lambda args: _no_action(p))


def _no_action(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _check_range(name: str, v: int, lo: int, hi: int) -> None:
    from dream2flow.errors import InvalidInput

    if not lo <= v <= hi:
        raise InvalidInput(f"{name} must be in {lo}..{hi}, got {v}")


def run_flow(args: argparse.Namespace) -> int:
    from dream2flow.log import progress
    from dream2flow.rl.flow_source import make_door_flow

    _check_range("--scene-seed", args.scene_seed, 0, 2**31 - 1)
    _check_range("--video-seed", args.video_seed, 0, 2**31 - 1)
    _check_range("--points", args.points, 10, 8192)
    progress(f"rl flow: generating the door video (scene seed {args.scene_seed}) and extracting its flow "
             f"[inputs: privileged]")
    flow = make_door_flow(args.scene_seed, video_seed=args.video_seed, num_points=args.points, out_dir=args.out)
    err = flow.meta["error_vs_ground_truth_m"]
    progress(f"rl flow: {args.out}/flow.npz: {flow.num_frames} frames x {flow.num_points} points, "
             f"median error vs ground truth {100 * err['median']:.1f} cm [inputs: privileged]")
    return 0


def run_train(args: argparse.Namespace) -> int:
    import shlex
    import sys
    from pathlib import Path

    from dream2flow.log import progress
    from dream2flow.rl.door_env import DoorEnvConfig
    from dream2flow.rl.train import QUICK, SacConfig, _require_sb3, train

    _require_sb3()
    steps = args.steps if args.steps is not None else (1500 if args.quick else 60000)
    _check_range("--steps", steps, 100, 10_000_000)
    _check_range("--seed", args.seed, 0, 2**31 - 1)
    _check_range("--scene-seed", args.scene_seed, 0, 2**31 - 1)
    env_cfg = DoorEnvConfig(embodiment=args.embodiment, reward=args.reward, scene_seed=args.scene_seed)
    out = Path(args.out)
    flow_path = args.flow
    if args.reward == "flow" and flow_path is None:
        from dream2flow.rl.flow_source import make_door_flow

        progress(f"rl train: making the flow (scene seed {args.scene_seed}) [inputs: privileged]")
        make_door_flow(args.scene_seed, out_dir=out / "flow")
        flow_path = out / "flow" / "flow.npz"
    if flow_path is not None:
        from dream2flow.errors import InvalidInput
        from dream2flow.types import ObjectFlow

        meta = ObjectFlow.load(flow_path).meta.get("rl_door", {})
        if meta.get("scene_seed") != args.scene_seed:
            raise InvalidInput(f"the flow {flow_path} was made in door scene {meta.get('scene_seed')}, but training uses "
                               f"--scene-seed {args.scene_seed}")
        progress(f"rl train: flow {flow_path} [inputs: {ObjectFlow.load(flow_path).meta.get('inputs', 'unknown')}]")
    command = "dream2flow " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["rl"] else \
        f"dream2flow rl train --env door --embodiment {args.embodiment} --reward {args.reward} --steps {steps} " \
        f"--seed {args.seed} --out {args.out}" + (" --quick" if args.quick else "")
    _check_range("--demos", args.demos, 0, 10_000)
    import dataclasses

    sac = dataclasses.replace(QUICK if args.quick else SacConfig(), demo_episodes=args.demos)
    train(env_cfg, sac, steps=steps, seed=args.seed, out_dir=out,
          flow_path=flow_path, progress=progress, command=command, policy_name=args.name)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from dream2flow.errors import InvalidInput
    from dream2flow.log import progress
    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig
    from dream2flow.rl.policy import load_policy
    from dream2flow.rl.runner import evaluate_episode

    _check_range("--episodes", args.episodes, 1, 100_000)
    _check_range("--seed", args.seed, 0, 2**31 - 1)
    policy = load_policy(args.policy, models_dir=args.models_dir)
    pe = policy.env
    try:
        env_cfg = DoorEnvConfig(embodiment=str(pe["embodiment"]), reward="object_state",
                                scene_seed=int(pe["scene_seed"]), policy_hz=float(pe["policy_hz"]),
                                horizon=int(pe["horizon"]))
    except KeyError as exc:
        raise InvalidInput(f"policy '{policy.spec.name}' does not say which environment it was trained for "
                           f"(missing {exc} in its description)") from None
    env = DoorEnv(env_cfg)
    inputs = pe.get("inputs", "unknown")
    progress(f"rl eval: {policy.spec.name} ({pe.get('reward')} reward, {env_cfg.embodiment}) on "
             f"{policy.session.provider}, {args.episodes} episodes from seed {args.seed} [flow inputs: {inputs}]")
    episodes = []
    for i in range(args.episodes):
        res = evaluate_episode(policy, env, args.seed + i, realtime=args.realtime)
        episodes.append(res.to_dict())
        if (i + 1) % 10 == 0 or i + 1 == args.episodes:
            rate = np.mean([e["success"] for e in episodes])
            progress(f"  {i + 1}/{args.episodes}: success {100 * rate:.0f}%")
    n_ok = int(sum(e["success"] for e in episodes))
    pol_ms = 1000 * float(np.mean([e["policy_s_mean"] for e in episodes]))
    summary = {"policy": policy.spec.name, "sha256": policy.spec.sha256, "embodiment": env_cfg.embodiment,
               "reward": pe.get("reward"), "flow_inputs": inputs, "episodes": episodes, "successes": n_ok,
               "success_rate": n_ok / len(episodes), "success_criterion": f"door angle >= {env.success_deg:.0f} deg "
               "at the end of the episode and no safety stop", "seed": args.seed, "realtime": bool(args.realtime),
               "policy_inference_ms_mean": pol_ms, "provider": policy.session.provider,
               "safety_stops": int(sum(e["violation"] is not None for e in episodes)),
               "mean_door_angle_deg": float(np.mean([e["door_angle_deg"] for e in episodes]))}
    if args.realtime:
        summary["missed_deadlines"] = int(sum(e["missed_deadlines"] for e in episodes))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    progress(f"rl eval: {policy.spec.name}: {n_ok}/{len(episodes)} doors opened (>= {env.success_deg:.0f} deg), "
             f"mean angle {summary['mean_door_angle_deg']:.0f} deg, {summary['safety_stops']} safety stops, "
             f"policy {pol_ms:.3f} ms per inference [flow inputs: {inputs}]")
    return 0
