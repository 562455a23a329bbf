"""Issue 13, acceptance 3: ``dream2flow perceive --rgb HAND.png --out D`` (the default perception
configuration, whose hand role is the shipped MediaPipe Hands) finds the thumb tip of a drawn hand
within 12 px on images it has never seen (seeds never used while developing), and reports none on
hand-free images (textures with distractors, a task scene); with a video, the thumb per frame and
null where no hand is seen. The drawn hands here lie on plain and gradient backgrounds: the hard
backgrounds (wood, checker, task scenes) are measured in tests/test_mediapipe_hand.py."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hand_images as hi  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOLERANCE_PX = 12.0


def _perceive(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, D2F_ORT_PROVIDERS="cpu")
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", "perceive", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=REPO)


def _png(path: Path, rgb: np.ndarray) -> Path:
    import cv2

    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return path


@pytest.mark.slow
def test_perceive_finds_the_thumb_of_drawn_hands(tmp_path: Path) -> None:
    rng = np.random.default_rng(9701)
    for i, (deg, scale, kind) in enumerate(((20, 70, "plain"), (150, 95, "gradient"), (265, 55, "plain"),
                                             (320, 85, "gradient"))):
        d = hi.draw_hand(rng, scale_px=scale, angle_rad=math.radians(deg), background_kind=kind)
        out = tmp_path / f"out{i}"
        r = _perceive("--rgb", str(_png(tmp_path / f"hand{i}.png", d.image)), "--out", str(out))
        assert r.returncode == 0, r.stderr
        rep = json.loads((out / "perception.json").read_text())
        assert rep["backends"]["hand"] == "mediapipe_hands"
        assert rep["thumb_px"] is not None, (i, rep)
        err = float(np.linalg.norm(np.asarray(rep["thumb_px"]) - d.thumb_tip))
        print(f"hand {i} ({deg} deg, palm {scale} px, {kind}): thumb error {err:.1f} px")
        assert err <= TOLERANCE_PX
        assert (out / "overlay.png").is_file()


@pytest.mark.slow
@pytest.mark.sim
def test_perceive_reports_no_thumb_without_a_hand(tmp_path: Path) -> None:
    from dream2flow.sim.env import make_env

    images = hi.hand_free_images(np.random.default_rng(9801), 2)
    with make_env("open_drawer", 9802) as env:
        images.append(env.render_rgb())
    for i, im in enumerate(images):
        out = tmp_path / f"out{i}"
        r = _perceive("--rgb", str(_png(tmp_path / f"free{i}.png", im)), "--out", str(out))
        assert r.returncode == 0, r.stderr
        rep = json.loads((out / "perception.json").read_text())
        assert rep["backends"]["hand"] == "mediapipe_hands" and rep["thumb_px"] is None


@pytest.mark.slow
def test_perceive_thumb_per_video_frame(tmp_path: Path) -> None:
    """A video: the hand, the hand again, then the same background without the hand."""
    from dream2flow.video.encode import write_video

    rng = np.random.default_rng(9901)
    bg = hi.texture_background(rng, kind="gradient")
    d = hi.draw_hand(rng, scale_px=80, angle_rad=math.radians(100), background=bg)
    video = write_video(tmp_path / "v.mp4", np.stack([d.image, d.image, bg]), 10.0)
    out = tmp_path / "out"
    r = _perceive("--rgb", str(_png(tmp_path / "i0.png", d.image)), "--video", str(video), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "perception.json").read_text())
    per = rep["thumb_px_per_frame"]
    assert len(per) == 3 and per[2] is None
    for p in per[:2]:
        assert p is not None and np.linalg.norm(np.asarray(p) - d.thumb_tip) <= TOLERANCE_PX
