"""A simulated calibration cell: a fixed pinhole camera with a known ``T_base_cam``, a Panda
whose gripper holds a ChArUco board at a known ``T_gripper_board``, and the real
calibration code run against it end to end.

Why: the calibration must be checked against ground truth, which no real cell has. The
images are rendered honestly (``charuco.render_board``: the printed board warped by the
exact homography, supersampled, blurred, noisy, over a textured background), so the
detector, PnP, the hand-eye solver and the refinement all do their real work; only the
robot is a stand-in (``TeleportRobot`` jumps to each commanded pose, optionally with
encoder noise). ``dream2flow camera calibrate --sim`` runs this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dream2flow.camera import handeye
from dream2flow.camera.calibration import (CalibrationConfig, CalibrationResult, calibrate, collect_samples,
                                           panda_fk)
from dream2flow.camera.charuco import BoardSpec, board_faces_camera, board_outline_in_camera, render_board
from dream2flow.types import RGBD, CameraModel, RobotState

Q_READY = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``T_base_cam`` of an OpenCV camera (z forward, y down) at ``eye`` looking at ``target``."""
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return handeye.make_T(np.stack([x, np.cross(z, x), z], axis=1), eye)


@dataclass
class SimulatedCell:
    """Ground truth of the simulated cell: the board, the true camera (``K``, size and
    ``T_base_cam``) and the board's true mount on the TCP, ``T_gripper_board``."""

    spec: BoardSpec
    camera: CameraModel
    T_gripper_board: np.ndarray

    def T_cam_board(self, q: np.ndarray) -> np.ndarray:
        return self.camera.T_cam_base @ panda_fk(q) @ self.T_gripper_board

    def board_view(self, q: np.ndarray, margin_px: float = 15.0, max_tilt_deg: float = 50.0) -> bool:
        """Is the whole board in the image, in front of the camera, facing it within
        ``max_tilt_deg``?"""
        T = self.T_cam_board(q)
        pts = board_outline_in_camera(self.spec, T)
        if (pts[:, 2] < 0.2).any() or not board_faces_camera(T):
            return False
        centre = board_outline_in_camera(self.spec, T).mean(axis=0)
        cos_tilt = float(T[:3, 2] @ centre / np.linalg.norm(centre))
        if cos_tilt < np.cos(np.radians(max_tilt_deg)):
            return False
        uvw = pts @ self.camera.K.T
        uv = uvw[:, :2] / uvw[:, 2:3]
        w, h = self.camera.width, self.camera.height
        return bool(((uv[:, 0] > margin_px) & (uv[:, 0] < w - margin_px)
                     & (uv[:, 1] > margin_px) & (uv[:, 1] < h - margin_px)).all())


    def board_low_point_z(self, q: np.ndarray) -> float:
        """Height (m) of the board's lowest corner above the table (z = 0)."""
        T_base_board = panda_fk(q) @ self.T_gripper_board
        return float(board_outline_in_camera(self.spec, T_base_board)[:, 2].min())

    def board_hidden(self, q: np.ndarray) -> bool:
        """Is the board certainly not seen: behind the camera, turned away, or wholly
        outside the image?"""
        T = self.T_cam_board(q)
        pts = board_outline_in_camera(self.spec, T)
        if (pts[:, 2] < 0.05).any() or not board_faces_camera(T):
            return True
        uvw = pts @ self.camera.K.T
        uv = uvw[:, :2] / uvw[:, 2:3]
        w, h = self.camera.width, self.camera.height
        return bool((uv[:, 0] < 0).all() or (uv[:, 0] > w).all() or (uv[:, 1] < 0).all() or (uv[:, 1] > h).all())


