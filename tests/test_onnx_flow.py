"""Acceptance 4: the flow stage (``flow.extract.extract_flow``) runs with the ONNX backends (tiny
exported models: SAM 2 segmenter, Depth Anything video depth; the CoTracker3 I/O fixture as the
tracker, named as such) through the same interfaces as the classical ones, and records them by
name in the flow's provenance."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import importlib.util  # noqa: E402

if importlib.util.find_spec("torch") is None:
    pytest.skip("torch not installed: the tiny models cannot be exported", allow_module_level=True)
from dream2flow.flow import extract

from dream2flow.perception.factory import load_perception  # noqa: E402
from dream2flow.types import RGBD, CameraModel, Video  # noqa: E402


def _scene(T: int = 6, H: int = 96, W: int = 128) -> Video:
    rng = np.random.default_rng(1)
    bg = rng.integers(60, 120, (H, W, 3), dtype=np.uint8)
    tex = rng.integers(150, 255, (30, 36, 3), dtype=np.uint8)
    frames = []
    for t in range(T):
        f = bg.copy()
        f[30:60, 40 + 2 * t:76 + 2 * t] = tex
        frames.append(f)
    return Video(np.stack(frames), fps=10.0)


def test_extract_flow_with_onnx_backends(tmp_path: Path) -> None:
    from tiny_perception import tiny_models_dir, write_perception_toml

    p = load_perception(write_perception_toml(tmp_path / "p.toml", tiny_models_dir()))
    b = SimpleNamespace(segmenter=p.segmenter(), tracker=p.tracker(), video_depth=p.video_depth())
    video = _scene()
    T, H, W = video.frames.shape[:3]
    cam = CameraModel(K=np.array([[120.0, 0, W / 2], [0, 120.0, H / 2], [0, 0, 1]]), width=W, height=H,
                      T_base_cam=np.eye(4))
    # D0 consistent with the (random) depth model's own frame-0 output through an affine map, so the
    # scale/shift fit has an exact answer: this checks the plumbing, not the tiny model's accuracy.
    rel0 = b.video_depth(video)[0]
    ok = np.isfinite(rel0)
    lo, hi = np.nanpercentile(rel0, 1), np.nanpercentile(rel0, 99)
    d0 = np.where(ok, 0.6 + 0.4 * (np.clip(rel0, lo, hi) - lo) / (hi - lo), 0.0).astype(np.float32)
    rgbd = RGBD(rgb=video.frames[0], depth_m=d0, camera=cam)
    res = extract.extract_flow(video, rgbd, (36, 26, 84, 64), b.video_depth, num_points=32, seed=0,
                               segmenter=b.segmenter, tracker=b.tracker)
    flow = res.flow
    assert flow.points_base.shape == (T, 32, 3) and flow.visible.shape == (T, 32)
    assert flow.meta["backends"] == {"segmenter": "onnx:sam2_1_hiera_tiny_image_encoder",
                                     "tracker": "onnx:cotracker3_io_fixture", "video_depth": "onnx:depth_anything_v2_small"}
    assert res.mask.shape == (H, W) and res.mask.any()
    np.testing.assert_allclose(res.tracks_px[0], flow.query_px, atol=1e-4)
    assert res.alignment.scale > 0 and res.alignment.residual_m < 1e-3
    assert np.isfinite(flow.points_base[flow.visible]).all()
