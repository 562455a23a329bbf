"""Write a simulated task's inputs to a folder, in the formats every other command reads.

``i0.png`` (I0), ``d0.npy`` (D0, float32 metres, 0 = invalid), ``camera.toml``, ``video.mp4``
(the generated video), ``video_depth.npy`` (relative depth [T,H,W] float32), ``gt_flow.npz``
(flow.npz keys: the ground truth), ``box.txt`` (``x0,y0,x1,y1`` of the task object in I0),
``task.toml`` (task, seed, instruction, object prompt, artefacts, geometry), and when the task
has one ``thumb_px.npy`` ([T,2] float32, where a hand holds the object in the video).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np


if TYPE_CHECKING:
    from dream2flow.sim.env import SimEnv
    from dream2flow.sim.video_gen import GeneratedVideo

FILES = ("i0.png", "d0.npy", "camera.toml", "video.mp4", "video_depth.npy", "gt_flow.npz", "box.txt", "task.toml")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string is a JSON string


def task_toml(env: "SimEnv", gv: "GeneratedVideo") -> str:
    lines = [f"task = {_toml_value(env.task)}", f"seed = {env.seed}",
             f"instruction = {_toml_value(env.instruction)}", f"object_prompt = {_toml_value(env.object_prompt)}",
             f"artifacts = {_toml_value(gv.artifacts)}", f"num_frames = {gv.video.num_frames}",
             f"fps = {_toml_value(gv.video.fps)}", f"video_seed = {int(gv.meta.get('video_seed', env.seed))}",
             f"depth_scale_true = {_toml_value(gv.depth_scale)}", f"depth_shift_true = {_toml_value(gv.depth_shift)}",
             f"q_home = {_toml_value(env.q_home)}", "", "[geometry]"]
    for k, v in env.info.items():
        lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def save_render(env: "SimEnv", out_dir: str | Path, gv: "GeneratedVideo") -> list[Path]:
    """Write I0/D0 of the env's current state and the generated video ``gv`` into ``out_dir``."""
    from dream2flow.config import save_camera
    from dream2flow.io_utils import write_rgb
    from dream2flow.video.encode import write_video

    out = Path(out_dir)
    rgbd = env.render_rgbd()
    box = env.object_box()
    written = [write_rgb(out / "i0.png", rgbd.rgb)]
    np.save(out / "d0.npy", rgbd.depth_m.astype(np.float32))
    written.append(out / "d0.npy")
    written.append(save_camera(env.camera_model(), out / "camera.toml",
                               comment=f"dream2flow sim camera (task {env.task}, seed {env.seed})"))
    written.append(write_video(out / "video.mp4", gv.video.frames, gv.video.fps))
    np.save(out / "video_depth.npy", gv.rel_depth.astype(np.float32))
    written.append(out / "video_depth.npy")
    written.append(gv.gt_flow.save(out / "gt_flow.npz"))
    (out / "box.txt").write_text(",".join(str(int(b)) for b in box) + "\n")
    written.append(out / "box.txt")
    (out / "task.toml").write_text(task_toml(env, gv))
    written.append(out / "task.toml")
    if gv.thumb_px is not None:
        np.save(out / "thumb_px.npy", gv.thumb_px.astype(np.float32))
        written.append(out / "thumb_px.npy")
    return written
