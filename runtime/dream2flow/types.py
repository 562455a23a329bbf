"""The contracts between stages (DESIGN.md "Contracts"). Plain dataclasses over NumPy arrays.

Units: metres, radians, seconds. Frames: ``T_a_b`` maps b-coordinates into a. The robot
base frame is the world. ``ObjectFlow`` and ``Plan`` round-trip through ``.npz`` exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dream2flow.errors import InvalidInput

if TYPE_CHECKING:  # shape annotations only; no runtime cost
    from jaxtyping import Bool, Float, UInt8


def _as_array(value: Any, dtype: Any, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if shape_tail and arr.shape[-len(shape_tail):] != shape_tail:
        raise InvalidInput(f"{name}: expected shape [..., {', '.join(map(str, shape_tail))}], got {list(arr.shape)}")
    return arr


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera. ``K`` [3,3] in pixels, ``T_base_cam`` [4,4] camera -> robot base (metres).
    Camera frame is OpenCV's: x right, y down, z forward."""

    K: Float[np.ndarray, "3 3"]
    width: int
    height: int
    T_base_cam: Float[np.ndarray, "4 4"] = field(default_factory=lambda: np.eye(4))
    depth_scale_m: float | None = None  # metres per unit of a 16-bit depth PNG
    serial: str | None = None

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        T = np.asarray(self.T_base_cam, dtype=np.float64)
        if K.shape != (3, 3):
            raise InvalidInput(f"camera K must be 3x3, got {list(K.shape)}")
        if T.shape != (4, 4):
            raise InvalidInput(f"camera T_base_cam must be 4x4, got {list(T.shape)}")
        if not (np.isfinite(K).all() and np.isfinite(T).all()):
            raise InvalidInput("camera K / T_base_cam contain NaN or inf")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise InvalidInput(f"camera focal lengths must be positive, got fx={K[0,0]}, fy={K[1,1]}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise InvalidInput(f"camera size must be positive, got {self.width}x{self.height}")
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or not np.allclose(T[3], [0, 0, 0, 1]):
            raise InvalidInput("camera T_base_cam is not a rigid transform (rotation not orthonormal or last row not 0 0 0 1)")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "T_base_cam", T)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @property
    def T_cam_base(self) -> np.ndarray:
        R, t = self.T_base_cam[:3, :3], self.T_base_cam[:3, 3]
        out = np.eye(4)
        out[:3, :3] = R.T
        out[:3, 3] = -R.T @ t
        return out

    def project(self, points_base: Float[np.ndarray, "... 3"]) -> tuple[np.ndarray, np.ndarray]:
        """Base-frame points (m) -> (pixels [...,2], depth along the optical axis [...] in m)."""
        p = np.asarray(points_base, dtype=np.float64)
        T = self.T_cam_base
        pc = p @ T[:3, :3].T + T[:3, 3]
        z = pc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.K[0, 0] * pc[..., 0] / z + self.K[0, 2]
            v = self.K[1, 1] * pc[..., 1] / z + self.K[1, 2]
        return np.stack([u, v], axis=-1), z

    def backproject(self, px: Float[np.ndarray, "... 2"], depth_m: Float[np.ndarray, "..."]) -> np.ndarray:
        """Pixels + depth along the optical axis (m) -> base-frame points [..., 3] (m)."""
        px = np.asarray(px, dtype=np.float64)
        z = np.asarray(depth_m, dtype=np.float64)
        x = (px[..., 0] - self.K[0, 2]) / self.K[0, 0] * z
        y = (px[..., 1] - self.K[1, 2]) / self.K[1, 1] * z
        pc = np.stack([x, y, z], axis=-1)
        return pc @ self.T_base_cam[:3, :3].T + self.T_base_cam[:3, 3]


@dataclass
class RGBD:
    """One camera frame: ``rgb`` [H,W,3] uint8, ``depth_m`` [H,W] float32 metres (0 = invalid)."""

    rgb: UInt8[np.ndarray, "H W 3"]
    depth_m: Float[np.ndarray, "H W"]
    camera: CameraModel

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise InvalidInput(f"rgb must be [H,W,3] uint8, got {list(self.rgb.shape)} {self.rgb.dtype}")
        if self.depth_m.shape != self.rgb.shape[:2]:
            raise InvalidInput(f"depth size {list(self.depth_m.shape)} does not match rgb size {list(self.rgb.shape[:2])}")
        if self.rgb.shape[:2] != (self.camera.height, self.camera.width):
            raise InvalidInput(
                f"image size {self.rgb.shape[1]}x{self.rgb.shape[0]} does not match the camera's "
                f"{self.camera.width}x{self.camera.height}")
        self.depth_m = np.asarray(self.depth_m, dtype=np.float32)


@dataclass
class Video:
    """Decoded video: ``frames`` [T,H,W,3] uint8 RGB, ``fps``. Frame 0 corresponds to I0."""

    frames: UInt8[np.ndarray, "T H W 3"]
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size_wh(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])


