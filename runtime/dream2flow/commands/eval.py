"""``dream2flow eval``: seeded episodes per task and method → the paper's Table I + Fig. 6 (issue 8)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dream2flow.commands import MAX_NUM_POINTS, int_in, seed_type
    from dream2flow.parallel import MAX_WORKERS

    p = sub.add_parser(
        "eval", help="run seeded episodes per task and method; print the success table",
        description="For each task and seed: one generated video and one flow, shared by every method; each "
                    "method then plans and executes in a fresh identical scene. Prints successes per task and "
                    "method and the failure breakdown by stage (video, flow, grasp, plan, execution). The table and "
                    "the JSON say which inputs (privileged or perceived) and which perception backends were used.")
    p.add_argument("--tasks", default="bread_in_bowl,open_drawer,open_oven", help="comma-separated tasks")
    p.add_argument("--episodes", type=int_in(1, 100000), default=10, help="episodes (seeds) per task (default 10)")
    p.add_argument("--seed", type=seed_type(), default=0, help="first seed; episode i uses seed+i (default 0)")
    p.add_argument("--methods", default="dream2flow,rigid_avdc,rigid_rigvid",
                   help="comma-separated methods; dream2flow@off|complete|project is Dream2Flow with that "
                        "articulation use, on the same video and flow (a before/after in one run)")
    p.add_argument("--artifacts", default="clean", help="clean | occlusion | morphing (video artefacts)")
    p.add_argument("--vary", default=None, choices=("instance", "background", "viewpoint"),
                   help="draw one factor of every seed's scene again, the rest kept: the object instance, the "
                        "background (table, floor, wall, lighting) or the camera viewpoint (default: none)")
    p.add_argument("--points", type=int_in(8, MAX_NUM_POINTS), default=256, help="tracked points n (default 256)")
    p.add_argument("--inputs", choices=("privileged", "perceived"), default="privileged",
                   help="privileged (default): the flow stage gets the simulator's box, relative depth and thumb; "
                        "perceived: only RGB video, I0, D0, camera and object prompt, the rest from --perception "
                        "(needs a detector and a video-depth model)")
    p.add_argument("--perception", metavar="SPEC", default=None,
                   help="classical | models | a perception TOML (default hw/perception.toml)")
    p.add_argument("--articulation", choices=("off", "complete", "project"), default=None,
                   help="dream2flow's use of the part's fitted joint: off (the flow as observed), complete (fill "
                        "occluded frames from it, flagged completed) or project (also follow the joint, not a "
                        "morphing path); default: hw/robot/planner.toml's")
    p.add_argument("--impedance", choices=("stiff", "franka"), default="stiff",
                   help="the simulated arm's joint gains for every method: stiff (default; the model's servos) or "
                        "franka (Polymetis' Kq/Kqd from hw/robot/polymetis.toml: a hinge can guide the hand)")
    p.add_argument("--workers", type=int_in(1, MAX_WORKERS), default=1,
                   help="episodes run side by side as Ray tasks on a local cluster (default 1: serially, no Ray)")
    p.add_argument("--ray", dest="ray_address", default=None, metavar="ADDRESS",
                   help="run the episodes on this existing Ray cluster (e.g. ray://head:10001 or auto)")
    p.add_argument("--json", dest="json_path", default=None, help="also write all results as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from dream2flow import sim
    from dream2flow.episode import (INPUTS_DESCRIPTION, backends_used, episodes_to_json, format_table,
                                    method_variant, success_table)
    from dream2flow.errors import InvalidInput
    from dream2flow.log import progress
    from dream2flow.perception.factory import load_perception
    from dream2flow.parallel import EpisodeJob, progress_bar, run_episodes
    from dream2flow.planning.config import load_planner_config
    from dream2flow.run_record import run_record

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    for t in tasks:
        if t not in sim.TASKS:
            raise InvalidInput(f"unknown task '{t}' (choose from {', '.join(sim.TASKS)})")
    for m in methods:
        method_variant(m)  # InvalidInput names the choices
    if not tasks or not methods or args.episodes < 1:
        raise InvalidInput("need at least one task, one method and --episodes >= 1")
    perception = load_perception(args.perception)
    if args.inputs == "perceived":  # fail fast, naming the role, rather than N failed episodes
        perception.ensure("detector")
        perception.ensure("video_depth")
    cfg = load_planner_config()
    if args.articulation is not None:
        cfg = dataclasses.replace(cfg, articulation=args.articulation)
    run_info = run_record(args, inputs=args.inputs)
    run_info["config"]["planner"]["articulation"] = cfg.articulation  # what the episodes planned with
    progress(f"[eval] inputs {INPUTS_DESCRIPTION[args.inputs]}")
    progress(f"[eval] perception {perception.config.source}: "
             + ", ".join(f"{r}={n or 'none'}" for r, n in perception.backends().items()))
    from dream2flow.planning.warmup import warm_planner

    warm = warm_planner(methods=tuple(dict.fromkeys(method_variant(m)[0] for m in methods)))  # compiled once here, not inside the first episode's plan stage
    progress(f"[eval] planner warmed up in {warm['seconds']:.1f} s ({len(warm['executables'])} compiled executables)")
    run_info["warmup_s"] = round(warm["seconds"], 3)
    # Ray ships the perception's specification, not its loaded models: each worker loads its own.
    options = {"methods": methods, "artifacts": args.artifacts, "num_points": args.points, "inputs": args.inputs,
               "planner_config": cfg, "impedance": args.impedance, "vary": args.vary}
    jobs = [EpisodeJob(task, args.seed + i, options, perception_spec=args.perception)
            for task in tasks for i in range(args.episodes)]
    done = [0]

    def on_done(i: int, ep: object, elapsed_s: float) -> None:
        done[0] += 1
        marks = " ".join(f"{r.method}={'ok' if r.success else 'FAIL(' + str(r.failure_stage) + ')'}"
                         for r in ep.methods)
        progress(f"[eval] {progress_bar(done[0], len(jobs), elapsed_s)}  {jobs[i].task} seed {jobs[i].seed}: {marks}")

    progress(f"[eval] {len(jobs)} episodes, {args.workers} worker(s)"
             + (f" on Ray at {args.ray_address}" if args.ray_address else ""))
    episodes = run_episodes(jobs, workers=args.workers, ray_address=args.ray_address, on_done=on_done,
                            perception=perception)
    summary = success_table(episodes, methods)
    used = backends_used(episodes)
    if args.vary:
        print(f"variation: {args.vary}")
    print(format_table(summary, methods, args.artifacts, inputs=args.inputs, backends=used,
                       perception=perception.config.source))
    print(f"dream2flow articulation: {cfg.articulation}; arm impedance: {args.impedance}")
    if args.json_path:
        Path(args.json_path).write_text(episodes_to_json(
            episodes, summary, tasks=list(tasks), methods=list(methods), artifacts=args.artifacts,
            episodes_per_task=args.episodes, first_seed=args.seed, vary=args.vary, run=run_info, inputs=args.inputs,
            inputs_description=INPUTS_DESCRIPTION[args.inputs], backends=used, perception=perception.describe()))
    return 0
