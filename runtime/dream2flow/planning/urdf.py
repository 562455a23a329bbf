"""A minimal URDF reader for serial chains (revolute/prismatic/fixed joints; origins and axes;
limits), with NumPy forward kinematics. Used to check the planner's DH-based FK against the
URDF in ``hw/robot/`` and to read its limits — independent code paths on purpose.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dream2flow.errors import InvalidInput


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray          # [4,4] parent -> joint frame at q = 0
    axis: np.ndarray            # [3] in the joint frame
    lower: float | None
    upper: float | None
    velocity: float | None
    effort: float | None


def _rpy(r: float, p: float, y: float) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw: R = Rz(y) · Ry(p) · Rx(r)."""
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _floats(text: str | None, n: int, default: tuple[float, ...]) -> tuple[float, ...]:
    if text is None:
        return default
    vals = tuple(float(v) for v in text.split())
    if len(vals) != n:
        raise InvalidInput(f"URDF: expected {n} numbers, got {text!r}")
    return vals


def load_urdf_joints(path: str | Path) -> list[UrdfJoint]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"URDF not found: {p}")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise InvalidInput(f"URDF {p} is not valid XML ({exc})") from None
    joints = []
    for j in root.findall("joint"):
        o = j.find("origin")
        xyz = _floats(o.get("xyz") if o is not None else None, 3, (0.0, 0.0, 0.0))
        rpy = _floats(o.get("rpy") if o is not None else None, 3, (0.0, 0.0, 0.0))
        T = np.eye(4)
        T[:3, :3] = _rpy(*rpy)
        T[:3, 3] = xyz
        ax = j.find("axis")
        axis = np.array(_floats(ax.get("xyz") if ax is not None else None, 3, (1.0, 0.0, 0.0)))
        lim = j.find("limit")

        def lf(key: str) -> float | None:
            return None if lim is None or lim.get(key) is None else float(lim.get(key))

        joints.append(UrdfJoint(name=j.get("name", ""), type=j.get("type", "fixed"), parent=j.find("parent").get("link"),
                                child=j.find("child").get("link"), origin=T, axis=axis / np.linalg.norm(axis),
                                lower=lf("lower"), upper=lf("upper"), velocity=lf("velocity"), effort=lf("effort")))
    return joints


def chain(joints: list[UrdfJoint], base: str, tip: str) -> list[UrdfJoint]:
    """Joints from ``base`` to ``tip`` in order."""
    by_child = {j.child: j for j in joints}
    out = []
    link = tip
    while link != base:
        if link not in by_child:
            raise InvalidInput(f"URDF: no chain from {base} to {tip}")
        j = by_child[link]
        out.append(j)
        link = j.parent
    return out[::-1]


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    x, y, z = axis
    c, s, C = math.cos(angle), math.sin(angle), 1 - math.cos(angle)
    return np.array([[c + x * x * C, x * y * C - z * s, x * z * C + y * s],
                     [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
                     [z * x * C - y * s, z * y * C + x * s, c + z * z * C]])


def chain_fk(joints: list[UrdfJoint], q: np.ndarray) -> dict[str, np.ndarray]:
    """Poses [4,4] of every child link of ``joints`` (a chain from the base) for the movable
    joints' values ``q`` (in chain order)."""
    T = np.eye(4)
    out = {}
    k = 0
    for j in joints:
        M = np.eye(4)
        if j.type in ("revolute", "continuous"):
            M[:3, :3] = _axis_angle(j.axis, float(q[k]))
            k += 1
        elif j.type == "prismatic":
            M[:3, 3] = j.axis * float(q[k])
            k += 1
        T = T @ j.origin @ M
        out[j.child] = T
    return out
