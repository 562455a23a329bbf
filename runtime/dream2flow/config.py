"""Load and validate TOML configs (``hw/``): camera files and the robot's limits.

Python 3.10 has no ``tomllib``; ``tomli`` is the same parser. Every problem is an
``InvalidInput`` naming the file and the key, so an operator can fix it in one go.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.types import CameraModel

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.10 in CI
    import tomli as _toml


HW_ENV = "D2F_HW_DIR"


def shipped_hw_dir() -> Path:
    """The default configuration shipped inside the package (``dream2flow/hw``, package data;
    in a source checkout a link to the repository's ``hw/``). Franka's published limits, the
    conservative control defaults, the simulator's camera and the examples."""
    return (Path(__file__).resolve().parent / "hw").resolve()


def hw_dir() -> Path:
    """The configuration folder in use: ``--hw-dir`` / ``$D2F_HW_DIR`` when given (the robot
    cell's own folder), else the shipped defaults (``shipped_hw_dir``)."""
    env = os.environ.get(HW_ENV)
    return Path(env).expanduser() if env else shipped_hw_dir()


def set_hw_dir(path: str | Path) -> Path:
    """Make ``path`` the configuration folder of this process and of the processes it starts
    (``--hw-dir`` and the service config's ``[robot] hw_dir`` call this)."""
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise InvalidInput(f"hw folder not found: {p} (--hw-dir / {HW_ENV} must name a folder laid out like the "
                           f"shipped one: robot/control.toml, cameras/, ...; shipped defaults: {shipped_hw_dir()})")
    os.environ[HW_ENV] = str(p)
    _LIMITS_CACHE.clear()
    return p


def hw_file(relative: str, *, shipped_fallback: bool = False) -> Path:
    """``relative`` (e.g. ``robot/control.toml``) inside the configuration folder. A file the cell
    owns (control, Polymetis, robot, camera files) must be in the folder in use: a missing one is
    an error that names the folder. ``shipped_fallback`` is for facts that are not the cell's
    (Franka's published limits, the URDF, the simulator's camera): the shipped copy is used when
    the cell's folder has none."""
    base = hw_dir()
    p = base / relative
    if p.is_file():
        return p
    shipped = shipped_hw_dir() / relative
    if shipped_fallback and shipped.is_file():
        return shipped
    how = (f"the hw folder {base} (from --hw-dir / {HW_ENV}) has no {relative}: copy it from the shipped defaults "
           f"({shipped}) and adjust it to the cell") if base != shipped_hw_dir() else \
        f"the shipped configuration has no {relative} (a broken install? reinstall dream2flow)"
    raise InvalidInput(how)


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"config file not found: {p}")
    try:
        with p.open("rb") as f:
            return _toml.load(f)
    except _toml.TOMLDecodeError as exc:
        raise InvalidInput(f"{p}: not valid TOML ({exc})") from None


