"""``dream2flow pusht``: the paper's non-prehensile domain (issue 19) — train the push dynamics
models, evaluate random shooting with each of them, or record one demo episode."""

from __future__ import annotations

import argparse

DEFAULT_DYNAMICS = "particle,pose,heuristic"


def _int_in(lo: int, hi: int, what: str):  # noqa: ANN202
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be in {lo}..{hi}, got {v}")
        return v
    return parse


def _shooting_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--candidates", type=_int_in(1, 8192, "--candidates"), default=None,
                   help="random-shooting candidates r per push decision (default 256)")
    p.add_argument("--push-budget", type=_int_in(1, 200, "--push-budget"), default=None,
                   help="pushes allowed per episode (default 15)")
    p.add_argument("--observation", choices=("camera", "privileged"), default="camera",
                   help="block points between pushes: camera (height-band segmentation of the live depth, default) "
                        "or privileged (the simulator's segmentation mask)")
    p.add_argument("--inputs", choices=("privileged",), default="privileged",
                   help="flow-stage inputs: privileged = the simulator's object box and relative depth "
                        "(the only source until the perception factory lands)")
    p.add_argument("--weights", default=None, help="folder with particle.npz / pose.npz (default: the shipped ones)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pusht", help="Push-T: learned push dynamics + random shooting (train | eval | demo)",
                       description="The non-prehensile domain: a T-block pushed by the Panda to the goal shown by a "
                                   "generated video's 3D object flow; pushes chosen by random shooting with a "
                                   "particle, pose or heuristic dynamics model.")
    s = p.add_subparsers(dest="pusht_command", metavar="SUBCOMMAND")
    tr = s.add_parser("train", help="collect random pushes (floating pusher) and train the particle and pose models",
                      description="Collect pushes in the simulator, train the particle and pose models (JAX + optax), "
                                  "report held-out one-push errors of all three models; writes OUT/particle.npz, "
                                  "OUT/pose.npz and OUT/train_report.json.")
    tr.add_argument("--out", required=True, help="output folder for the weights and the report")
    tr.add_argument("--quick", action="store_true", help="small recipe (~1 min): 150 pushes, 300 steps")
    tr.add_argument("--seed", type=_int_in(1000, 2**31 - 1, "--seed"), default=1000,
                    help="data/training seed (>= 1000: disjoint from evaluation seeds; default 1000)")
    tr.add_argument("--pushes", type=_int_in(20, 1_000_000, "--pushes"), default=None, help="pushes to collect")
    tr.add_argument("--steps", type=_int_in(1, 10_000_000, "--steps"), default=None, help="training steps per model")
    tr.add_argument("--data", default=None, help="load/save the collected pushes here (.npz)")
    tr.add_argument("--particle-output", choices=("rigid", "free"), default="rigid",
                    help="particle model output: rigid = per-point displacements projected onto the best-fitting "
                         "planar rigid motion (default), free = the raw per-point displacements")
    tr.set_defaults(func=run_train)

    ev = s.add_parser("eval", help="episodes per dynamics model; print successes (and pushes used)",
                      description="Episode i uses initial state i mod 10 and seed S + i div 10; the video and its flow "
                                  "are shared by every dynamics model. Prints successes per model.")
    ev.add_argument("--episodes", type=_int_in(1, 100_000, "--episodes"), default=10, help="episodes (default 10)")
    ev.add_argument("--seed", type=_int_in(0, 999, "--seed"), default=0, help="first seed (0..999; default 0)")
    ev.add_argument("--dynamics", default=DEFAULT_DYNAMICS, help=f"comma-separated (default {DEFAULT_DYNAMICS})")
    ev.add_argument("--workers", type=_int_in(1, 64, "--workers"), default=1,
                    help="parallel episodes (processes); results are identical to serial")
    ev.add_argument("--json", dest="json_path", default=None, help="write all results as JSON here")
    _shooting_args(ev)
    ev.set_defaults(func=run_eval)

    de = s.add_parser("demo", help="one episode with a video of the flow target, the pushes and the predictions",
                      description="Runs one episode and writes DIR/demo.mp4 (H.264 where the encoder has it), the "
                                  "generated video, the flow and report.json.")
    de.add_argument("--out", required=True, help="output folder")
    de.add_argument("--initial-state", type=_int_in(0, 9, "--initial-state"), default=0)
    de.add_argument("--seed", type=_int_in(0, 999, "--seed"), default=0)
    de.add_argument("--dynamics", default="particle", choices=("particle", "pose", "heuristic"))
    _shooting_args(de)
    de.set_defaults(func=run_demo)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _episode_config(args: argparse.Namespace):  # noqa: ANN202
    from dream2flow.pusht.episode import EpisodeConfig
    from dream2flow.pusht.planner import ShootingConfig

    kw = {}
    if args.candidates is not None:
        kw["candidates"] = args.candidates
    if args.push_budget is not None:
        kw["push_budget"] = args.push_budget
    return EpisodeConfig(shooting=ShootingConfig(**kw), inputs=args.inputs, observation=args.observation)


