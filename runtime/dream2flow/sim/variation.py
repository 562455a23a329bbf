"""Scene variation beyond a task's own randomisation: lighting and camera-pose jitter.

Why: models trained on the simulator's renders (``export_tools/train_sim_*.py``) must not learn
one light and one viewpoint by heart. Both are *options*: ``make_env(task, seed)`` without them
renders exactly what it always did (tests compare renders bit for bit); a training scene passes
``lighting=random_lighting(rng)`` and ``camera=jittered_camera(rng)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.types import CameraModel


@dataclass(frozen=True)
class Lighting:
    """The scene's lights (``scene.compose``): the key light's position offset (m, added to its
    seeded position) and diffuse level, the fill light's diffuse level, the headlight's ambient and
    diffuse levels, and an RGB tint of the key light (multiplies its diffuse colour)."""

    key_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    key_diffuse: float = 0.55
    fill_diffuse: float = 0.25
    ambient: float = 0.35
    headlight_diffuse: float = 0.35
    key_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        levels = (self.key_diffuse, self.fill_diffuse, self.ambient, self.headlight_diffuse, *self.key_tint)
        if not all(np.isfinite(v) and 0.0 <= v <= 2.0 for v in levels):
            raise InvalidInput(f"light levels and tints must be in [0, 2], got {self}")
        if len(self.key_offset_m) != 3 or not all(np.isfinite(v) and abs(v) <= 2.0 for v in self.key_offset_m):
            raise InvalidInput(f"key light offset must be 3 finite numbers within 2 m, got {self.key_offset_m}")


def random_lighting(rng: np.random.Generator) -> Lighting:
    """A plausible indoor lighting draw: key light moved by up to 0.4 m (0.3 m in height), dimmer or
    brighter (0.3-0.8), fill 0.1-0.4, ambient 0.2-0.5, a mild colour tint (+-10 %)."""
    return Lighting(key_offset_m=tuple(float(v) for v in rng.uniform([-0.4, -0.4, -0.3], [0.4, 0.4, 0.3])),
                    key_diffuse=float(rng.uniform(0.3, 0.8)), fill_diffuse=float(rng.uniform(0.1, 0.4)),
                    ambient=float(rng.uniform(0.2, 0.5)), headlight_diffuse=float(rng.uniform(0.2, 0.5)),
                    key_tint=tuple(float(v) for v in rng.uniform(0.9, 1.1, size=3)))


def jittered_camera(rng: np.random.Generator, base: CameraModel | None = None, *, eye_m: float = 0.04,
                    target_m: float = 0.04, focal_frac: float = 0.04) -> CameraModel:
    """``base`` (default: the simulator's camera) with its eye and look-at target moved by up to
    ``eye_m`` / ``target_m`` per axis and its focal length scaled by up to ``focal_frac``; same
    image size, square pixels, centred principal point (what MuJoCo can render)."""
    from dream2flow.sim.camera import default_camera, intrinsics, look_at

    cam = base if base is not None else default_camera()
    T = cam.T_base_cam
    eye = T[:3, 3]
    # the base camera's target: where its optical axis meets the plane through the table (z = 0),
    # else 1 m ahead
    z = T[:3, 2]
    dist = float(-eye[2] / z[2]) if z[2] < -1e-6 else 1.0
    target = eye + dist * z
    new_eye = eye + rng.uniform(-eye_m, eye_m, size=3)
    new_target = target + rng.uniform(-target_m, target_m, size=3)
    f = float(cam.K[0, 0]) * (1.0 + float(rng.uniform(-focal_frac, focal_frac)))
    return CameraModel(K=intrinsics(cam.width, cam.height, f), width=cam.width, height=cam.height,
                       T_base_cam=look_at(new_eye, new_target))


__all__ = ["Lighting", "random_lighting", "jittered_camera"]
