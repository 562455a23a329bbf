"""``dream2flow plan``: flow + I0/D0 -> grasp and joint trajectory (plan.npz + pictures) (issue 9)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan", help="flow + I0/D0 -> grasp and joint trajectory (plan.npz + pictures)",
        description="Plan a grasp and a Panda joint trajectory whose grasped object points follow the flow. "
                    "Writes DIR/plan.npz (q [H,7] rad, dt_s, gripper [H], predicted_points [H,n,3], meta JSON), "
                    "DIR/plan.png (target vs predicted point paths) and DIR/joints.png. The plan starts at --q0 "
                    "(the robot's current joints; default the ready pose) with the gripper open.")
    p.add_argument("--flow", required=True, help="flow.npz (points_base, visible, query_px, fps, meta)")
    p.add_argument("--rgb", required=True, help="I0: the first camera frame (PNG/JPEG)")
    p.add_argument("--depth", required=True, help="D0: .npy float32 metres or 16-bit PNG millimetres (0 = invalid)")
    p.add_argument("--camera", required=True, help="camera TOML (width, height, K, T_base_cam)")
    p.add_argument("--method", default="dream2flow",
                   help="dream2flow (flow-following optimisation) | rigid (= rigid_rigvid) | rigid_avdc | rigid_rigvid")
    p.add_argument("--q0", default=None, help="current joints q1,...,q7 in rad (default: the ready pose)")
    p.add_argument("--thumb-px", default=None,
                   help="optional u,v pixel of the hand's thumb where it touches the object (selects the grasp); "
                        "default: the thumb track of --video from the hand backend, else the one the flow recorded")
    p.add_argument("--video", default=None, metavar="V",
                   help="the task video: the configured hand backend finds the thumb in it (see --perception)")
    p.add_argument("--perception", metavar="SPEC", default=None,
                   help="classical | models | a perception TOML (default hw/perception.toml); used with --video")
    p.add_argument("--fit", choices=("crop", "letterbox"), default=None,
                   help="with --video of another aspect ratio than the camera: crop or letterbox (as for `flow`)")
    p.add_argument("--mask", default=None, help="optional object mask: PNG (non-zero = object) or .npy bool [H,W]")
    p.add_argument("--config", default=None, help="planner TOML overriding the defaults (see dream2flow.planning.config)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def _floats(text: str, n: int, what: str):
    import numpy as np

    from dream2flow.errors import InvalidInput

    try:
        vals = np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        raise InvalidInput(f"{what} must be {n} comma-separated numbers, got {text!r}") from None
    if vals.shape != (n,) or not np.isfinite(vals).all():
        raise InvalidInput(f"{what} must be {n} comma-separated finite numbers, got {text!r}")
    return vals


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dream2flow.config import load_camera
    from dream2flow.io_utils import read_depth, read_mask, read_rgb, staged_output
    from dream2flow.log import progress
    from dream2flow.planning.config import load_planner_config
    from dream2flow.planning.pictures import write_joints_png, write_plan_png
    from dream2flow.planning.planner import normalise_method, plan_from_flow
    from dream2flow.provenance import KEY as PROVENANCE
    from dream2flow.provenance import provenance_from_folder
    from dream2flow.types import RGBD, ObjectFlow

    method = normalise_method(args.method)
    q0 = _floats(args.q0, 7, "--q0") if args.q0 else None
    thumb = _floats(args.thumb_px, 2, "--thumb-px") if args.thumb_px else None
    cfg = load_planner_config(args.config)
    cam = load_camera(args.camera)
    flow = ObjectFlow.load(args.flow)
    rgbd = RGBD(rgb=read_rgb(args.rgb), depth_m=read_depth(args.depth, cam.depth_scale_m), camera=cam)
    mask = read_mask(args.mask, rgbd.depth_m.shape) if args.mask else None
    thumb_source = "--thumb-px" if thumb is not None else None
    if thumb is None and args.video:
        from dream2flow.perception.factory import load_perception
        from dream2flow.video.decode import load_video

        hand = load_perception(args.perception).require("hand")
        video = load_video(args.video, expect_size=(cam.width, cam.height), fit=args.fit)
        if video.num_frames != flow.num_frames:
            from dream2flow.errors import InvalidInput

            raise InvalidInput(f"--video has {video.num_frames} frames but the flow has {flow.num_frames}")
        thumb = hand(video)
        thumb_source = f"{hand.name} on {args.video}" if thumb is not None else None
        if thumb is None:
            progress(f"planning: {hand.name} sees no hand in {args.video}")
    if thumb is None and thumb_source is None:
        from dream2flow.flow.perceived import thumb_from_meta

        thumb = thumb_from_meta(flow.meta)
        thumb_source = "the flow's thumb track" if thumb is not None else None
    if thumb_source:
        progress(f"planning: grasp near the thumb ({thumb_source})")
    progress(f"planning ({method}): {flow.num_frames} frames x {flow.num_points} points")
    plan = plan_from_flow(flow, rgbd, q0=q0, method=method, object_mask=mask, thumb_px=thumb, config=cfg)
    prov = provenance_from_folder(Path(args.rgb).parent)
    if prov is not None:  # inputs of `sim render`: `execute --backend mujoco` runs the plan in that scene only
        plan.meta[PROVENANCE] = prov
    with staged_output(args.out) as tmp:
        plan.save(tmp / "plan.npz")
        write_plan_png(tmp / "plan.png", plan, flow)
        write_joints_png(tmp / "joints.png", plan)
    m = plan.meta
    g = ", ".join(f"{row[3]:.3f}" for row in m["grasp"]["T_base_grasp"][:3])
    print(f"plan: {method}, {plan.horizon} steps x {plan.dt_s:.3f} s = {plan.duration_s:.1f} s, grasp at ({g}) m, "
          f"{m['part_point_count']} part points, mean tracking error {m['task_error_mean_m'] * 100:.2f} cm "
          f"-> {args.out}/plan.npz", flush=True)
    return 0