def default_cell(seed: int = 0) -> SimulatedCell:
    """A D435-like camera (640x480, f = 615 px) about 1.2 m in front of and above the robot,
    looking at its workspace (placement jittered by ``seed``), and a 7x5 board of 40 mm
    squares (fits A4) hanging below the TCP, gripped at its top edge, printed side facing −y_tcp."""
    rng = np.random.default_rng(seed)
    eye = np.array([1.25, -0.35, 0.85]) + rng.uniform(-0.05, 0.05, 3)
    target = np.array([0.45, 0.0, 0.30]) + rng.uniform(-0.05, 0.05, 3)
    K = np.array([[615.0, 0.0, 320.0], [0.0, 615.0, 240.0], [0.0, 0.0, 1.0]])
    camera = CameraModel(K=K, width=640, height=480, T_base_cam=look_at(eye, target), serial="sim-handeye")
    spec = BoardSpec()
    w, _ = spec.size_m
    # Board axes in the TCP frame: x_b = −x_tcp, y_b = +z_tcp (hangs along the approach axis),
    # z_b = +y_tcp (so the printed side faces −y_tcp); top-left corner 1 cm inside the fingers.
    R = np.stack([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], axis=1)
    T_gripper_board = handeye.make_T(R, [w / 2, 0.0, -0.01])
    return SimulatedCell(spec=spec, camera=camera, T_gripper_board=T_gripper_board)


def plan_poses(cell: SimulatedCell, n: int, seed: int = 0, *, visible: bool = True,
               amplitude: np.ndarray | None = None) -> np.ndarray:
    """``n`` joint configurations [n,7] within the Panda's limits where the board is fully in
    view and facing the camera (``visible``), or certainly not seen (``visible=False``).
    First the configuration around the ready pose that best shows the board is found,
    then random perturbations of it (``amplitude`` rad per joint) are kept by rejection."""
    from dream2flow.config import load_robot_limits

    lim = load_robot_limits()
    rng = np.random.default_rng(seed)
    # 1) nominal: vary base yaw, wrist and flange to turn the board towards the camera.
    cand = np.repeat(Q_READY[None], 2000, axis=0)
    cand[:, 0] += rng.uniform(-0.6, 0.6, 2000)
    cand[:, 4] += rng.uniform(-0.8, 0.8, 2000)
    cand[:, 5] += rng.uniform(-0.6, 0.6, 2000)
    cand[:, 6] = rng.uniform(lim.q_min[6], lim.q_max[6], 2000)
    best, best_score = None, -np.inf
    for q in cand:
        T = cell.T_cam_board(q)
        centre = board_outline_in_camera(cell.spec, T).mean(axis=0)
        if centre[2] <= 0.2 or not board_faces_camera(T):
            continue
        uv = cell.camera.K @ (centre / centre[2])
        off = np.hypot(uv[0] - cell.camera.width / 2, uv[1] - cell.camera.height / 2) / cell.camera.width
        score = float(T[:3, 2] @ centre / np.linalg.norm(centre)) - off
        if score > best_score and not lim.check_q(q, margin_rad=0.3):
            best, best_score = q, score
    if best is None:
        raise RuntimeError("no joint configuration shows the board to this simulated camera")
    if amplitude is None:  # hiding the board needs larger swings than varying its view
        amplitude = [0.35, 0.3, 0.35, 0.3, 0.45, 0.4, 0.6] if visible else [1.2, 0.5, 0.8, 0.6, 1.5, 1.2, 2.5]
    amp = np.asarray(amplitude, dtype=np.float64)
    out: list[np.ndarray] = []
    for _ in range(200 * n):
        q = best + rng.uniform(-1, 1, 7) * amp
        if lim.check_q(q, margin_rad=0.05) or cell.board_low_point_z(q) < 0.05:
            continue
        if (cell.board_view(q) if visible else cell.board_hidden(q)):
            out.append(q)
            if len(out) == n:
                return np.stack(out)
    raise RuntimeError(f"found only {len(out)} of {n} {'visible' if visible else 'hidden'} board poses")


class TeleportRobot:
    """A stand-in ``RobotBackend`` for the calibration simulation: each commanded joint
    target is reached at once (no dynamics; the calibration only needs static poses).
    ``joint_noise_rad`` adds Gaussian encoder noise to the measured joints."""

    name = "teleport"
    simulated = True

    def __init__(self, q0: np.ndarray | None = None, *, joint_noise_rad: float = 0.0, seed: int = 0) -> None:
        self._q = np.array(Q_READY if q0 is None else q0, dtype=np.float64)
        self._t = 0.0
        self._noise = float(joint_noise_rad)
        self._rng = np.random.default_rng(seed)

    def connect(self) -> None:
        pass

    def state(self) -> RobotState:
        q = self._q + (self._rng.normal(0.0, self._noise, 7) if self._noise else 0.0)
        return RobotState(q=q, dq=np.zeros(7), t_s=self._t)

    def command_joint_positions(self, q: np.ndarray) -> None:
        self._q = np.array(q, dtype=np.float64)

    def gripper(self, width_m: float | None = None, grasp: bool = False) -> None:
        pass

    def step(self, dt_s: float) -> None:
        self._t += float(dt_s)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def true_q(self) -> np.ndarray:
        return self._q.copy()


