"""A synthetic test camera: a textured table plane seen from above with a box on it, the box
sliding a little each frame. No device and no simulator: it lets tests and a laptop run
``dream2flow camera record``/``info`` end to end. It is named as what it is (``mock``)
and never passed off as a real camera."""

from __future__ import annotations

from typing import Any

import numpy as np

from dream2flow.camera.configs import MockCameraConfig
from dream2flow.types import RGBD, CameraModel


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``T_base_cam`` of an OpenCV camera at ``eye`` looking at ``target`` (z up world)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.array([0.0, 0.0, 1.0]))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


class MockCamera:
    """Deterministic synthetic RGB-D (``seed``); frame ``k`` moves the box by 5 mm."""

    def __init__(self, config: MockCameraConfig | None = None) -> None:
        self.config = config or MockCameraConfig()
        c = self.config
        f = 615.0 * c.width / 640.0        # a D435's field of view at any size
        fx, fy = (f if c.fx is None else c.fx), (f if c.fy is None else c.fy)
        K = np.array([[fx, 0.0, (c.width - 1) / 2.0], [0.0, fy, (c.height - 1) / 2.0], [0.0, 0.0, 1.0]])
        T = _look_at(np.array([1.0, 0.0, 0.7]), np.array([0.45, 0.0, 0.0]))
        self._model = CameraModel(K=K, width=c.width, height=c.height, T_base_cam=T, depth_scale_m=0.001,
                                  serial=f"mock-{c.seed}")
        rng = np.random.default_rng(c.seed)
        self._texture = rng.integers(60, 200, size=(8, 8, 3)).astype(np.float64)
        self._k = 0

    def _render(self, k: int) -> RGBD:
        m = self._model
        u, v = np.meshgrid(np.arange(m.width, dtype=np.float64), np.arange(m.height, dtype=np.float64))
        rays_c = np.stack([(u - m.K[0, 2]) / m.K[0, 0], (v - m.K[1, 2]) / m.K[1, 1], np.ones_like(u)], axis=-1)
        R, t = m.T_base_cam[:3, :3], m.T_base_cam[:3, 3]
        rays_b = rays_c @ R.T
        # Intersect with the table z = 0, then with the box top z = 0.06 inside its footprint.
        with np.errstate(divide="ignore", invalid="ignore"):
            s_table = -t[2] / rays_b[..., 2]
            s_box = (0.06 - t[2]) / rays_b[..., 2]
        p_box = t + rays_b * s_box[..., None]
        cx = 0.45 + 0.005 * k
        on_box = (np.abs(p_box[..., 0] - cx) < 0.05) & (np.abs(p_box[..., 1]) < 0.04) & (s_box > 0)
        s = np.where(on_box, s_box, s_table)
        p = t + rays_b * s[..., None]
        ok = np.isfinite(s) & (s > 0)
        depth = np.where(ok, s, 0.0)  # ray has z_cam = 1, so the ray parameter is the depth
        ix = np.floor(np.nan_to_num(p[..., 0]) / 0.05).astype(np.int64) % 8
        iy = np.floor(np.nan_to_num(p[..., 1]) / 0.05).astype(np.int64) % 8
        rgb = self._texture[iy, ix]
        rgb = np.where(on_box[..., None], np.array([200.0, 60.0, 40.0]), rgb)
        rgb = np.where(ok[..., None], rgb, 0.0)
        # z16 millimetre units times the scale in float32, exactly as a RealSense frame is made.
        depth_m = np.rint(depth / 0.001).astype(np.float32) * np.float32(0.001)
        return RGBD(rgb=rgb.astype(np.uint8), depth_m=depth_m, camera=m)

    def capture(self) -> RGBD:
        out = self._render(self._k)
        self._k += 1
        return out

    def model(self) -> CameraModel:
        return self._model

    def info(self) -> dict[str, Any]:
        return {"source": f"mock camera (synthetic, seed {self.config.seed})"}

    def close(self) -> None:
        pass
