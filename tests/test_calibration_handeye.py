"""Hand-eye math, Panda FK and the ChArUco render/detect pair, each against exact ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dream2flow.camera import handeye
from dream2flow.camera.calibration import panda_fk
from dream2flow.camera.charuco import BoardSpec, board_faces_camera, detect_board, render_board
from dream2flow.errors import InvalidInput

Q_READY = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])
K = np.array([[615.0, 0.0, 320.0], [0.0, 615.0, 240.0], [0.0, 0.0, 1.0]])


def random_T(rng: np.random.Generator, t_scale: float = 0.5) -> np.ndarray:
    return handeye.make_T(Rotation.random(random_state=rng.integers(1 << 31)).as_matrix(),
                          rng.uniform(-t_scale, t_scale, 3))


def test_panda_fk_ready_pose_and_tcp_offset() -> None:
    F = panda_fk(Q_READY, "flange")
    np.testing.assert_allclose(F[:3, 3], [0.307, 0.0, 0.590], atol=1e-3)
    np.testing.assert_allclose(F[:3, 2], [0, 0, -1], atol=1e-9)  # flange z points down at the ready pose
    T = panda_fk(Q_READY)
    Rz = Rotation.from_euler("z", -math.pi / 4).as_matrix()
    expected = F @ handeye.make_T(Rz, [0, 0, 0]) @ handeye.make_T(np.eye(3), [0, 0, 0.1034])
    np.testing.assert_allclose(T, expected, atol=1e-12)
    batch = panda_fk(np.stack([Q_READY, np.zeros(7)]))
    np.testing.assert_allclose(batch[0], T)
    np.testing.assert_allclose(batch[1][:3, 3], [0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107 - 0.1034], atol=1e-9)
    with pytest.raises(InvalidInput):
        panda_fk(Q_READY, "elbow")


def test_panda_fk_matches_the_control_layer_kinematics() -> None:
    from dream2flow.control import kinematics as kin
    if not hasattr(kin, "fk_tcp"):
        pytest.skip("control.kinematics has no fk_tcp")
    q = np.random.default_rng(0).uniform(-2.0, 2.0, (20, 7))
    np.testing.assert_allclose(panda_fk(q), np.asarray(kin.fk_tcp(q)), atol=1e-9)
    np.testing.assert_allclose(panda_fk(q, "flange"), np.asarray(kin.fk_flange(q)), atol=1e-9)


def _synthetic(rng: np.random.Generator, n: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact poses obeying A_i Z = X B_i."""
    X, Z = random_T(rng, 1.0), random_T(rng, 0.1)
    A = np.stack([random_T(rng, 0.5) for _ in range(n)])
    B = handeye.invert(X)[None] @ A @ Z[None]
    return X, Z, A, B


def test_closed_form_recovers_exact_extrinsics() -> None:
    rng = np.random.default_rng(1)
    X, Z, A, B = _synthetic(rng)
    X_hat, Z_hat = handeye.closed_form(A, B)
    np.testing.assert_allclose(X_hat, X, atol=1e-9)
    np.testing.assert_allclose(Z_hat, Z, atol=1e-9)
    dt, dR = handeye.pose_consistency(A, B, X_hat, Z_hat)
    assert dt.max() < 1e-6 and dR.max() < 1e-6


@pytest.mark.parametrize("method", ["park", "tsai", "horaud", "andreff", "daniilidis"])
def test_opencv_hand_eye_eye_to_hand_convention(method) -> None:
    import cv2

    if not hasattr(cv2, "calibrateHandEye"):
        pytest.skip(f"OpenCV {cv2.__version__} has no calibrateHandEye in Python (opencv/opencv#29565)")
    X, Z, A, B = _synthetic(np.random.default_rng(2))
    X_hat, Z_hat = handeye.opencv_hand_eye(A, B, method)
    np.testing.assert_allclose(X_hat, X, atol=1e-5)
    np.testing.assert_allclose(Z_hat, Z, atol=1e-5)