def run_train(args: argparse.Namespace) -> int:
    from dream2flow.log import progress
    from dream2flow.pusht.train import TrainConfig, train_all

    cfg = TrainConfig.quick(args.seed) if args.quick else TrainConfig(seed=args.seed)
    if args.pushes is not None:
        cfg = TrainConfig(**{**cfg.__dict__, "pushes": args.pushes})
    if args.steps is not None:
        cfg = TrainConfig(**{**cfg.__dict__, "steps": args.steps})
    cfg = TrainConfig(**{**cfg.__dict__, "particle_output": args.particle_output})
    command = " ".join(["dream2flow pusht train", *(["--quick"] if args.quick else []), f"--seed {args.seed}",
                        *([f"--pushes {args.pushes}"] if args.pushes is not None else []),
                        *([f"--steps {args.steps}"] if args.steps is not None else []),
                        *([f"--particle-output {args.particle_output}"] if args.particle_output != "rigid" else []),
                        f"--out {args.out}"])
    rep = train_all(args.out, cfg, data_path=args.data, command=command, progress=progress)
    for k, v in rep["models"].items():
        h = v["heldout"]
        progress(f"{k:>9}: held-out one-push error {h['mean_point_error_mm']:.1f} mm per point, "
                 f"{h['rotation_error_deg']:.1f} deg rotation ({h['pushes']} pushes)")
    progress(f"[pusht train] done in {rep['wall_s']:.0f} s -> {args.out}")
    return 0


def _dynamics(args: argparse.Namespace) -> tuple[str, ...]:
    from dream2flow.errors import InvalidInput
    from dream2flow.pusht.models import DYNAMICS

    dyn = tuple(d.strip() for d in args.dynamics.split(",") if d.strip())
    bad = [d for d in dyn if d not in DYNAMICS]
    if not dyn or bad:
        raise InvalidInput(f"unknown dynamics model(s) {', '.join(bad) or repr(args.dynamics)} "
                           f"(choose from {', '.join(DYNAMICS)})")
    return dyn


def run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dream2flow.pusht.evaluate import evaluate, format_table

    dyn = _dynamics(args)
    cfg = _episode_config(args)
    from dream2flow.run_record import run_record

    run = run_record(args, inputs=cfg.inputs)
    result = evaluate(args.episodes, args.seed, dyn, cfg, workers=args.workers, weights_dir=args.weights)
    result = {"run": run, **result}
    print(format_table(result))
    if args.json_path:
        import json

        Path(args.json_path).write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from dream2flow.pusht.demo import run_demo as demo

    cfg = _episode_config(args)
    from dream2flow.run_record import run_record

    rec = demo(args.out, args.initial_state, args.seed, args.dynamics, cfg, weights_dir=args.weights,
               run=run_record(args, inputs=cfg.inputs))
    return 0 if rec["success"] else 10
