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


def camera_from_dict(d: dict[str, Any], where: str = "camera") -> CameraModel:
    width = _positive_int(d, "width", where)
    height = _positive_int(d, "height", where)
    K = _matrix(d, "K", (3, 3), where)
    T = _matrix(d, "T_base_cam", (4, 4), where) if "T_base_cam" in d else np.eye(4)
    scale = d.get("depth_scale_m")
    if scale is not None and (not isinstance(scale, (int, float)) or scale <= 0):
        raise InvalidInput(f"{where}: 'depth_scale_m' must be a positive number, got {scale!r}")
    serial = d.get("serial")
    try:
        return CameraModel(K=K, width=width, height=height, T_base_cam=T,
                           depth_scale_m=None if scale is None else float(scale),
                           serial=None if serial is None else str(serial))
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None


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
class RobotLimits:
    """Franka Panda limits (published table, ``hw/robot/panda_limits.toml``). Per joint, [7] each:
    positions rad, velocity rad/s, acceleration rad/s^2, jerk rad/s^3, torque N·m."""

    q_min: np.ndarray
    q_max: np.ndarray
    dq_max: np.ndarray
    ddq_max: np.ndarray
    dddq_max: np.ndarray
    tau_max: np.ndarray
    q_ready: np.ndarray
    gripper_max_width_m: float

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


def robot_limits_from_dict(d: dict[str, Any], where: str = "robot limits") -> RobotLimits:
    lim = RobotLimits(
        q_min=_vector(d, "q_min", 7, where), q_max=_vector(d, "q_max", 7, where),
        dq_max=_vector(d, "dq_max", 7, where), ddq_max=_vector(d, "ddq_max", 7, where),
        dddq_max=_vector(d, "dddq_max", 7, where), tau_max=_vector(d, "tau_max", 7, where),
        q_ready=_vector(d, "q_ready", 7, where),
        gripper_max_width_m=float(d.get("gripper_max_width_m", 0.08)),
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


def load_robot_limits(path: str | Path | None = None) -> RobotLimits:
    """Limits from ``path`` or the default ``hw/robot/panda_limits.toml`` (cached per path)."""
    p = str(Path(path) if path else hw_file("robot/panda_limits.toml", shipped_fallback=True))
    if p not in _LIMITS_CACHE:
        _LIMITS_CACHE[p] = robot_limits_from_dict(load_toml(p), where=p)
    return _LIMITS_CACHE[p]