@pytest.mark.parametrize("method", ["shah", "li"])
def test_opencv_robot_world_eye_to_hand_convention(method) -> None:
    import cv2

    if not hasattr(cv2, "calibrateRobotWorldHandEye"):
        pytest.skip(f"OpenCV {cv2.__version__} has no calibrateRobotWorldHandEye in Python (opencv/opencv#29565)")
    X, Z, A, B = _synthetic(np.random.default_rng(3))
    X_hat, Z_hat = handeye.opencv_robot_world(A, B, method)
    np.testing.assert_allclose(X_hat, X, atol=1e-5)
    np.testing.assert_allclose(Z_hat, Z, atol=1e-5)


def test_missing_opencv_solver_is_not_ready(monkeypatch) -> None:
    import cv2

    from dream2flow.errors import NotReady

    monkeypatch.delattr(cv2, "calibrateHandEye", raising=False)
    X, Z, A, B = _synthetic(np.random.default_rng(4), 4)
    with pytest.raises(NotReady, match="park_martin"):
        handeye.opencv_hand_eye(A, B)


def test_rotation_diversity_measures_axis_spread() -> None:
    def rz(a: float, axis: str = "z") -> np.ndarray:
        return handeye.make_T(Rotation.from_euler(axis, a).as_matrix(), [0, 0, 0])

    one_axis = np.stack([rz(a) for a in (0.0, 0.3, 0.6, 0.9)])
    rot, spread = handeye.rotation_diversity(one_axis)
    assert rot == pytest.approx(math.degrees(0.9), abs=1e-6) and spread == pytest.approx(0.0, abs=1e-6)
    # Exactly two motions above the threshold (poses 0-1 and 0-2, 20 deg each; 1-2 is below it)
    # about axes 30 deg apart: the spread is that angle.
    tilt = Rotation.from_euler("x", math.radians(30)).as_matrix()
    a = math.radians(20)
    A = np.stack([np.eye(4), rz(a), handeye.make_T(tilt @ Rotation.from_euler("z", a).as_matrix() @ tilt.T, [0] * 3)])
    rot, spread = handeye.rotation_diversity(A, min_angle_deg=15.0)
    assert rot == pytest.approx(20.0, abs=1e-6) and spread == pytest.approx(30.0, abs=1e-6)
    x_and_y = np.stack([np.eye(4), rz(0.5, "x"), rz(0.5, "y")])
    assert handeye.rotation_diversity(x_and_y)[1] > 60.0


def test_refine_recovers_from_a_perturbed_start() -> None:
    rng = np.random.default_rng(5)
    X, Z, A, B = _synthetic(rng, 8)
    # Board corners of a 5x4 grid; keep only poses whose board is in front of the camera.
    grid = np.stack(np.meshgrid(np.arange(5) * 0.04, np.arange(4) * 0.04), -1).reshape(-1, 2)
    P = np.column_stack([grid, np.zeros(len(grid))])
    X = handeye.make_T(np.eye(3), [0, 0, -1.0])  # camera 1 m behind the origin, looking +z
    A = np.stack([handeye.make_T(Rotation.from_rotvec(rng.normal(0, 0.3, 3)).as_matrix(), rng.uniform(-0.1, 0.1, 3))
                  for _ in range(8)])
    B = handeye.invert(X)[None] @ A @ Z[None]
    uv = []
    for b in B:
        pc = P @ b[:3, :3].T + b[:3, 3]
        assert (pc[:, 2] > 0).all()
        h = pc @ K.T
        uv.append(h[:, :2] / h[:, 2:3])
    dX = handeye.make_T(Rotation.from_rotvec([0.02, -0.01, 0.015]).as_matrix(), [0.01, -0.02, 0.015])
    X_hat, Z_hat, info = handeye.refine(A, dX @ X, Z, [P] * 8, uv, K)
    np.testing.assert_allclose(X_hat, X, atol=1e-6)
    np.testing.assert_allclose(Z_hat, Z, atol=1e-6)
    assert max(e.max() for e in handeye.reprojection_errors(A, X_hat, Z_hat, [P] * 8, uv, K)) < 1e-4


