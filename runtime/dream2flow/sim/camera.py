"""The simulated RGB-D camera: ``CameraModel`` <-> MuJoCo camera, and the default sim camera.

Why a module: MuJoCo cameras look down their -z axis with y up and know only a vertical
field of view; the rest of the runtime speaks OpenCV (x right, y down, z forward) and ``K``.
Pixel centres: MuJoCo's image spans [0, W] x [0, H] with pixel i centred at i + 0.5, so in
OpenCV's convention (centres at integers) the principal point is ((W-1)/2, (H-1)/2).
"""

from __future__ import annotations

import math

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.types import CameraModel

CAMERA_NAME = "d2f_cam"
DEFAULT_CAMERA_FILE = "sim_d435.toml"

# OpenCV camera axes expressed in MuJoCo camera axes (x same, y and z flipped).
R_MJCAM_CV = np.diag([1.0, -1.0, -1.0])


# The default pose (also written in hw/cameras/sim_d435.toml; a test keeps the two equal): over
# the robot's right shoulder, looking at the workspace, so the arm at its ready pose hides nothing.
DEFAULT_EYE = (-0.05, -0.50, 0.72)
DEFAULT_TARGET = (0.52, 0.0, 0.12)
DEFAULT_F_PX = 615.0


def builtin_camera() -> CameraModel:
    """The default sim camera from the constants above (640x480, fx = fy = 615)."""
    return CameraModel(K=intrinsics(640, 480, DEFAULT_F_PX), width=640, height=480,
                       T_base_cam=look_at(np.array(DEFAULT_EYE), np.array(DEFAULT_TARGET)))


def default_camera() -> CameraModel:
    """``cameras/sim_d435.toml`` of the hw folder in use, else the shipped one (the simulator's
    camera is not a cell's file; see ``config.hw_file``)."""
    from dream2flow.config import hw_file, load_camera

    return load_camera(hw_file(f"cameras/{DEFAULT_CAMERA_FILE}", shipped_fallback=True))


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """T_base_cam [4,4] (OpenCV axes) of a camera at ``eye`` looking at ``target``, image 'up' ~ ``up``."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(-np.asarray(up, float), z)
    if np.linalg.norm(x) < 1e-9:
        raise InvalidInput("look_at: viewing direction is parallel to 'up'")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


def intrinsics(width: int, height: int, f_px: float) -> np.ndarray:
    """K [3,3] for square pixels and a centred principal point (MuJoCo's pinhole)."""
    return np.array([[f_px, 0.0, (width - 1) / 2.0], [0.0, f_px, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def fovy_deg(cam: CameraModel) -> float:
    """MuJoCo's vertical field of view for ``cam``; InvalidInput if MuJoCo cannot render that K."""
    K = cam.K
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if abs(fx - fy) > 1e-3 * fy or abs(K[0, 1]) > 1e-9:
        raise InvalidInput(f"sim camera needs square pixels without skew (fx={fx}, fy={fy}, skew={K[0, 1]})")
    if abs(cx - (cam.width - 1) / 2.0) > 0.51 or abs(cy - (cam.height - 1) / 2.0) > 0.51:
        raise InvalidInput(f"sim camera needs a centred principal point, got cx={cx}, cy={cy} for "
                           f"{cam.width}x{cam.height}")
    return math.degrees(2.0 * math.atan(cam.height / (2.0 * fy)))


def mjcf_camera(cam: CameraModel) -> str:
    """``<camera>`` element (world body child) reproducing ``cam``'s pose and intrinsics."""
    R = cam.T_base_cam[:3, :3] @ R_MJCAM_CV
    pos = cam.T_base_cam[:3, 3]
    xy = list(R[:, 0]) + list(R[:, 1])
    f = lambda v: " ".join(repr(float(x)) for x in v)  # noqa: E731
    return f'<camera name="{CAMERA_NAME}" pos="{f(pos)}" xyaxes="{f(xy)}" fovy="{fovy_deg(cam)!r}"/>'


def camera_from_mujoco(model, data, width: int, height: int, name: str = CAMERA_NAME) -> CameraModel:  # noqa: ANN001
    """The CameraModel MuJoCo actually renders with (pose from ``data`` after mj_forward)."""
    import mujoco

    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    f_px = 0.5 * height / math.tan(math.radians(float(model.cam_fovy[cid])) / 2.0)
    T = np.eye(4)
    T[:3, :3] = data.cam_xmat[cid].reshape(3, 3) @ R_MJCAM_CV
    T[:3, 3] = data.cam_xpos[cid]
    # re-orthonormalise (float32 round-off in MuJoCo's xmat is ~1e-7)
    u, _, vt = np.linalg.svd(T[:3, :3])
    T[:3, :3] = u @ vt
    return CameraModel(K=intrinsics(width, height, f_px), width=width, height=height, T_base_cam=T)
