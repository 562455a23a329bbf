"""Robustness variations (the paper's Fig. 3): one factor of a seeded scene changed, the rest kept.

``make_env(task, seed, vary=...)`` builds the scene of ``seed`` with exactly one factor drawn
again from its own random stream (``SeedSequence([seed, crc32(task), crc32(factor)])``), so an
episode under ``--vary X`` differs from the same seed's default episode in X alone:

* ``instance``: the task object drawn again (its size, shape, colour and placement within the
  task's ranges); the table, lighting and camera are the seed's.
* ``background``: the table top (wood, checker or speckle, any colour), floor and lighting drawn
  again, and a textured wall behind the table; the object and camera are the seed's.
* ``viewpoint``: the camera moved on a sphere about the point it looks at (6-12 degrees about the
  vertical, 3-6 degrees in elevation, distance x0.92-1.08); the scene is the seed's.
"""

from __future__ import annotations

import zlib

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.types import CameraModel

VARIATIONS: tuple[str, ...] = ("instance", "background", "viewpoint")
LOOK_Z_M = 0.12  # height (m) of the point the camera is taken to look at (the default target's)


def variation_rng(task: str, seed: int, factor: str) -> np.random.Generator:
    """The stream that draws ``factor`` again for (task, seed); independent of the default streams."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(task.encode()),
                                                         zlib.crc32(factor.encode())]))


def vary_camera(camera: CameraModel, rng: np.random.Generator) -> CameraModel:
    """``camera`` moved about its look-at point (where its optical axis meets z = ``LOOK_Z_M``):
    yaw +-[6, 12] deg about the vertical, elevation +-[3, 6] deg, distance x[0.92, 1.08];
    intrinsics kept."""
    from dream2flow.sim.camera import look_at

    T = np.asarray(camera.T_base_cam, dtype=np.float64)
    eye, axis = T[:3, 3], T[:3, 2]
    if axis[2] > -1e-3:
        raise InvalidInput("the viewpoint variation needs a camera looking down at the table")
    target = eye + axis * (eye[2] - LOOK_Z_M) / -axis[2]
    rel = eye - target
    dist = float(np.linalg.norm(rel))
    yaw = np.arctan2(rel[1], rel[0]) + np.deg2rad(rng.uniform(6, 12)) * rng.choice([-1.0, 1.0])
    elev = np.arcsin(rel[2] / dist) + np.deg2rad(rng.uniform(3, 6)) * rng.choice([-1.0, 1.0])
    dist *= float(rng.uniform(0.92, 1.08))
    new_eye = target + dist * np.array([np.cos(elev) * np.cos(yaw), np.cos(elev) * np.sin(yaw), np.sin(elev)])
    return CameraModel(K=np.asarray(camera.K).copy(), width=camera.width, height=camera.height,
                       T_base_cam=look_at(new_eye, target))
