"""Issue 13 acceptance 1: ``dream2flow flow`` on a held-out RGB-D scene whose box hugs a textured
door in front of a wall of the same material succeeds with the classical configuration (video
depth given, no depth model) and its 3D flow is within 5 mm median of the truth.

The scene (``synthetic_scene.make_door_scene``) is rendered with exact depth and ground-truth
3D flow by ray-plane intersection -- independent of the code under test. Seed 2013 was never
looked at while the segmenter was developed (seeds 0 and 1 were)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_scene import cached_scene

from dream2flow.config import save_camera
from dream2flow.errors import PerceptionFailed
from dream2flow.flow.extract import extract_flow
from dream2flow.io_utils import write_rgb
from dream2flow.perception.classical import GrabCutSegmenter
from dream2flow.types import ObjectFlow
from dream2flow.video.encode import write_video

SEED = 2013


@pytest.fixture(scope="module")
def door():
    return cached_scene(door=True, width=640, height=480, num_frames=24, seed=SEED)


def _median_error_m(sc, flow: ObjectFlow) -> float:
    P, _, _, _ = sc.query_truth(flow.query_px)
    err = np.linalg.norm(flow.points_base - P, axis=-1)
    return float(np.median(err[flow.visible]))


@pytest.mark.slow
def test_acceptance_1_flow_cli_on_a_door_against_a_matching_wall(door, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_video(d / "video.mp4", np.asarray(door.frames), door.fps)
    write_rgb(d / "i0.png", np.asarray(door.frames[0]))
    np.save(d / "d0.npy", np.asarray(door.depth_m[0]))
    np.save(d / "rel.npy", door.rel_depth(seed=SEED))
    save_camera(door.camera, d / "cam.toml")
    x0, y0, x1, y1 = door.box(margin_px=0)  # hugs the door
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "dream2flow.cli", "flow", "--video", str(d / "video.mp4"),
                        "--rgb", str(d / "i0.png"), "--depth", str(d / "d0.npy"), "--camera", str(d / "cam.toml"),
                        "--box", f"{x0},{y0},{x1},{y1}", "--video-depth", str(d / "rel.npy"),
                        "--perception", "classical", "--seed", "0", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    flow = ObjectFlow.load(out / "flow.npz")
    assert flow.meta["backends"]["segmenter"] == "classical_rgbd"
    assert flow.visible.mean() > 0.8
    err = _median_error_m(door, flow)
    assert err <= 0.005, err
    # the door really swung: the flow is not trivially static
    assert np.median(np.linalg.norm(flow.points_base[-1] - flow.points_base[0], axis=-1)) > 0.03


@pytest.mark.slow
def test_colour_alone_loses_the_door(door) -> None:
    """The same inputs with GrabCut (colour only): its mask misses the door, and the flow is either
    refused or far off; the depth-aware default on the same in-memory inputs is not."""
    box = door.box(margin_px=0)
    gt = door.object_mask[0]
    try:
        g = GrabCutSegmenter(seed=0)(door.frames[0], box)
        iou = (g & gt).sum() / (g | gt).sum()
    except PerceptionFailed:  # "mask empty"
        iou = 0.0
    assert iou < 0.5, iou
    rel = door.rel_depth(seed=SEED)
    try:
        bad = _median_error_m(door, extract_flow(door.video(), door.rgbd0(), box, rel, seed=0,
                                                 segmenter=GrabCutSegmenter(seed=0)).flow)
    except PerceptionFailed:
        bad = np.inf
    good = _median_error_m(door, extract_flow(door.video(), door.rgbd0(), box, rel, seed=0).flow)
    assert good <= 0.005 and bad > 0.005, (good, bad)