class BoardViewCamera:
    """A ``Camera`` that images the simulated cell's board at the robot's current joints
    (``robot.true_q`` when the robot has one, i.e. without encoder noise; else
    ``robot.state().q``) through the true camera. Only the image is simulated: depth is
    all 0 (invalid), the calibration does not use it."""

    def __init__(self, cell: SimulatedCell, robot: Any, *, noise_std: float = 2.0,
                 blur_sigma_px: float = 0.6, seed: int = 0) -> None:
        self.cell, self.robot = cell, robot
        self.noise_std, self.blur_sigma_px = noise_std, blur_sigma_px
        self._seed = seed
        self._k = 0

    def capture(self) -> RGBD:
        c = self.cell.camera
        q = self.robot.true_q if hasattr(self.robot, "true_q") else np.asarray(self.robot.state().q)
        rgb = render_board(self.cell.spec, c.K, c.width, c.height, self.cell.T_cam_board(q),
                           noise_std=self.noise_std, blur_sigma_px=self.blur_sigma_px,
                           seed=self._seed * 1000 + self._k)
        self._k += 1
        return RGBD(rgb=rgb, depth_m=np.zeros((c.height, c.width), np.float32), camera=c)

    def model(self) -> CameraModel:
        return self.cell.camera

    def info(self) -> dict[str, Any]:
        return {"source": "simulated calibration camera (rendered ChArUco board)"}

    def close(self) -> None:
        pass


@dataclass
class SimCalibrationOutcome:
    """The calibration's result against the truth: errors of ``T_base_cam`` in mm / deg."""

    result: CalibrationResult
    cell: SimulatedCell
    translation_error_mm: float
    rotation_error_deg: float
    poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))


def run_simulated_calibration(seed: int = 0, num_poses: int = 12, *, num_hidden: int = 0,
                              noise_std: float = 2.0, blur_sigma_px: float = 0.6, joint_noise_rad: float = 0.0,
                              poses: np.ndarray | None = None, config: CalibrationConfig | None = None,
                              accept_poor: bool = False) -> SimCalibrationOutcome:
    """Calibrate the simulated cell end to end (collect with the real ``collect_samples``,
    then ``calibrate``) and compare with the truth. ``num_hidden`` of the poses have the
    board out of view or turned away (they must be set aside, or make it refuse)."""
    cell = default_cell(seed)
    if poses is None:
        poses = plan_poses(cell, num_poses - num_hidden, seed)
        if num_hidden:
            hidden = plan_poses(cell, num_hidden, seed + 1, visible=False)
            order = np.random.default_rng(seed).permutation(num_poses)
            poses = np.concatenate([poses, hidden])[order]
    robot = TeleportRobot(joint_noise_rad=joint_noise_rad, seed=seed)
    camera = BoardViewCamera(cell, robot, noise_std=noise_std, blur_sigma_px=blur_sigma_px, seed=seed)
    samples = collect_samples(poses, robot, camera, move_to=robot.command_joint_positions, settle_s=0.5,
                              fresh_frames=1)
    result = calibrate(samples, cell.spec, cell.camera.K, config=config, accept_poor=accept_poor)
    X, X_true = result.T_base_cam, cell.camera.T_base_cam
    return SimCalibrationOutcome(
        result=result, cell=cell, poses=np.asarray(poses),
        translation_error_mm=float(np.linalg.norm(X[:3, 3] - X_true[:3, 3]) * 1000.0),
        rotation_error_deg=float(handeye.rotation_angle_deg(X[:3, :3].T @ X_true[:3, :3])))
