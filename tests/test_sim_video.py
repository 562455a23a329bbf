"""The simulated video generator: robot-free video, ground-truth flow, relative depth, artefacts,
determinism, and the ``dream2flow sim render`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from dream2flow.cli import main  # noqa: E402
from dream2flow.config import load_camera  # noqa: E402
from dream2flow.errors import InvalidInput  # noqa: E402
from dream2flow.io_utils import read_depth, read_rgb  # noqa: E402
from dream2flow.sim import TASKS, make_env  # noqa: E402
from dream2flow.types import ObjectFlow  # noqa: E402

pytestmark = pytest.mark.sim
T = 12


@pytest.fixture(scope="module")
def envs():
    out = {t: make_env(t, 0) for t in TASKS}
    yield out
    for e in out.values():
        e.close()


def _landing(env, gv) -> np.ndarray:
    """Per frame: fraction of visible gt points whose pixel shows the object."""
    px, _ = env.camera_model().project(gv.gt_flow.points_base)
    out = []
    for t in range(gv.gt_flow.num_frames):
        vis = gv.gt_flow.visible[t]
        u = np.rint(px[t, vis, 0]).astype(int)
        v = np.rint(px[t, vis, 1]).astype(int)
        out.append(np.isin(gv.segmentation[t][v, u], env.object_body_ids).mean() if vis.any() else 1.0)
    return np.array(out)


@pytest.mark.parametrize("task", TASKS)
def test_clean_video_gt_flow_lands_on_the_object(envs, task: str) -> None:
    env = envs[task]
    q_before, t_before = np.array(env.data.qpos), env.data.time
    gv = env.generate_video("clean", num_frames=T, num_points=128, with_segmentation=True)
    # the env is untouched
    assert np.array_equal(env.data.qpos, q_before) and env.data.time == t_before
    f = gv.gt_flow
    assert gv.video.frames.shape == (T, 480, 640, 3) and gv.video.fps == 12.0
    assert gv.rel_depth.shape == (T, 480, 640) and gv.rel_depth.dtype == np.float32
    assert f.points_base.shape == (T, 128, 3) and f.visible.shape == (T, 128)
    assert f.visible[0].all()  # sampled on visible pixels of frame 0
    land = _landing(env, gv)
    assert land.min() >= 0.95, land
    # query pixels are frame-0 projections of the points
    px0, _ = env.camera_model().project(f.points_base[0])
    assert np.abs(px0 - f.query_px).max() < 0.01
    # the robot is hidden from frame 0 on; the object looks as in I0
    seg_robot = env.render_segmentation()
    robot_ids = [b for b in range(env.model.nbody) if env.model.body(b).name.startswith("panda_")]
    assert not np.isin(gv.segmentation, robot_ids).any() and np.isin(seg_robot, robot_ids).any()
    obj = env.object_mask()
    diff = np.abs(gv.video.frames[0].astype(int) - env.render_rgb().astype(int))[obj].mean()
    assert diff < 12  # same object pixels (up to the robot's shadow)
    # the object moved: end points are away from start points (drawer ~0.19 m, door ~0.25 m, bread ~0.2 m)
    motion = np.linalg.norm(f.points_base[-1] - f.points_base[0], axis=-1)
    if env.static_parts:  # the mask holds a body that stays put (toaster oven, cabinet): both kinds of point
        moving = motion > 0.01
        assert 0.1 < moving.mean() < 0.9, moving.mean()
        motion = motion[moving]
    assert np.median(motion) > 0.1
    # the video ends with the task done: put the env's object where the video left it
    env.set_task_progress(1.0)
    assert env.success().success
    env.reset()
    # thumb point: on the object's grasp region in frame 0, moving with it
    assert gv.thumb_px is not None and gv.thumb_px.shape == (T, 2)
    x0, y0, x1, y1 = env.object_box()
    assert x0 <= gv.thumb_px[0, 0] <= x1 and y0 <= gv.thumb_px[0, 1] <= y1
    assert np.linalg.norm(gv.thumb_px[-1] - gv.thumb_px[0]) > 20


def test_relative_depth_is_affine_in_metric_depth_with_1pct_noise(envs) -> None:
    gv = envs["open_drawer"].generate_video("clean", num_frames=8, seed=7)
    s, b = gv.depth_scale, gv.depth_shift
    assert 0.5 <= s <= 3.0 and -0.5 <= b <= 0.5
    valid = gv.depth_m > 0
    rec = s * gv.rel_depth[valid] + b
    rel_err = (rec - gv.depth_m[valid]) / gv.depth_m[valid]
    assert abs(np.mean(rel_err)) < 1e-3 and 0.005 < np.std(rel_err) < 0.015
    assert gv.gt_flow.depth_scale == s and gv.gt_flow.depth_shift == b


def test_video_is_deterministic_per_seed(envs) -> None:
    env = envs["bread_in_bowl"]
    a = env.generate_video("noise,shake", num_frames=8, seed=3)
    b = env.generate_video("noise,shake", num_frames=8, seed=3)
    c = env.generate_video("noise,shake", num_frames=8, seed=4)
    assert np.array_equal(a.video.frames, b.video.frames) and np.array_equal(a.rel_depth, b.rel_depth)
    assert np.array_equal(a.gt_flow.points_base, b.gt_flow.points_base)
    assert not np.array_equal(a.video.frames, c.video.frames)


def test_artifacts(envs) -> None:
    env = envs["open_oven"]
    clean = env.generate_video("clean", num_frames=12, seed=1, num_points=96, with_segmentation=True)
    with pytest.raises(InvalidInput):
        env.generate_video("clean,wobble", num_frames=8)

    occ = env.generate_video("occlusion", num_frames=12, seed=1, num_points=96, with_segmentation=True)
    frames = occ.meta["occlusion_frames"]
    assert len(frames) >= 6
    vis_occ = occ.gt_flow.visible[frames].mean(axis=1)
    assert vis_occ.min() < 0.75 * clean.gt_flow.visible[frames].mean()  # the hand hides part of the object
    skin = np.array([222, 168, 135])
    near_skin = (np.abs(occ.video.frames[frames].astype(int) - skin).sum(-1) < 60).mean()
    assert near_skin > 0.005
    assert _landing(env, occ).min() >= 0.95

    morph = env.generate_video("morphing", num_frames=12, seed=1, num_points=96, with_segmentation=True)
    assert _landing(env, morph).min() >= 0.9  # ground truth follows the morph
    assert not np.allclose(morph.gt_flow.points_base[-1], clean.gt_flow.points_base[-1], atol=0.005)
    assert (np.abs(np.array(morph.meta["morph_scale_last"]) - 1) >= 0.12 - 1e-9).all()

    shake = env.generate_video("shake,blur,noise", num_frames=12, seed=1, num_points=96)
    assert np.array_equal(shake.gt_flow.points_base, clean.gt_flow.points_base)  # 3D truth unchanged
    d = np.abs(shake.video.frames.astype(int) - clean.video.frames.astype(int)).mean(axis=(1, 2, 3))
    assert d[0] < 8 and d[1:].mean() > d[0]  # frame 0 is only blurred/noised, later frames also moved

    extra = env.generate_video("extra_frames", num_frames=12, seed=1, num_points=32)
    p = extra.gt_flow.points_base
    still = np.linalg.norm(p[1:] - p[:-1], axis=-1).max(axis=1) < 1e-6
    assert still[:3].all() and still[-3:].all() and not still.all()


def test_sim_render_command_writes_consumable_files(tmp_path: Path) -> None:
    out = tmp_path / "render"
    code = main(["sim", "render", "--task", "open_drawer", "--seed", "1", "--out", str(out), "--frames", "10",
                 "--points", "64", "--artifacts", "occlusion"])
    assert code == 0
    for name in ("i0.png", "d0.npy", "camera.toml", "video.mp4", "video_depth.npy", "gt_flow.npz", "box.txt",
                 "task.toml", "thumb_px.npy"):
        assert (out / name).is_file(), name
    rgb = read_rgb(out / "i0.png")
    depth = read_depth(out / "d0.npy")
    cam = load_camera(out / "camera.toml")
    assert rgb.shape == (480, 640, 3) and depth.shape == (480, 640) and cam.width == 640
    flow = ObjectFlow.load(out / "gt_flow.npz")
    assert flow.points_base.shape == (10, 64, 3) and flow.meta["artifacts"] == "occlusion"
    assert np.load(out / "video_depth.npy").shape == (10, 480, 640)
    x0, y0, x1, y1 = (int(v) for v in (out / "box.txt").read_text().strip().split(","))
    assert 0 <= x0 < x1 < 640 and 0 <= y0 < y1 < 480
    if sys.version_info >= (3, 11):
        import tomllib as toml
    else:
        import tomli as toml
    meta = toml.loads((out / "task.toml").read_text())
    assert meta["instruction"] == "Open the drawer." and meta["object_prompt"] == "drawer"
    assert "handle_center" in meta["geometry"]
    import cv2

    cap = cv2.VideoCapture(str(out / "video.mp4"))
    n = 0
    first = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        first = frame if first is None else first
        n += 1
    assert n == 10 and first.shape == (480, 640, 3)
    json.dumps(flow.meta)  # meta stays JSON
    # a bad task fails with exit code 2 and writes nothing
    bad = tmp_path / "bad"
    assert main(["sim", "render", "--task", "nope", "--out", str(bad)]) == 2
    assert not bad.exists()
