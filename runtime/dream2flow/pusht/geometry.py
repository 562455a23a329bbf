"""Push-T facts in one place: the T-block, the goal, the ten initial states, success, workspace.

The block is the Push-T "T" (after the diffusion-policy benchmark's proportions): a 12 x 3 cm
bar on a 3 x 9 cm stem, 3 cm tall, 0.15 kg. Its body frame has the origin at the centroid of
the footprint, at half height, x along the bar, y along the stem towards the bar. A pose is
``(x, y, yaw)`` in the robot base frame (m, m, rad); the table top is z = 0.

Success (decided before any evaluation, never tuned on it): the block's centroid within
``SUCCESS_POS_M`` (2 cm) of the goal and its yaw within ``SUCCESS_YAW_RAD`` (15 deg).
"""

from __future__ import annotations

import math

import numpy as np

BAR_HALF = np.array([0.060, 0.015, 0.015])   # half sizes (m): 12 x 3 x 3 cm
STEM_HALF = np.array([0.015, 0.045, 0.015])  # 3 x 9 x 3 cm
HEIGHT_M = 2 * BAR_HALF[2]
_BAR_Y_TOP = 0.105   # bar centre, measured from the stem's far end (m)
_STEM_Y_TOP = 0.045
_A_BAR = 4 * BAR_HALF[0] * BAR_HALF[1]
_A_STEM = 4 * STEM_HALF[0] * STEM_HALF[1]
CENTROID_FROM_END = (_A_BAR * _BAR_Y_TOP + _A_STEM * _STEM_Y_TOP) / (_A_BAR + _A_STEM)
BAR_CENTER = np.array([0.0, _BAR_Y_TOP - CENTROID_FROM_END, 0.0])    # in the block frame (m)
STEM_CENTER = np.array([0.0, _STEM_Y_TOP - CENTROID_FROM_END, 0.0])
MASS_KG = 0.15
FRICTION = 0.5            # block-table and block-pusher sliding friction
RGBA = (0.22, 0.40, 0.78, 1.0)

GOAL = np.array([0.50, 0.00, 0.0])  # (x m, y m, yaw rad): the centre of the work area

# Ten fixed initial states (x m, y m, yaw deg): 8-14 cm and 20-60 deg away from the goal, all
# around it; the same for every model and seed.
INITIAL_STATES_DEG: tuple[tuple[float, float, float], ...] = (
    (0.58, 0.08, 30.0), (0.42, -0.08, -35.0), (0.55, -0.10, 50.0), (0.44, 0.10, -50.0), (0.60, -0.02, -20.0),
    (0.40, 0.02, 25.0), (0.52, 0.12, 60.0), (0.47, -0.12, -60.0), (0.57, 0.10, -40.0), (0.43, -0.10, 40.0),
)
NUM_INITIAL_STATES = len(INITIAL_STATES_DEG)

SUCCESS_POS_M = 0.02
SUCCESS_YAW_RAD = math.radians(15.0)

# Where the block may be (data collection keeps it here; an episode is lost when it leaves).
WORK_MIN = np.array([0.30, -0.26])
WORK_MAX = np.array([0.72, 0.26])


def initial_state(i: int) -> np.ndarray:
    """Pose (x, y, yaw rad) of fixed initial state ``i`` in 0..9."""
    x, y, deg = INITIAL_STATES_DEG[int(i)]
    return np.array([x, y, math.radians(deg)])


def wrap(a: float | np.ndarray) -> float | np.ndarray:
    """Angle wrapped to (-pi, pi]."""
    return np.arctan2(np.sin(a), np.cos(a))


def pose_error(pose: np.ndarray, goal: np.ndarray = GOAL) -> tuple[float, float]:
    """(position error m, |yaw error| rad) of ``pose`` (x, y, yaw) against ``goal``."""
    pose = np.asarray(pose, dtype=np.float64)
    return float(np.hypot(*(pose[:2] - goal[:2]))), float(abs(wrap(pose[2] - goal[2])))


def is_success(pose: np.ndarray, goal: np.ndarray = GOAL) -> bool:
    dp, dyaw = pose_error(pose, goal)
    return dp <= SUCCESS_POS_M and dyaw <= SUCCESS_YAW_RAD


def in_workspace(pose: np.ndarray) -> bool:
    p = np.asarray(pose)[:2]
    return bool(np.all(p >= WORK_MIN) and np.all(p <= WORK_MAX))


def rot2(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def footprint_points(spacing_m: float = 0.005) -> np.ndarray:
    """[M,2] grid points covering the T's footprint in the block frame (for 2D pose fitting)."""
    pts = []
    for c, h in ((BAR_CENTER, BAR_HALF), (STEM_CENTER, STEM_HALF)):
        xs = np.arange(-h[0] + spacing_m / 2, h[0], spacing_m)
        ys = np.arange(-h[1] + spacing_m / 2, h[1], spacing_m)
        g = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2) + c[:2]
        pts.append(g)
    return np.concatenate(pts)


def transform_points(points: np.ndarray, pose_from: np.ndarray, pose_to: np.ndarray) -> np.ndarray:
    """Move base-frame points rigidly with the block from ``pose_from`` to ``pose_to`` (planar)."""
    p = np.asarray(points, dtype=np.float64)
    R = rot2(float(pose_to[2]) - float(pose_from[2]))
    out = p.copy()
    out[..., :2] = (p[..., :2] - pose_from[:2]) @ R.T + pose_to[:2]
    return out
