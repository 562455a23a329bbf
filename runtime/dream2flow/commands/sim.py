"""``dream2flow sim``: MuJoCo simulation: render a task's I0, D0, camera, generated video and ground truth (issue 3)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dream2flow.commands import MAX_NUM_POINTS, float_in, int_in, seed_type

    p = sub.add_parser("sim", help="MuJoCo simulation: render a task's I0, D0, camera, generated video and ground truth",
                       description="MuJoCo simulation of the robot's tasks (rendering offscreen: MUJOCO_GL=egl or osmesa).")
    ssub = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", parser_class=type(p))
    r = ssub.add_parser(
        "render", help="write i0.png, d0.npy, camera.toml, video.mp4, video_depth.npy, gt_flow.npz, box.txt, task.toml",
        description="Build a task's scene from a seed and write what the pipeline consumes: I0 and D0 from the sim "
                    "camera (robot at its home pose), the camera file, the simulated generator's video of the task "
                    "done without the robot, its relative depth, the ground-truth 3D flow, the object's box and the "
                    "task's instruction / object prompt.")
    r.add_argument("--task", required=True, help="bread_in_bowl | open_drawer | open_oven | open_door")
    r.add_argument("--seed", type=seed_type(), default=0, help="scene seed (object pose, size, colours, textures); default 0")
    r.add_argument("--out", required=True, help="output folder (written all-or-nothing)")
    r.add_argument("--artifacts", default="clean",
                   help="clean | noise | blur | shake | occlusion | morphing | extra_frames, comma-combined")
    r.add_argument("--frames", type=int_in(8, 600), default=48, help="video frames, 8..600 (default 48)")
    r.add_argument("--fps", type=float_in(1.0, 120.0, "fps"), default=12.0, help="video frame rate (default 12)")
    r.add_argument("--video-seed", type=seed_type(), default=None, help="seed of the video's path and artefacts (default: --seed)")
    r.add_argument("--points", type=int_in(1, MAX_NUM_POINTS), default=256, help="ground-truth flow points (default 256)")
    r.add_argument("--camera", default=None, help="camera TOML (default hw/cameras/sim_d435.toml)")
    r.set_defaults(func=run)
    t = ssub.add_parser("tasks", help="list the simulated tasks", description="List the simulated tasks and their instructions.")
    t.set_defaults(func=run_tasks)
    p.set_defaults(func=_need_subcommand)


def _need_subcommand(args: argparse.Namespace) -> int:
    from dream2flow.errors import InvalidInput

    raise InvalidInput("dream2flow sim needs a subcommand: render or tasks (see --help)")


def run_tasks(args: argparse.Namespace) -> int:
    from dream2flow.sim.tasks import TASK_CLASSES

    for name, cls in TASK_CLASSES.items():
        print(f"{name}\t{cls.instruction}\t(object: {cls.object_prompt})")
    return 0


def run(args: argparse.Namespace) -> int:
    import time

    from dream2flow.config import load_camera
    from dream2flow.errors import InvalidInput
    from dream2flow.io_utils import staged_output
    from dream2flow.log import progress
    from dream2flow.sim import TASKS, make_env
    from dream2flow.sim.export import save_render
    from dream2flow.sim.video_gen import parse_artifacts

    if args.task not in TASKS:
        raise InvalidInput(f"unknown --task '{args.task}' (choose from {', '.join(TASKS)})")
    if args.seed < 0:
        raise InvalidInput(f"--seed must be >= 0, got {args.seed}")
    if not 1 <= args.points <= 100000:
        raise InvalidInput(f"--points must be in 1..100000, got {args.points}")
    parse_artifacts(args.artifacts)
    camera = load_camera(args.camera) if args.camera else None
    t0 = time.perf_counter()
    with make_env(args.task, args.seed, camera=camera) as env, staged_output(args.out) as tmp:
        progress(f"sim: {args.task} seed {args.seed}: rendering {args.frames} frames ({args.artifacts})")
        gv = env.generate_video(args.artifacts, num_frames=args.frames, seed=args.video_seed, fps=args.fps,
                                num_points=args.points)
        save_render(env, tmp, gv)
    print(f"sim render: {args.task} seed {args.seed} -> {args.out} ({gv.video.num_frames} frames, "
          f"{gv.gt_flow.num_points} gt points, {time.perf_counter() - t0:.1f} s)")
    return 0
