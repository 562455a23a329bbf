"""Foundation: contracts round-trip, configs validate with clear messages, CLI basics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dream2flow.config import camera_to_toml, load_camera, load_robot_limits
from dream2flow.errors import InvalidInput
from dream2flow.types import CameraModel, ObjectFlow, Plan

REPO = Path(__file__).resolve().parents[1]


def _camera() -> CameraModel:
    T = np.eye(4)
    T[:3, :3] = np.array([[0, -1, 0], [-0.5, 0, -np.sqrt(3) / 2], [np.sqrt(3) / 2, 0, -0.5]]).T
    T[:3, 3] = [1.2, 0.1, 0.7]
    return CameraModel(K=np.array([[615.0, 0, 320.5], [0, 615.0, 240.5], [0, 0, 1]]), width=640, height=480, T_base_cam=T)


def test_flow_npz_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    flow = ObjectFlow(points_base=rng.normal(size=(5, 7, 3)), visible=rng.random((5, 7)) > 0.3,
                      query_px=rng.random((7, 2)) * 100, fps=12.5, depth_scale=2.3, depth_shift=-0.4,
                      meta={"seed": 3, "backends": {"tracker": "classical_lk"}})
    back = ObjectFlow.load(flow.save(tmp_path / "flow.npz"))
    assert np.array_equal(back.points_base, flow.points_base) and back.points_base.dtype == np.float32
    assert np.array_equal(back.visible, flow.visible) and back.visible.dtype == bool
    assert np.array_equal(back.query_px, flow.query_px)
    assert (back.fps, back.depth_scale, back.depth_shift, back.meta) == (12.5, 2.3, -0.4, flow.meta)


def test_plan_npz_round_trips_and_rejects_nan(tmp_path: Path) -> None:
    q = np.linspace(0, 1, 14).reshape(2, 7)
    plan = Plan(q=q, dt_s=0.1, gripper=np.array([0, 1]), predicted_points=np.zeros((2, 3, 3)), meta={"method": "x"})
    back = Plan.load(plan.save(tmp_path / "plan.npz"))
    assert np.array_equal(back.q, q) and back.q.dtype == np.float64 and back.meta == {"method": "x"}
    q[1, 3] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        Plan(q=q, dt_s=0.1, gripper=np.zeros(2), predicted_points=np.zeros((2, 1, 3)))


def test_camera_toml_round_trip_and_projection(tmp_path: Path) -> None:
    cam = _camera()
    p = tmp_path / "cam.toml"
    p.write_text(camera_to_toml(cam))
    back = load_camera(p)
    assert np.array_equal(back.K, cam.K) and np.array_equal(back.T_base_cam, cam.T_base_cam)
    pts = np.array([[0.5, 0.0, 0.1], [0.4, 0.2, 0.0]])
    px, z = cam.project(pts)
    assert np.allclose(cam.backproject(px, z), pts, atol=1e-9)


@pytest.mark.parametrize("text, fragment", [
    ("width = 640\nheight = 480\n", "missing key 'K'"),
    ("width = -1\nheight = 480\nK=[[1,0,0],[0,1,0],[0,0,1]]\n", "'width' must be a positive integer"),
    ("width = 640\nheight = 480\nK=[[1,0,0],[0,1,0]]\n", "'K' must be 3 rows of 3"),
    ("width = 640\nheight = 480\nK=[[1,0,0],[0,1,0],[0,0,1]]\nT_base_cam=[[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]\n",
     "rotation is not a rotation"),
    ("width = 640\nheight = [\n", "not valid TOML"),
])
def test_bad_camera_files_name_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(InvalidInput, match=fragment.replace("[", r"\[")):
        load_camera(p)


def test_robot_limits_match_franka_table() -> None:
    lim = load_robot_limits()
    assert lim.dq_max[0] == 2.175 and lim.dq_max[6] == 2.61
    assert list(lim.ddq_max) == [15, 7.5, 10, 12.5, 15, 20, 20]
    assert list(lim.dddq_max) == [7500, 3750, 5000, 6250, 7500, 10000, 10000]
    assert lim.check_q(lim.q_ready) == []
    assert lim.check_q(lim.q_max + 0.01) != []


def test_cli_help_and_one_line_usage_error() -> None:
    exe = [sys.executable, "-m", "dream2flow.cli"]
    out = subprocess.run(exe + ["--help"], capture_output=True, text=True, check=True)
    for cmd in ("flow", "plan", "perceive", "execute", "sim", "demo", "eval", "serve", "task", "camera", "models"):
        assert cmd in out.stdout
    bad = subprocess.run(exe + ["--no-such-flag"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
