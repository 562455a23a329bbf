"""``dream2flow flow``: video + I0/D0 + camera + box or prompt -> 3D object flow (flow.npz + pictures) (issues 2, 13)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Turn a task video into 3D object flow in the robot base frame.

Inputs: the video (MP4/AVI or a folder of images; frame 0 must show I0's scene from the same
camera), the robot camera's first frame I0 (RGB) and D0 (depth: .npy metres or 16-bit PNG
millimetres), the camera file (TOML: width, height, K, T_base_cam) and the object: its box in I0
(--box) or its name (--prompt, found by the configured detector). The video's relative depth
(.npy float [T,H,W], unknown scale and shift; larger = farther) is computed by the configured
video-depth model unless --video-depth gives it. Perception backends come from --perception
(default hw/perception.toml; `classical`: RGB-D segmenter + Lucas-Kanade, no detector, no
video-depth model); a role that is needed but has no backend exits 3 naming it.

Checks: frame 0 vs I0 (another scene, or a camera moved by more than 10 px at 640x480, is
refused with exit 2); a video of another aspect ratio needs --fit crop|letterbox (never
stretched). Depth is aligned to D0 by a robust fit Z = s*·Ẑ + b* over the object's pixels.

Writes DIR/flow.npz (points_base [T,n,3] m, visible [T,n], query_px [n,2], fps, depth_scale,
depth_shift, meta: backends, box, thumb track, checks), DIR/tracks.mp4 (tracks drawn: green
visible, red ring occluded) and DIR/flow.png (3D start -> end per point). Nothing is written if
anything fails.
"""


def _box(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"box must be x0,y0,x1,y1 (4 numbers), got {text!r}")
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"box must be x0,y0,x1,y1 (4 numbers), got {text!r}") from None
    return vals  # type: ignore[return-value]


def register(sub: argparse._SubParsersAction) -> None:
    from dream2flow.commands import MAX_NUM_POINTS, float_in, int_in, seed_type

    p = sub.add_parser("flow", help="video + I0/D0 + camera + box or prompt -> 3D object flow (flow.npz + pictures)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", required=True, metavar="V", help="task video: .mp4/.avi or a folder of images")
    p.add_argument("--rgb", required=True, metavar="I0.png", help="first camera frame (colour image)")
    p.add_argument("--depth", required=True, metavar="D0", help="first depth frame: .npy metres or 16-bit .png mm")
    p.add_argument("--camera", required=True, metavar="CAM.toml", help="camera file (width, height, K, T_base_cam)")
    p.add_argument("--box", type=_box, metavar="x0,y0,x1,y1", help="object box in I0 (pixels); overrides the detector")
    p.add_argument("--prompt", metavar="TEXT",
                   help="the object's name: without --box the configured detector finds its box in I0")
    p.add_argument("--video-depth", metavar="REL.npy",
                   help="relative depth of the video, float [T,H,W] (.npy); default: the configured video-depth model")
    p.add_argument("--perception", metavar="SPEC", default=None,
                   help="classical | models | a perception TOML (default hw/perception.toml)")
    p.add_argument("--fit", choices=("crop", "letterbox"), default=None,
                   help="a video of another aspect ratio than the camera: crop (it shows more than the camera; "
                        "keep its centre) or letterbox (it shows the centre of the camera's view)")
    p.add_argument("--points", type=int_in(1, MAX_NUM_POINTS), default=256, metavar="N",
                   help=f"query points, 1..{MAX_NUM_POINTS} (default 256)")
    p.add_argument("--seed", type=seed_type(), default=0, metavar="S", help="seed (segmentation, sampling; default 0)")
    p.add_argument("--fps", type=float_in(0.1, 1000.0, "fps"), default=None,
                   help="override the video's frame rate (image folders: 10)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (flow.npz, tracks.mp4, flow.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from dream2flow.config import load_camera
    from dream2flow.flow.perceived import perceive_flow
    from dream2flow.flow.pictures import write_flow_png, write_tracks_video
    from dream2flow.io_utils import read_depth, read_rgb, staged_output
    from dream2flow.log import progress
    from dream2flow.perception.factory import load_perception
    from dream2flow.types import RGBD
    from dream2flow.video.decode import load_video_fit

    if args.box is None and not (args.prompt or "").strip():
        from dream2flow.errors import InvalidInput

        raise InvalidInput("give the object's box (--box x0,y0,x1,y1) or its name (--prompt TEXT)")
    perception = load_perception(args.perception)
    camera = load_camera(args.camera)
    rgb = read_rgb(args.rgb)
    depth = read_depth(args.depth, camera.depth_scale_m)
    rgbd = RGBD(rgb=rgb, depth_m=depth, camera=camera)
    video, fit = load_video_fit(args.video, expect_size=(camera.width, camera.height), fps=args.fps, fit=args.fit)
    video_depth = None
    if args.video_depth:
        from dream2flow.perception.classical import GivenVideoDepth

        video_depth = np.asarray(GivenVideoDepth.from_file(args.video_depth).rel_depth)
    pf = perceive_flow(video, rgbd, perception=perception, box=args.box, prompt=args.prompt or "",
                       video_depth=video_depth, num_points=args.points, seed=args.seed, fit=fit)
    flow = pf.flow
    with staged_output(args.out) as tmp:
        flow.save(tmp / "flow.npz")
        write_tracks_video(tmp / "tracks.mp4", video, pf.result.tracks_px, flow.visible)
        write_flow_png(tmp / "flow.png", flow, rgb)
    a = pf.result.alignment
    used = ", ".join(f"{k}={v}" for k, v in flow.meta["backends"].items() if v)
    found = f"; '{args.prompt}' at ({', '.join(f'{v:.0f}' for v in pf.box)}) score {pf.box_score:.2f}" \
        if pf.box_score is not None else ""
    progress(f"flow: {flow.num_points} points, {flow.num_frames} frames, visible {100 * flow.visible.mean():.1f}%, "
             f"s*={a.scale:.4f}, b*={a.shift:+.4f} m (residual {1000 * a.residual_m:.1f} mm){found}; {used} "
             f"-> {args.out}")
    return 0
