"""A real cell's configuration (``hw/robot/robot.toml``, example ``hw/robot/robot.example.toml``):
which robot backend and files, which camera, where data goes, and how to calibrate.

Why one file: bringing up a cell means pointing at its limits, Polymetis connection,
camera (and its calibration) and calibration poses; ``dream2flow camera calibrate`` reads
all of them from here. Relative paths resolve against the file's folder. Unknown keys in
the tables this module reads are errors (a typo must not silently keep a default).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.camera.calibration import CalibrationConfig
from dream2flow.camera.charuco import BoardSpec
from dream2flow.camera.configs import CameraConfig, camera_config_from_dict
from dream2flow.errors import InvalidInput

_ROBOT_KEYS = ("name", "backend", "limits", "polymetis", "libfranka", "control", "urdf")


@dataclass
class CellConfig:
    """The parts of a cell file the camera tools use (paths already resolved)."""

    path: Path
    name: str
    backend: str
    limits_file: Path | None
    polymetis_file: Path | None
    camera: CameraConfig
    data_dir: Path | None
    board: BoardSpec
    calibration: CalibrationConfig
    calibration_out: Path | None
    poses: np.ndarray | None
    raw: dict[str, Any] = field(default_factory=dict)
    libfranka_file: Path | None = None


def load_poses(d: dict[str, Any], where: str) -> np.ndarray | None:
    """``poses = [[q1..q7], ...]`` (rad) -> [N,7], or ``None`` when absent."""
    if "poses" not in d:
        return None
    try:
        q = np.asarray(d["poses"], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: 'poses' must be a list of 7-number lists (rad)") from None
    if q.ndim != 2 or q.shape[1] != 7 or not np.isfinite(q).all():
        raise InvalidInput(f"{where}: 'poses' must be a list of 7-number lists (rad), got shape {list(q.shape)}")
    return q


def load_cell(path: str | Path) -> CellConfig:
    from dream2flow.config import load_toml

    p = Path(path)
    d = load_toml(p)
    base = p.resolve().parent
    where = str(p)

    def ref(value: Any, key: str) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"{where}: '{key}' must be a path string")
        q = Path(value).expanduser()
        return q if q.is_absolute() else base / q

    robot = d.get("robot", {})
    unknown = sorted(set(robot) - set(_ROBOT_KEYS))
    if unknown:
        raise InvalidInput(f"{where} [robot]: unknown key(s) {', '.join(unknown)} (known: {', '.join(_ROBOT_KEYS)})")
    backend = robot.get("backend", "polymetis")
    if backend not in ("kinematic", "mujoco", "polymetis", "libfranka"):
        raise InvalidInput(f"{where} [robot]: unknown backend {backend!r} (kinematic, mujoco, polymetis, libfranka)")
    if "camera" not in d:
        raise InvalidInput(f"{where}: missing the [camera] table")
    camera = camera_config_from_dict(d["camera"], base_dir=base, where=f"{where} [camera]")
    data = d.get("data", {})
    cal = dict(d.get("calibration", {}))
    board = BoardSpec.from_dict(cal.pop("board", {}), where=f"{where} [calibration.board]")
    poses = load_poses(cal, f"{where} [calibration]")
    cal.pop("poses", None)
    out = ref(cal.pop("out", None), "calibration.out")
    known = {f.name for f in fields(CalibrationConfig)}
    unknown = sorted(set(cal) - known)
    if unknown:
        raise InvalidInput(f"{where} [calibration]: unknown key(s) {', '.join(unknown)} "
                           f"(known: board, poses, out, {', '.join(sorted(known))})")
    try:
        calibration = CalibrationConfig(**cal)
    except TypeError as exc:
        raise InvalidInput(f"{where} [calibration]: {exc}") from None
    return CellConfig(path=p, name=str(robot.get("name", p.stem)), backend=backend,
                      limits_file=ref(robot.get("limits"), "robot.limits"),
                      polymetis_file=ref(robot.get("polymetis"), "robot.polymetis"),
                      camera=camera, data_dir=ref(data.get("dir"), "data.dir"), board=board,
                      calibration=calibration, calibration_out=out, poses=poses, raw=d,
                      libfranka_file=ref(robot.get("libfranka"), "robot.libfranka"))
