"""Test helper: perception configurations over the project's tiny random ONNX exports
(``export_tools/tiny.py``), for plumbing tests of the factory, ``flow``, ``perceive`` and the
service. The tiny models' outputs are random: tests check what runs and where it goes, never
accuracy."""

from __future__ import annotations

from pathlib import Path

def need_export_extra() -> None:
    """Skip when the ``export`` extra (torch, transformers) is absent. The tiny models are exported
    in a child process: never import torch here (tests/test_imports.py checks that the runtime alone
    does not pull it into the process)."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("torch/transformers not installed (export extra)")


TINY_ROLES = {"detector": "model", "segmenter": "model", "tracker": "model", "video_depth": "model", "hand": "model"}


def tiny_models_dir() -> Path:
    """The tiny exports (one export per test process; needs torch, in a child process)."""
    from export_tools.tiny import cached_tiny_set

    return cached_tiny_set().parent


def write_perception_toml(path: Path, models_dir: Path | None = None, roles: dict[str, str] | None = None,
                          extra: str = "") -> Path:
    """A perception TOML: ``roles`` maps role -> ``use`` value (default: every role "model");
    ``extra`` is appended verbatim (role options)."""
    lines = ["schema = 1"]
    if models_dir is not None:
        lines.append(f'models_dir = "{models_dir}"')
    lines += ["[engine]", 'providers = ["cpu"]']
    for role, use in (roles or TINY_ROLES).items():
        lines += [f"[{role}]", f'use = "{use}"']
    path = Path(path)
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def plumbing_scene(folder: Path, perception, *, T: int = 8, W: int = 320, H: int = 240) -> dict[str, Path]:
    """A textured patch sliding over a textured background, with a D0 that is an exact affine map
    (0.6..1.0 m) of the configured video-depth model's frame-0 output: the depth alignment then has
    an exact answer whatever the (random) model predicts, so the flow stage can run end to end on
    tiny models. Writes video.mp4, i0.png, d0.npy, camera.toml."""
    import numpy as np

    from dream2flow.config import save_camera
    from dream2flow.io_utils import write_rgb
    from dream2flow.types import CameraModel
    from dream2flow.video.decode import load_video
    from dream2flow.video.encode import write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    bg = rng.integers(60, 120, (H, W, 3), dtype=np.uint8)
    tex = rng.integers(150, 255, (90, 110, 3), dtype=np.uint8)
    frames = []
    for t in range(T):
        f = bg.copy()
        f[70:160, 100 + 3 * t:210 + 3 * t] = tex
        frames.append(f)
    write_video(folder / "video.mp4", np.stack(frames), 10.0)
    video = load_video(folder / "video.mp4")  # what the command will decode
    rel0 = perception.require("video_depth")(video)[0]
    ok = np.isfinite(rel0)
    lo, hi = np.nanpercentile(rel0, 1), np.nanpercentile(rel0, 99)
    d0 = np.where(ok, 0.6 + 0.4 * (np.clip(rel0, lo, hi) - lo) / (hi - lo), 0.0).astype(np.float32)
    np.save(folder / "d0.npy", d0)
    write_rgb(folder / "i0.png", video.frames[0])
    cam = CameraModel(K=np.array([[300.0, 0, (W - 1) / 2], [0, 300.0, (H - 1) / 2], [0, 0, 1]]), width=W, height=H,
                      T_base_cam=np.eye(4))
    save_camera(cam, folder / "camera.toml")
    return {k: folder / v for k, v in (("video", "video.mp4"), ("rgb", "i0.png"), ("depth", "d0.npy"),
                                        ("camera", "camera.toml"))}


def block_scene(folder: Path, perception, prompt: str, *, T: int = 12, W: int = 1280, H: int = 960,
                f: float = 600.0, dist: float = 0.6, height: float = 0.03, step: int = 2, seed: int = 0
                ) -> dict[str, Path]:
    """A scene in which *whatever box* a random detector returns holds a graspable object, so a
    pipeline on tiny random models can run end to end (plumbing only). A top-down camera ``dist``
    above a table (the table at z = 0.15 m in the robot's base frame) sees a textured view that
    slides ``step`` px per frame (so whatever is segmented moves). D0 is made around the configured
    detector's box on I0 (which depends on I0 and the prompt only): the table, with one block
    ``height`` tall filling the box, whose top depth is an exact affine map of the configured
    video-depth model's frame-0 output (the depth alignment then has an exact answer). The
    pipeline itself still runs the detector, the video-depth model, the segmenter (the RGB-D one
    finds the block by its depth) and the tracker. Writes video.mp4 and a recording folder
    ``camera/`` (I0, D0, camera) that a ``recorded`` camera replays."""
    import cv2
    import numpy as np

    from dream2flow.camera.recorded import RecordingWriter
    from dream2flow.flow.perceived import detect_box
    from dream2flow.types import RGBD, CameraModel
    from dream2flow.video.decode import load_video
    from dream2flow.video.encode import write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.integers(0, 255, (H, W + T * step, 3)).astype(np.uint8), (0, 0), 1.5)
    frames = np.stack([big[:, (T - t) * step:(T - t) * step + W] for t in range(T)])
    write_video(folder / "video.mp4", frames, 10.0)
    video = load_video(folder / "video.mp4")  # what the server will decode
    rgb = video.frames[0]
    box, _, _ = detect_box(perception, rgb, prompt)
    x0, y0, x1, y1 = (int(round(v)) for v in box)  # the block fills the box
    rel0 = perception.require("video_depth")(video)[0]
    block = np.zeros((H, W), bool)
    block[y0:y1, x0:x1] = True
    d0 = np.full((H, W), dist, np.float32)
    v = rel0[block]
    d0[block] = dist - height + 0.02 * (v - np.nanmin(v)) / (np.nanmax(v) - np.nanmin(v))
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]])
    T_base_cam = np.eye(4)
    T_base_cam[:3, :3] = [[0, -1, 0], [-1, 0, 0], [0, 0, -1]]  # looking straight down
    T_base_cam[:3, 3] = [0.5, 0.0, dist + 0.15]
    cam = CameraModel(K=K, width=W, height=H, T_base_cam=T_base_cam)
    writer = RecordingWriter(folder / "camera", cam, source="tests/tiny_perception.block_scene")
    writer.add(RGBD(rgb=rgb, depth_m=d0, camera=cam))
    writer.finish()
    return {"video": folder / "video.mp4", "recording": folder / "camera"}