def _meta_json(meta: dict[str, Any]) -> np.ndarray:
    return np.array(json.dumps(meta, sort_keys=True, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _load_npz(path: str | Path, required: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"{what} file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile / ValueError / OSError: a corrupted file
        raise InvalidInput(f"{what} file {p} is not a readable .npz ({type(exc).__name__}: {exc})") from None
    missing = [k for k in required if k not in data]
    if missing:
        raise InvalidInput(f"{what} file {p} lacks keys: {', '.join(missing)}")
    return data


@dataclass
class ObjectFlow:
    """3D object flow: ``points_base`` [T,n,3] float32 metres in the robot base frame,
    ``visible`` [T,n] bool, ``query_px`` [n,2] float32 (pixels in I0 of each track's query),
    ``fps``, depth alignment ``depth_scale``/``depth_shift`` (s*, b*: Z = s*·Ẑ + b*) and
    provenance in ``meta`` (backends, versions, residuals, seed). Invisible points keep a
    value (last known or NaN) but must not be trusted."""

    points_base: Float[np.ndarray, "T n 3"]
    visible: Bool[np.ndarray, "T n"]
    query_px: Float[np.ndarray, "n 2"]
    fps: float
    depth_scale: float = 1.0
    depth_shift: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points_base = np.asarray(self.points_base, dtype=np.float32)
        self.visible = np.asarray(self.visible, dtype=bool)
        self.query_px = np.asarray(self.query_px, dtype=np.float32)
        if self.points_base.ndim != 3 or self.points_base.shape[2] != 3:
            raise InvalidInput(f"points_base must be [T,n,3], got {list(self.points_base.shape)}")
        T, n = self.points_base.shape[:2]
        if self.visible.shape != (T, n):
            raise InvalidInput(f"visible must be [{T},{n}], got {list(self.visible.shape)}")
        if self.query_px.shape != (n, 2):
            raise InvalidInput(f"query_px must be [{n},2], got {list(self.query_px.shape)}")
        if not self.fps > 0:
            raise InvalidInput(f"fps must be positive, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return int(self.points_base.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.points_base.shape[1])

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        np.savez(
            p,
            points_base=self.points_base,
            visible=self.visible,
            query_px=self.query_px,
            fps=np.float64(self.fps),
            depth_scale=np.float64(self.depth_scale),
            depth_shift=np.float64(self.depth_shift),
            meta=_meta_json(self.meta),
        )
        return p

    @classmethod
    def load(cls, path: str | Path) -> "ObjectFlow":
        d = _load_npz(path, ("points_base", "visible", "query_px", "fps"), "flow")
        meta = json.loads(str(d["meta"])) if "meta" in d else {}
        return cls(
            points_base=d["points_base"],
            visible=d["visible"],
            query_px=d["query_px"],
            fps=float(d["fps"]),
            depth_scale=float(d.get("depth_scale", 1.0)),
            depth_shift=float(d.get("depth_shift", 0.0)),
            meta=meta,
        )


@dataclass
class Grasp:
    """A gripper pose: ``T_base_grasp`` [4,4] (TCP frame: z = approach, y = finger closing
    axis), opening ``width_m``, ``score`` (higher is better), and ``part_point_ids``: the
    flow point indices assumed to move rigidly with the gripper."""

    T_base_grasp: Float[np.ndarray, "4 4"]
    width_m: float
    score: float
    part_point_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def to_dict(self) -> dict[str, Any]:
        return {
            "T_base_grasp": np.asarray(self.T_base_grasp).tolist(),
            "width_m": float(self.width_m),
            "score": float(self.score),
            "part_point_ids": np.asarray(self.part_point_ids).astype(int).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Grasp":
        return cls(np.asarray(d["T_base_grasp"], dtype=np.float64), float(d["width_m"]), float(d["score"]),
                   np.asarray(d.get("part_point_ids", []), dtype=np.int64))


@dataclass
class Plan:
    """A joint trajectory: ``q`` [H,7] float64 rad at spacing ``dt_s`` seconds, ``gripper`` [H]
    float32 (0 open, 1 closed), ``predicted_points`` [H,n,3] float32 metres, and ``meta``
    (method, grasp, cost breakdown, solver stats)."""

    q: Float[np.ndarray, "H 7"]
    dt_s: float
    gripper: Float[np.ndarray, "H"]
    predicted_points: Float[np.ndarray, "H n 3"]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.q = np.asarray(self.q, dtype=np.float64)
        self.gripper = np.asarray(self.gripper, dtype=np.float32)
        self.predicted_points = np.asarray(self.predicted_points, dtype=np.float32)
        if self.q.ndim != 2 or self.q.shape[1] != 7:
            raise InvalidInput(f"plan q must be [H,7], got {list(self.q.shape)}")
        H = self.q.shape[0]
        if H < 2:
            raise InvalidInput(f"plan needs at least 2 waypoints, got {H}")
        if self.gripper.shape != (H,):
            raise InvalidInput(f"plan gripper must be [{H}], got {list(self.gripper.shape)}")
        if self.predicted_points.ndim != 3 or self.predicted_points.shape[0] != H:
            raise InvalidInput(f"plan predicted_points must be [{H},n,3], got {list(self.predicted_points.shape)}")
        if not np.isfinite(self.q).all():
            raise InvalidInput("plan q contains NaN or inf")
        if not self.dt_s > 0:
            raise InvalidInput(f"plan dt_s must be positive, got {self.dt_s}")

    @property
    def horizon(self) -> int:
        return int(self.q.shape[0])

    @property
    def duration_s(self) -> float:
        return (self.horizon - 1) * float(self.dt_s)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        np.savez(p, q=self.q, dt_s=np.float64(self.dt_s), gripper=self.gripper,
                 predicted_points=self.predicted_points, meta=_meta_json(self.meta))
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        d = _load_npz(path, ("q", "dt_s", "gripper", "predicted_points"), "plan")
        meta = json.loads(str(d["meta"])) if "meta" in d else {}
        return cls(q=d["q"], dt_s=float(d["dt_s"]), gripper=d["gripper"],
                   predicted_points=d["predicted_points"], meta=meta)


@dataclass(frozen=True)
class RobotState:
    """Measured arm state: joints ``q`` [7] rad, ``dq`` [7] rad/s, gripper opening (m), and ``t_s``:
    the backend's own clock (s) when it was measured (used by the watchdog for staleness)."""

    q: np.ndarray
    dq: np.ndarray
    t_s: float
    gripper_width_m: float = 0.0