def coerce_like(where: str, key: str, default: Any, value: Any) -> Any:
    """``value`` from a config file checked against the type of the field's ``default`` (ints are
    accepted for floats; a tuple default takes a list of ints). One rule for every config section."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise InvalidInput(f"{where}: '{key}' must be a {type(default).__name__} like {default!r}, got {value!r}")
    return value


def _matrix(d: dict[str, Any], key: str, shape: tuple[int, int], where: str) -> np.ndarray:
    if key not in d:
        raise InvalidInput(f"{where}: missing key '{key}'")
    try:
        arr = np.asarray(d[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: '{key}' must be {shape[0]} rows of {shape[1]} numbers") from None
    if arr.shape != shape:
        raise InvalidInput(f"{where}: '{key}' must be {shape[0]} rows of {shape[1]} numbers, got shape {list(arr.shape)}")
    return arr


def _vector(d: dict[str, Any], key: str, n: int, where: str) -> np.ndarray:
    if key not in d:
        raise InvalidInput(f"{where}: missing key '{key}'")
    try:
        arr = np.asarray(d[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: '{key}' must be a list of {n} numbers") from None
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise InvalidInput(f"{where}: '{key}' must be a list of {n} finite numbers, got {d[key]!r}")
    return arr


def _positive_int(d: dict[str, Any], key: str, where: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise InvalidInput(f"{where}: '{key}' must be a positive integer, got {v!r}")
    return v


CAMERA_KEYS = ("width", "height", "K", "T_base_cam", "depth_scale_m", "serial")
MAX_CAMERA_DISTANCE_M = 3.0        # a cell camera sits about 1 m from the workspace; farther is a unit mistake
PRINCIPAL_POINT_TOLERANCE = 0.15  # |c - centre| / size; real cameras: a few per cent
DEPTH_SCALE_RANGE_M = (1e-6, 0.1)  # metres per unit of a 16-bit depth PNG (RealSense: 0.001)


def camera_from_dict(d: dict[str, Any], where: str = "camera") -> CameraModel:
    """A camera file's table -> ``CameraModel``, strictly: unknown keys, a missing ``T_base_cam`` and
    numbers that cannot describe a real cell camera (a unit mistake, a non-rigid pose, intrinsics of
    another resolution) are ``InvalidInput`` naming the key and the likely fix."""
    import difflib

    unknown = [k for k in d if k not in CAMERA_KEYS]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, CAMERA_KEYS, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InvalidInput(f"{where}: unknown key '{k}'{hint}; a camera file holds {', '.join(CAMERA_KEYS)}")
    width = _positive_int(d, "width", where)
    height = _positive_int(d, "height", where)
    K = _matrix(d, "K", (3, 3), where)
    if "T_base_cam" not in d:
        raise InvalidInput(f"{where}: missing key 'T_base_cam' (camera -> robot base, 4 rows of 4, metres): "
                           "calibrate the camera with `dream2flow camera calibrate`, which writes it")
    T = _matrix(d, "T_base_cam", (4, 4), where)
    problem = _camera_problem(K, width, height, T)
    if problem:
        raise InvalidInput(f"{where}: {problem}")
    scale = d.get("depth_scale_m")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))
                              or not DEPTH_SCALE_RANGE_M[0] <= scale <= DEPTH_SCALE_RANGE_M[1]):
        raise InvalidInput(f"{where}: 'depth_scale_m' must be metres per unit of a 16-bit depth PNG in "
                           f"[{DEPTH_SCALE_RANGE_M[0]:g}, {DEPTH_SCALE_RANGE_M[1]:g}] (RealSense: 0.001), got {scale!r}")
    serial = d.get("serial")
    try:
        return CameraModel(K=K, width=width, height=height, T_base_cam=T,
                           depth_scale_m=None if scale is None else float(scale),
                           serial=None if serial is None else str(serial))
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None


def _camera_problem(K: np.ndarray, width: int, height: int, T: np.ndarray) -> str | None:
    """One sentence on what cannot be right about these numbers, with the likely fix; or None."""
    if not (np.isfinite(K).all() and np.isfinite(T).all()):
        return "K and T_base_cam must be finite numbers"
    # -- the pose ---------------------------------------------------------------------------
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        if np.allclose(T[:, 3], [0.0, 0.0, 0.0, 1.0], atol=1e-9) and np.abs(T[3, :3]).max() > 0:
            return ("T_base_cam looks transposed (its translation is in the last row): write it row by row, "
                    "translation in the last column, last row 0 0 0 1")
        return f"T_base_cam's last row must be 0 0 0 1, got {T[3].tolist()}"
    R, t = T[:3, :3], T[:3, 3]
    err = float(np.abs(R @ R.T - np.eye(3)).max())
    if err > 1e-3:
        norms = np.linalg.norm(R, axis=0)
        hint = (f" (its columns have length {norms.mean():.3g}: a scaled matrix)" if np.ptp(norms) < 1e-3 * norms.mean()
                else "")
        return (f"T_base_cam's rotation is not a rotation: R·Rᵀ differs from I by {err:.3g}{hint}; write the exact "
                "rigid transform the calibration gives (full precision), not an edited or rounded one")
    if np.linalg.det(R) < 0:
        return ("T_base_cam's rotation is a reflection (determinant -1): one camera axis is flipped; the camera "
                "frame is OpenCV's (x right, y down, z forward), right-handed")
    dist = float(np.linalg.norm(t))
    if dist > MAX_CAMERA_DISTANCE_M:
        hint = (f": is the translation in millimetres? Camera files use metres ({dist / 1000:.3f} m)"
                if dist / 1000 <= MAX_CAMERA_DISTANCE_M else ": camera files use metres")
        return f"T_base_cam puts the camera {dist:.3g} m from the robot base (max {MAX_CAMERA_DISTANCE_M:g} m){hint}"
    # -- the intrinsics ---------------------------------------------------------------------
    if not np.allclose(K[2], [0.0, 0.0, 1.0], atol=1e-9) or abs(K[1, 0]) > 1e-9:
        return f"K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (pixels), got {K.tolist()}"
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0:
        return f"K's focal lengths must be positive pixels, got fx={fx:g}, fy={fy:g}"
    def centred(c: float, size: int) -> bool:  # a real principal point is within a few % of the centre
        return abs(c - (size - 1) / 2) <= PRINCIPAL_POINT_TOLERANCE * size

    if not (centred(cx, width) and centred(cy, height)):
        if centred(cx, height) and centred(cy, width):
            return (f"K's principal point ({cx:g}, {cy:g}) px fits a {height}x{width} image, not {width}x{height}: "
                    "are width and height swapped?")
        return (f"K's principal point ({cx:g}, {cy:g}) px is far from the centre of the {width}x{height} image: "
                "K belongs to another resolution (it scales with the image size; use the intrinsics of this stream, "
                "`dream2flow camera info`)")
    if not (0.25 * width <= fx <= 10 * width and 0.25 * width <= fy <= 10 * width and 0.8 <= fx / fy <= 1.25):
        return (f"K's focal lengths fx={fx:g}, fy={fy:g} px do not fit a {width} px wide image: K must be in pixels "
                "(a focal length in mm, or K of another resolution?)")
    return None


def load_camera(path: str | Path) -> CameraModel:
    """Read a camera file (DESIGN.md: width, height, K, T_base_cam, depth_scale_m?, serial?)."""
    return camera_from_dict(load_toml(path), where=str(path))


def camera_to_toml(cam: CameraModel, comment: str = "") -> str:
    """Serialise a camera so that ``load_camera`` gives back exactly the same numbers (repr floats)."""
    def rows(m: np.ndarray) -> str:
        return "[\n" + "".join("  [" + ", ".join(repr(float(x)) for x in r) + "],\n" for r in m) + "]"

    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines += [f"width = {cam.width}", f"height = {cam.height}", f"K = {rows(cam.K)}", f"T_base_cam = {rows(cam.T_base_cam)}"]
    if cam.depth_scale_m is not None:
        lines.append(f"depth_scale_m = {float(cam.depth_scale_m)!r}")
    if cam.serial is not None:
        lines.append(f'serial = "{cam.serial}"')
    return "\n".join(lines) + "\n"


def save_camera(cam: CameraModel, path: str | Path, comment: str = "") -> Path:
    p = Path(path)
    p.write_text(camera_to_toml(cam, comment))
    return p


@dataclass(frozen=True)
class PositionBasedVelocityLimits:
    """The FR3's position-dependent joint velocity envelope (``hw/robot/fr3_limits.toml``
    ``[position_based_velocity]``): near its stop a joint may only move as fast as it can still
    brake. Per joint [7]: ``q_min``/``q_max`` (rad), ``velocity_offset`` (rad/s),
    ``deceleration`` (rad/s^2)."""

    q_min: np.ndarray
    q_max: np.ndarray
    velocity_offset: np.ndarray
    deceleration: np.ndarray

    def bounds(self, q: np.ndarray, dq_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) allowed joint velocity [..., 7] (rad/s) at joints ``q`` [..., 7]."""
        q = np.asarray(q, dtype=np.float64)
        up = -self.velocity_offset + np.sqrt(np.maximum(0.0, 2.0 * self.deceleration * (self.q_max - q)))
        lo = self.velocity_offset - np.sqrt(np.maximum(0.0, 2.0 * self.deceleration * (q - self.q_min)))
        return np.maximum(-dq_max, np.minimum(0.0, lo)), np.minimum(dq_max, np.maximum(0.0, up))


