"""``dream2flow demo``: one full task in the MuJoCo simulation on built-in defaults (issue 8)."""

from __future__ import annotations

import argparse

DEFAULT_TASK = "open_drawer"


def register(sub: argparse._SubParsersAction) -> None:
    from dream2flow.commands import MAX_NUM_POINTS, int_in, seed_type

    p = sub.add_parser(
        "demo", help="run one full task in simulation on built-in defaults and write a report",
        description="Scene → I0/D0 → simulated video generator → perception → 3D flow → grasp → plan → "
                    "control loop (MuJoCo) → success check. Writes a report folder: video.mp4 (generated input), "
                    "tracks.mp4, flow.png, plan.png, execution.mp4, flow.npz, plan.npz, report.json. "
                    "Exit 0 when the task succeeds, 10 when it ran but failed its success check.")
    p.add_argument("--task", default=DEFAULT_TASK, help=f"simulated task (default {DEFAULT_TASK})")
    p.add_argument("--seed", type=seed_type(), default=0, help="scene/video/perception seed (default 0)")
    p.add_argument("--method", default="dream2flow", help="dream2flow | rigid_avdc | rigid_rigvid")
    p.add_argument("--artifacts", default="clean", help="video artefacts: clean | occlusion | morphing | ...")
    p.add_argument("--points", type=int_in(8, MAX_NUM_POINTS), default=256, help="tracked points n (default 256)")
    p.add_argument("--out", default="demo_out", help="report folder (default ./demo_out)")
    p.add_argument("--no-video", action="store_true", help="skip rendering the execution video (faster)")
    p.add_argument("--inputs", choices=("privileged", "perceived"), default="privileged",
                   help="privileged (default): the simulator's box, relative depth and thumb; perceived: only RGB "
                        "video, I0, D0, camera and object prompt, the rest from --perception")
    p.add_argument("--perception", metavar="SPEC", default=None,
                   help="classical | models | a perception TOML (default hw/perception.toml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from dataclasses import asdict

    from dream2flow.episode import INPUTS_DESCRIPTION, run_episode
    from dream2flow.perception.factory import load_perception
    from dream2flow.errors import InvalidInput
    from dream2flow.io_utils import staged_output
    from dream2flow.log import progress
    from dream2flow.run_record import run_record
    from dream2flow import sim

    if args.task not in sim.TASKS:
        raise InvalidInput(f"unknown task '{args.task}' (choose from {', '.join(sim.TASKS)})")
    if args.points < 8:
        raise InvalidInput("--points must be at least 8")
    t_start = time.perf_counter()

    def on_progress(stage: str, fraction: float, metrics: dict) -> None:
        if fraction == 0.0:
            progress(f"[demo] {stage} ...")
        else:
            progress(f"[demo] {stage} done in {metrics.get('seconds', 0):.1f} s")

    perception = load_perception(args.perception)
    if args.inputs == "perceived":
        perception.ensure("detector")
        perception.ensure("video_depth")
    progress(f"[demo] task {args.task}, seed {args.seed}, method {args.method}, artifacts {args.artifacts}")
    progress(f"[demo] inputs {INPUTS_DESCRIPTION[args.inputs]}")
    run_info = run_record(args, inputs=args.inputs)
    with staged_output(args.out) as tmp:
        ep = run_episode(args.task, args.seed, methods=(args.method,), artifacts=args.artifacts,
                         num_points=args.points, out_dir=tmp, record_video=not args.no_video, progress=on_progress,
                         inputs=args.inputs, perception=perception)
        result = ep.methods[0]
        stages = {k: asdict(v) for k, v in {**ep.shared_stages, **result.stages}.items()}
        report = {
            "success": result.success, "task": args.task, "seed": args.seed, "method": args.method, "run": run_info,
            "artifacts": args.artifacts, "inputs": args.inputs, "inputs_description": INPUTS_DESCRIPTION[args.inputs],
            "backends": ep.backends, "perception": perception.describe(),
            "failure_stage": result.failure_stage, "error": result.error,
            "success_value": result.success_value, "stages": stages,
            "errors": list(dict.fromkeys([s["error"] for s in stages.values() if s.get("error")]
                                         + ([result.error] if result.error else []))),
            "total_seconds": round(time.perf_counter() - t_start, 2),
            "files": sorted(p.name for p in tmp.iterdir()) + ["report.json"],
        }
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    verdict = "SUCCESS" if result.success else f"FAILED at {result.failure_stage}: {result.error}"
    progress(f"[demo] {verdict} ({report['total_seconds']:.0f} s, inputs {args.inputs}) → {args.out}/report.json")
    return 0 if result.success else 10
