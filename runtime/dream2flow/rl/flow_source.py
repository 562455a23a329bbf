"""The flow the flow reward follows: a simulated generator video of the door opening (the
``open_door`` scene of the RL scene seed, robot hidden, ``sim.video_gen``) turned into a 3D
object flow by the normal flow stage (``flow.extract.extract_flow``: GrabCut mask, LK tracks,
depth alignment, lifting, filtering) and saved as ``flow.npz``.

Inputs: ``privileged`` -- the object box comes from the simulator's segmentation
(``SimEnv.object_box``) and the relative video depth from the generator's depth render (a
stand-in for a video-depth model). Every flow made here says so in ``meta["inputs"]`` and every
report that uses it repeats it. The flow is a file input of training, so a flow made from
perceived inputs (or from a real generator's video by ``dream2flow flow``) can replace it: it only
has to carry ``meta["rl_door"]`` (where the video's cabinet and door stood, see
``rewards.FlowReward``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.rl.door import DOOR_TASK, DoorSim
from dream2flow.types import ObjectFlow

INPUTS = "privileged"


def door_meta(env: Any, video_seed: int) -> dict[str, Any]:
    """Where the video's cabinet and (closed) door stood, for re-anchoring the flow per episode."""
    door = DoorSim(env.model, env.task_object).read(env.data)
    return {"task": DOOR_TASK, "scene_seed": int(env.seed), "video_seed": int(video_seed),
            "T_base_cab": door.T_base_cab.tolist(), "T_base_door": door.T_base_door.tolist(),
            "angle_rad_frame0": door.angle_rad}


def make_door_flow(scene_seed: int = 0, *, video_seed: int = 0, num_points: int = 256, seed: int = 0,
                   out_dir: str | Path | None = None) -> ObjectFlow:
    """Generate the door-opening video of scene ``scene_seed`` and extract its flow (privileged
    box and video depth). With ``out_dir``: also ``flow.npz``, ``video.mp4`` and ``flow.png``."""
    from dream2flow.flow.extract import extract_flow
    from dream2flow.sim import make_env

    with make_env(DOOR_TASK, scene_seed) as env:
        gen = env.generate_video("clean", seed=video_seed)
        rgbd = env.render_rgbd()
        box = env.object_box()
        res = extract_flow(gen.video, rgbd, box, gen.rel_depth, num_points=num_points, seed=seed)
        flow = res.flow
        gt = gen.gt_flow
        err = np.linalg.norm(flow.points_base - gt.points_base[:, _nearest(gt.query_px, flow.query_px)], axis=2)
        flow.meta["inputs"] = INPUTS
        flow.meta["inputs_note"] = ("object box from the simulator's segmentation and relative video depth from the "
                                    "generator's depth render (privileged)")
        flow.meta["rl_door"] = door_meta(env, video_seed)
        flow.meta["video"] = {"generator": "dream2flow.sim.video_gen", "artifacts": gen.artifacts,
                              "num_frames": int(gen.video.num_frames), "fps": float(gen.video.fps),
                              "opening_angle_rad": float(gen.meta["path"]["angle"])}
        vis = flow.visible
        flow.meta["error_vs_ground_truth_m"] = {"median": float(np.nanmedian(np.where(vis, err, np.nan))),
                                                "p90": float(np.nanpercentile(np.where(vis, err, np.nan), 90))}
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            flow.save(out / "flow.npz")
            _save_video(gen.video, out / "video.mp4")
            _save_picture(rgbd.rgb, flow, out / "flow.png")
    return flow


def _nearest(gt_px: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Index of the ground-truth query pixel nearest to each extracted query pixel (for the
    error figure only: both sample the same first-frame mask)."""
    d = ((px[:, None, :] - gt_px[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def _save_video(video: Any, path: Path) -> None:
    import cv2

    H, W = video.frames.shape[1:3]
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(video.fps), (W, H))
    for f in video.frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()


def _save_picture(rgb: np.ndarray, flow: ObjectFlow, path: Path) -> None:
    """I0 with the flow's tracks projected (start green, end red)."""
    import cv2

    from dream2flow.sim.camera import default_camera

    cam = default_camera()
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).copy()
    px, _ = cam.project(flow.points_base.astype(np.float64))
    for i in range(0, flow.num_points, 2):
        pts = px[:, i][np.isfinite(px[:, i]).all(axis=1)].astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (60, 60, 230), 1, cv2.LINE_AA)
            cv2.circle(img, tuple(int(v) for v in pts[0]), 2, (60, 200, 60), -1)
    cv2.imwrite(str(path), img)
