"""Strict camera files (DESIGN.md: width, height, K, T_base_cam, depth_scale_m?, serial?): a
missing pose, a misspelt key, millimetres for metres, a non-rigid pose or intrinsics of another
resolution each stop ``dream2flow flow`` with one line and exit 2, naming the likely fix --
instead of an identity or nonsense pose and a flow in the wrong place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dream2flow.config import camera_to_toml, load_camera, shipped_hw_dir

SIM = load_camera(shipped_hw_dir() / "cameras" / "sim_d435.toml")


def _toml(K=None, T=None, width=640, height=480, extra: str = "", drop: str | None = None) -> str:
    K = SIM.K if K is None else np.asarray(K, float)
    T = SIM.T_base_cam if T is None else np.asarray(T, float)
    rows = lambda m: "[" + ", ".join("[" + ", ".join(repr(float(x)) for x in r) + "]" for r in m) + "]"  # noqa: E731
    lines = {"width": f"width = {width}", "height": f"height = {height}", "K": f"K = {rows(K)}",
             "T_base_cam": f"T_base_cam = {rows(T)}"}
    if drop:
        lines.pop(drop)
    return "\n".join(lines.values()) + "\n" + extra


def _mm(T: np.ndarray) -> np.ndarray:
    T = T.copy()
    T[:3, 3] *= 1000.0
    return T


def _scaled(T: np.ndarray) -> np.ndarray:
    T = T.copy()
    T[:3, :3] *= 1.1
    return T


def _flipped(T: np.ndarray) -> np.ndarray:
    T = T.copy()
    T[:3, 0] *= -1
    return T


K_1280 = SIM.K * np.array([[2, 1, 2], [1, 2, 2], [1, 1, 1]])       # intrinsics of a 1280x960 stream

MISTAKES = {
    "no T_base_cam": (_toml(drop="T_base_cam"), "missing key 'T_base_cam'", "dream2flow camera calibrate"),
    "misspelt key": (_toml(drop="T_base_cam", extra=f"T_base_camera = {[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}\n"),
                     "unknown key 'T_base_camera'", "did you mean 'T_base_cam'?"),
    "unknown key": (_toml(extra="distortion = [0.1, 0.0]\n"), "unknown key 'distortion'", "a camera file holds"),
    "translation in mm": (_toml(T=_mm(SIM.T_base_cam)), "m from the robot base (max 3 m)",
                          "is the translation in millimetres? Camera files use metres (0.878 m)"),
    "scaled rotation": (_toml(T=_scaled(SIM.T_base_cam)), "rotation is not a rotation", "a scaled matrix"),
    "reflection": (_toml(T=_flipped(SIM.T_base_cam)), "reflection (determinant -1)", "right-handed"),
    "transposed pose": (_toml(T=SIM.T_base_cam.T), "looks transposed", "translation in the last column"),
    "K of another resolution": (_toml(K=K_1280), "far from the centre of the 640x480 image", "another resolution"),
    "width and height swapped": (_toml(width=480, height=640), "are width and height swapped?", "480x640"),
    "focal length in mm": (_toml(K=[[1.93, 0, 319.5], [0, 1.93, 239.5], [0, 0, 1]]), "do not fit a 640 px wide image",
                           "must be in pixels"),
    "depth scale in mm": (_toml(extra="depth_scale_m = 1.0\n"), "'depth_scale_m' must be metres per unit", "0.001"),
}


def test_good_files_load_and_round_trip(tmp_path: Path) -> None:
    for f in sorted((shipped_hw_dir() / "cameras").glob("*.toml")):
        cam = load_camera(f)
        back = tmp_path / f.name
        back.write_text(camera_to_toml(cam))
        assert np.array_equal(load_camera(back).T_base_cam, cam.T_base_cam)


@pytest.mark.parametrize("case", list(MISTAKES))
def test_each_mistake_is_one_line_exit_2(case: str, tmp_path: Path) -> None:
    text, fragment, fix = MISTAKES[case]
    cam = tmp_path / "cam.toml"
    cam.write_text(text)
    out = tmp_path / "out"
    # the camera is read first: the other inputs need not exist for the refusal
    r = subprocess.run([sys.executable, "-m", "dream2flow.cli", "flow", "--video", "v.mp4", "--rgb", "i0.png",
                        "--depth", "d0.npy", "--camera", str(cam), "--box", "1,1,5,5", "--video-depth", "r.npy",
                        "--out", str(out)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and fix in lines[0], lines
    assert str(cam) in lines[0] and not out.exists()
