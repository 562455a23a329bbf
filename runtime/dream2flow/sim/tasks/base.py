"""What every simulated task provides, and small helpers to write its MJCF.

A task instance is made per environment from a seeded generator: it adds its bodies to the
scene, then (after compilation) sets the task object along a scripted path for the video
generator (``set_progress``: 0 = start, 1 = done) and judges success from the physical state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dream2flow.sim import textures


@dataclass(frozen=True)
class SuccessResult:
    """``success``; ``value`` the task's measured quantity (metres opened, door angle in rad, the
    piece's distance to the bowl centre in m, or the fraction of the rim a cloth covers); ``reason``
    one sentence for a report; ``moved`` whether the object moved at all, where ``value`` cannot
    say it (None: a value near 0 means untouched)."""

    success: bool
    value: float
    reason: str
    moved: bool | None = None


@dataclass
class SceneParts:
    """MJCF pieces a task adds to the scene, plus the in-memory asset files they use."""

    asset_xml: list[str] = field(default_factory=list)
    body_xml: list[str] = field(default_factory=list)
    contact_xml: list[str] = field(default_factory=list)
    deformable_xml: list[str] = field(default_factory=list)  # <flex> elements (cloth)
    equality_xml: list[str] = field(default_factory=list)  # the task's equality constraints
    assets: dict[str, bytes] = field(default_factory=dict)

    def material(self, name: str, image: np.ndarray, *, specular: float = 0.2, shininess: float = 0.2) -> str:
        """Register ``image`` [S,S,3] uint8 as a cube texture stretched once over every box face
        (``texuniform="false"``: follows the geometry when a video morphs it) -> material name."""
        fname = f"{name}.png"
        self.assets[fname] = textures.png_bytes(image)
        self.asset_xml.append(f'<texture name="{name}" type="cube" file="{fname}"/>')
        self.asset_xml.append(f'<material name="{name}" texture="{name}" texuniform="false" '
                              f'specular="{specular}" shininess="{shininess}"/>')
        return name


def fmt(v: Any) -> str:
    return " ".join(f"{float(x):.6g}" for x in np.atleast_1d(v))


def quat_yaw(yaw: float) -> np.ndarray:
    """wxyz quaternion of a rotation about world z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def quat_axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def box(pos: Any, half: Any, material: str | None = None, *, name: str | None = None, quat: Any = None,
        rgba: str | None = None, extra: str = "") -> str:
    """A ``<geom type="box">`` line (half sizes in m)."""
    attrs = [f'type="box" pos="{fmt(pos)}" size="{fmt(half)}"']
    if name:
        attrs.insert(0, f'name="{name}"')
    if quat is not None:
        attrs.append(f'quat="{fmt(quat)}"')
    if material:
        attrs.append(f'material="{material}"')
    if rgba:
        attrs.append(f'rgba="{rgba}"')
    if extra:
        attrs.append(extra)
    return f"<geom {' '.join(attrs)}/>"


def min_jerk(s: np.ndarray | float) -> np.ndarray:
    """Smooth 0->1 profile with zero velocity and acceleration at both ends."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


class Task:
    """Base class. Subclasses set the class attributes and implement the four methods."""

    name: str = ""
    instruction: str = ""
    object_prompt: str = ""
    object_bodies: tuple[str, ...] = ()  # the object's bodies: the flow's object (segmentation ids)
    static_parts: tuple[str, ...] = ()  # object bodies that stay put (the mask covers more than the moving part)
    thumb_body: str | None = None  # where a hand would hold it in the video (thumb point), or None
    thumb_local: np.ndarray | None = None  # in thumb_body's frame (m)
    flex_bodies: dict[str, str] = {}  # flex name -> the body its pixels count as in segmentation
    dynamic_video: bool = False  # the generator runs the physics (start/drive/release_video), not set_progress

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.info: dict[str, Any] = {}

    def build(self, parts: SceneParts) -> None:
        """Add bodies/materials; fill ``self.info`` (geometry facts in the base frame)."""
        raise NotImplementedError

    def set_progress(self, model, data, s: float, path: dict[str, Any] | None = None) -> None:  # noqa: ANN001
        """Put the task object at progress ``s`` in [0, 1] of the scripted path (qpos only;
        the caller runs mj_forward). ``path`` from ``video_path`` (None: the nominal path)."""
        raise NotImplementedError

    def video_path(self, rng: np.random.Generator) -> dict[str, Any]:
        """Random details of one generated video's path (e.g. where the piece lands)."""
        return {}

    def success(self, model, data) -> SuccessResult:  # noqa: ANN001
        raise NotImplementedError

    def failure_state(self, model, data) -> None:  # noqa: ANN001
        """A plausible near-miss (for tests): the object moved, but not enough / not there."""
        raise NotImplementedError

    # dynamic videos (``dynamic_video = True``): an invisible hand moves the object with the physics on
    def start_video(self, model, data, path: dict[str, Any]) -> None:  # noqa: ANN001
        """Take hold of the object in the generator's copy of the data."""
        raise NotImplementedError

    def drive_video(self, model, data, s: float, path: dict[str, Any]) -> None:  # noqa: ANN001
        """Set the hand at progress ``s`` in [0, 1] before a physics step."""
        raise NotImplementedError