@dataclass(frozen=True)
class RobotLimits:
    """Franka's published limits for one arm model (``hw/robot/<model>_limits.toml``: the Panda's
    or the FR3's). Per joint, [7] each: positions rad, velocity rad/s, acceleration rad/s^2, jerk
    rad/s^3, torque N·m. ``velocity_envelope``: the FR3's position-based velocity limits (None for
    the Panda, whose velocity limit is a constant)."""

    q_min: np.ndarray
    q_max: np.ndarray
    dq_max: np.ndarray
    ddq_max: np.ndarray
    dddq_max: np.ndarray
    tau_max: np.ndarray
    q_ready: np.ndarray
    gripper_max_width_m: float
    model: str = "panda"
    velocity_envelope: PositionBasedVelocityLimits | None = None

    def velocity_bounds(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) allowed joint velocity [..., 7] (rad/s) at joints ``q`` [..., 7]."""
        if self.velocity_envelope is None:
            q = np.asarray(q, dtype=np.float64)
            return np.broadcast_to(-self.dq_max, q.shape), np.broadcast_to(self.dq_max, q.shape)
        return self.velocity_envelope.bounds(q, self.dq_max)

    def check_q(self, q: np.ndarray, margin_rad: float = 0.0) -> list[str]:
        """Names of broken position limits of ``q`` [...,7], e.g. ``['joint 4 above max by 0.012 rad']``."""
        q = np.atleast_2d(q)
        problems = []
        for j in range(7):
            lo = q[:, j].min() - (self.q_min[j] + margin_rad)
            hi = q[:, j].max() - (self.q_max[j] - margin_rad)
            if lo < 0:
                problems.append(f"joint {j + 1} below min by {-lo:.4f} rad")
            if hi > 0:
                problems.append(f"joint {j + 1} above max by {hi:.4f} rad")
        return problems


# Arm models and their limit files in hw/robot/. The kinematics (Franka's modified-DH table) are
# the same for both (dream2flow.control.kinematics).
ROBOT_MODELS: dict[str, str] = {"panda": "panda_limits.toml", "fr3": "fr3_limits.toml"}
_default_model: str | None = None


def set_default_robot_model(model: str | None) -> None:
    """Make ``model`` ("panda" | "fr3") the arm that ``load_robot_limits()`` describes in this
    process (the service sets it from ``[robot] model``; ``None`` goes back to
    ``$D2F_ROBOT_MODEL`` / "panda")."""
    if model is not None and model not in ROBOT_MODELS:
        raise InvalidInput(f"unknown robot model {model!r} (choose from {', '.join(ROBOT_MODELS)})")
    global _default_model
    _default_model = model


def default_robot_model() -> str:
    """The configured arm model: ``set_default_robot_model``, else ``$D2F_ROBOT_MODEL``, else "panda"."""
    model = _default_model or os.environ.get("D2F_ROBOT_MODEL") or "panda"
    if model not in ROBOT_MODELS:
        raise InvalidInput(f"D2F_ROBOT_MODEL={model!r} is not a robot model (choose from {', '.join(ROBOT_MODELS)})")
    return model


def _envelope_from_dict(d: Any, where: str) -> PositionBasedVelocityLimits:
    if not isinstance(d, dict):
        raise InvalidInput(f"{where}: [position_based_velocity] must be a table")
    env = PositionBasedVelocityLimits(
        q_min=_vector(d, "q_min", 7, f"{where} [position_based_velocity]"),
        q_max=_vector(d, "q_max", 7, f"{where} [position_based_velocity]"),
        velocity_offset=_vector(d, "velocity_offset", 7, f"{where} [position_based_velocity]"),
        deceleration=_vector(d, "deceleration", 7, f"{where} [position_based_velocity]"))
    if (env.q_min >= env.q_max).any() or (env.velocity_offset < 0).any() or (env.deceleration <= 0).any():
        raise InvalidInput(f"{where} [position_based_velocity]: need q_min < q_max, velocity_offset >= 0, "
                           "deceleration > 0")
    return env


def robot_limits_from_dict(d: dict[str, Any], where: str = "robot limits") -> RobotLimits:
    model = d.get("model", "panda")
    if model not in ROBOT_MODELS:
        raise InvalidInput(f"{where}: 'model' must be one of {', '.join(ROBOT_MODELS)}, got {model!r}")
    envelope = _envelope_from_dict(d["position_based_velocity"], where) if "position_based_velocity" in d else None
    lim = RobotLimits(
        q_min=_vector(d, "q_min", 7, where), q_max=_vector(d, "q_max", 7, where),
        dq_max=_vector(d, "dq_max", 7, where), ddq_max=_vector(d, "ddq_max", 7, where),
        dddq_max=_vector(d, "dddq_max", 7, where), tau_max=_vector(d, "tau_max", 7, where),
        q_ready=_vector(d, "q_ready", 7, where),
        gripper_max_width_m=float(d.get("gripper_max_width_m", 0.08)),
        model=str(model), velocity_envelope=envelope,
    )
    if (lim.q_min >= lim.q_max).any():
        raise InvalidInput(f"{where}: every q_min must be below its q_max")
    for key in ("dq_max", "ddq_max", "dddq_max", "tau_max"):
        if (getattr(lim, key) <= 0).any():
            raise InvalidInput(f"{where}: every '{key}' must be positive")
    if lim.check_q(lim.q_ready):
        raise InvalidInput(f"{where}: q_ready is outside the joint limits")
    return lim


_LIMITS_CACHE: dict[str, RobotLimits] = {}


def load_robot_limits(path: str | Path | None = None, *, model: str | None = None) -> RobotLimits:
    """Limits from ``path``, else those of arm ``model`` (default: ``default_robot_model()``):
    ``robot/panda_limits.toml`` or ``robot/fr3_limits.toml`` of the hw folder, else the shipped
    copy (Franka's published facts; cached per path)."""
    if path is None:
        model = model or default_robot_model()
        if model not in ROBOT_MODELS:
            raise InvalidInput(f"unknown robot model {model!r} (choose from {', '.join(ROBOT_MODELS)})")
        path = hw_file(f"robot/{ROBOT_MODELS[model]}", shipped_fallback=True)
    p = str(Path(path))
    if p not in _LIMITS_CACHE:
        lim = robot_limits_from_dict(load_toml(p), where=p)
        if model is not None and lim.model != model:
            raise InvalidInput(f"{p}: describes the {lim.model} but the {model} was asked for")
        _LIMITS_CACHE[p] = lim
    return _LIMITS_CACHE[p]