def _board_pose(rx: float, ry: float, z: float, spec: BoardSpec) -> np.ndarray:
    R = Rotation.from_euler("xy", [rx, ry]).as_matrix()
    w, h = spec.size_m
    return handeye.make_T(R, np.array([0.0, 0.0, z]) - R @ np.array([w / 2, h / 2, 0.0]))


def test_opencv_charuco_half_pixel_bias_is_measured() -> None:
    from dream2flow.camera.charuco import charuco_corner_bias_px

    assert charuco_corner_bias_px() in (0.0, 0.5)


@pytest.mark.parametrize("rx,ry,z", [(0.0, 0.0, 0.7), (0.4, -0.3, 0.9), (-0.5, 0.5, 0.6)])
def test_render_then_detect_recovers_the_board(rx, ry, z) -> None:
    """The renderer is exact: detected corners sit on the true projections, and PnP finds the pose."""
    spec = BoardSpec()
    T = _board_pose(rx, ry, z, spec)
    img = render_board(spec, K, 640, 480, T, noise_std=2.0, blur_sigma_px=0.6, seed=1)
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    det = detect_board(img, spec, K)
    assert det.ok and len(det.ids) == spec.num_corners
    pc = det.object_points @ T[:3, :3].T + T[:3, 3]
    h = pc @ K.T
    err = np.linalg.norm(h[:, :2] / h[:, 2:3] - det.corners_px, axis=1)
    assert err.max() < 0.5 and np.sqrt(np.mean(err ** 2)) < 0.2
    assert abs(float(np.mean(h[:, 0] / h[:, 2] - det.corners_px[:, 0]))) < 0.05  # no half-pixel bias
    assert np.linalg.norm(det.T_cam_board[:3, 3] - T[:3, 3]) < 0.003
    assert handeye.rotation_angle_deg(det.T_cam_board[:3, :3].T @ T[:3, :3]) < 0.5


def test_board_out_of_view_or_turned_away_is_not_detected() -> None:
    spec = BoardSpec()
    away = _board_pose(0.0, math.pi, 0.7, spec)  # printed side facing away
    assert not board_faces_camera(away)
    assert detect_board(render_board(spec, K, 640, 480, away), spec, K).reason == "board not found"
    aside = _board_pose(0.0, 0.0, 0.7, spec)
    aside[0, 3] += 1.0  # a metre to the side: out of the image
    assert detect_board(render_board(spec, K, 640, 480, aside), spec, K).reason == "board not found"
    behind = _board_pose(0.0, 0.0, -0.7, spec)
    assert not detect_board(render_board(spec, K, 640, 480, behind), spec, K).ok


def test_partly_seen_board_gives_corners_but_no_pose_when_too_few() -> None:
    spec = BoardSpec()
    T = _board_pose(0.0, 0.0, 0.5, spec)
    T[0, 3] += 0.31  # mostly out of the image on the right
    det = detect_board(render_board(spec, K, 640, 480, T), spec, K, min_corners=8)
    assert not det.ok and 0 < len(det.ids) < 8 and "ChArUco corners" in det.reason


def test_board_spec_parsing_and_validation() -> None:
    s = BoardSpec.parse("9x6:0.03:0.022:DICT_6X6_250")
    assert (s.squares_x, s.squares_y, s.square_m, s.marker_m, s.dictionary) == (9, 6, 0.03, 0.022, "DICT_6X6_250")
    assert BoardSpec.parse(str(s)) == s
    with pytest.raises(InvalidInput, match="below the square"):
        BoardSpec(square_m=0.03, marker_m=0.03)
    with pytest.raises(InvalidInput, match="unknown ArUco dictionary"):
        BoardSpec(dictionary="DICT_9X9_1")
    with pytest.raises(InvalidInput, match="needs 55"):
        BoardSpec(squares_x=11, squares_y=10, dictionary="DICT_4X4_50")
    with pytest.raises(InvalidInput, match="NXxNY"):
        BoardSpec.parse("7 by 5")
    with pytest.raises(InvalidInput, match="unknown key"):
        BoardSpec.from_dict({"squares": 7})
