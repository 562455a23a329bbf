"""What the robot sees of the block between pushes: points, colours and normals from one RGB-D
frame of the (simulated) camera — never from the simulator's state.

``observe(rgbd)``: back-project the live depth (D0-style: ``CameraModel.backproject``) into
the base frame, segment the block as the pixels in a height band above the table inside the
work area (the table is z = 0; the arm waits in the ready pose, far above the band), keep the
largest connected blob, estimate a normal per pixel from the covariance of its 5x5
neighbourhood of block points, and draw ``n`` points with a seeded generator.
``observe(rgbd, mask=...)`` takes a given mask instead: the simulator's segmentation
(``mask_source="privileged"``), labelled as such wherever it is used.

Why a half-resolution camera for the loop (``loop_camera``): the same sim camera (same pose,
same field of view) streamed at 320x240, as a D435 can; it renders ~4x faster and the models
use at most a few hundred points. Training data and evaluation observe through the same one.

``fit_pose(points)`` estimates the block pose (x, y, yaw) from observed points by 2D ICP of
the T's footprint against the top-face points (12 starting yaws): the pose model's input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dream2flow.errors import PerceptionFailed
from dream2flow.pusht import geometry as G
from dream2flow.types import RGBD, CameraModel

BAND_Z_M = (0.004, 0.05)      # block pixels: this high above the table (m)
ROI_MARGIN_M = 0.10           # ... and within the work area grown by this (m)
MIN_PIXELS = 40
NORMAL_WIN = 5


@dataclass
class Observation:
    """``points`` [n,3] m (base frame), ``rgb`` [n,3] in [0,1], ``normals`` [n,3] unit (towards the
    camera), ``mask`` [H,W] bool (the segmented block), ``mask_source``."""

    points: np.ndarray
    rgb: np.ndarray
    normals: np.ndarray
    mask: np.ndarray
    mask_source: str = "camera"

    def features(self) -> np.ndarray:
        """[n,9] float32: position, colour, normal."""
        return np.concatenate([self.points, self.rgb, self.normals], axis=1).astype(np.float32)


def loop_camera(camera: CameraModel, factor: int = 2) -> CameraModel:
    """The same camera at 1/``factor`` resolution (MuJoCo's pinhole: centred principal point)."""
    from dream2flow.sim.camera import intrinsics

    w, h = camera.width // factor, camera.height // factor
    return CameraModel(K=intrinsics(w, h, camera.K[1, 1] / factor), width=w, height=h, T_base_cam=camera.T_base_cam)


def point_image(rgbd: RGBD) -> np.ndarray:
    """[H,W,3] base-frame points of every pixel (NaN where depth is invalid)."""
    H, W = rgbd.depth_m.shape
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    d = rgbd.depth_m.astype(np.float64)
    P = rgbd.camera.backproject(np.stack([u, v], -1), d)
    P[~(d > 0)] = np.nan
    return P


def segment_height_band(P: np.ndarray) -> np.ndarray:
    """[H,W] bool: the largest blob of pixels in the height band inside the work area."""
    import cv2

    z, x, y = P[..., 2], P[..., 0], P[..., 1]
    with np.errstate(invalid="ignore"):
        m = ((z > BAND_Z_M[0]) & (z < BAND_Z_M[1]) & (x > G.WORK_MIN[0] - ROI_MARGIN_M) & (x < G.WORK_MAX[0] + ROI_MARGIN_M)
             & (y > G.WORK_MIN[1] - ROI_MARGIN_M) & (y < G.WORK_MAX[1] + ROI_MARGIN_M))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(m)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return lab == k


def normals_from_points(P: np.ndarray, mask: np.ndarray, camera: CameraModel, win: int = NORMAL_WIN) -> np.ndarray:
    """[H,W,3] unit normals at mask pixels (zeros elsewhere): smallest-eigenvalue direction of the
    covariance of the mask points in a ``win`` x ``win`` window, turned towards the camera."""
    import cv2

    w = mask.astype(np.float64)
    Q = np.where(mask[..., None], np.nan_to_num(P), 0.0)
    box = lambda a: cv2.boxFilter(a, -1, (win, win), normalize=False, borderType=cv2.BORDER_CONSTANT)  # noqa: E731
    s = box(w)
    mean = np.stack([box(Q[..., i]) for i in range(3)], -1)
    second = {(i, j): box(Q[..., i] * Q[..., j]) for i in range(3) for j in range(i, 3)}
    vs, us = np.nonzero(mask)
    cnt = np.maximum(s[vs, us], 1.0)
    mu = mean[vs, us] / cnt[:, None]
    C = np.zeros((len(vs), 3, 3))
    for (i, j), a in second.items():
        C[:, i, j] = C[:, j, i] = a[vs, us] / cnt - mu[:, i] * mu[:, j]
    _, vec = np.linalg.eigh(C)
    n = vec[:, :, 0]
    to_cam = camera.T_base_cam[:3, 3][None] - np.nan_to_num(P[vs, us])
    n *= np.where(np.sum(n * to_cam, axis=1) < 0, -1.0, 1.0)[:, None]
    out = np.zeros(P.shape)
    out[vs, us] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return out


def observe(rgbd: RGBD, n: int, seed: int | np.random.Generator, *, mask: np.ndarray | None = None,
            mask_source: str = "camera") -> Observation:
    """``n`` block points with colour and normal from ``rgbd`` (module docstring). PerceptionFailed
    when fewer than ``MIN_PIXELS`` block pixels are seen."""
    P = point_image(rgbd)
    if mask is None:
        mask = segment_height_band(P)
        mask_source = "camera"
    mask = np.asarray(mask, bool) & np.isfinite(P[..., 2])
    vs, us = np.nonzero(mask)
    if vs.size < MIN_PIXELS:
        raise PerceptionFailed(f"the block is not visible: {vs.size} block pixels (need {MIN_PIXELS})")
    N = normals_from_points(P, mask, rgbd.camera)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pick = rng.choice(vs.size, size=n, replace=vs.size < n)
    v, u = vs[pick], us[pick]
    return Observation(points=P[v, u].astype(np.float32), rgb=(rgbd.rgb[v, u] / 255.0).astype(np.float32),
                       normals=N[v, u].astype(np.float32), mask=mask, mask_source=mask_source)


def fit_pose(points: np.ndarray, normals: np.ndarray | None = None, iters: int = 12) -> np.ndarray:
    """Block pose (x, y, yaw) from observed points: 2D ICP of the T footprint against the top-face
    points (z within 8 mm of the top, or normals pointing up), best of 12 starting yaws."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, np.float64)
    top = p[:, 2] > G.HEIGHT_M - 0.008
    if normals is not None:
        top |= np.asarray(normals)[:, 2] > 0.9
    q = p[top, :2] if top.sum() >= 10 else p[:, :2]
    tmpl = G.footprint_points(0.006)
    tree = cKDTree(q)
    best = (np.inf, np.zeros(3))
    c0 = q.mean(axis=0)
    for yaw0 in np.arange(12) * (np.pi / 6):
        R = G.rot2(yaw0)
        t = c0 - (tmpl.mean(axis=0) @ R.T)
        for _ in range(iters):
            m = tmpl @ R.T + t
            dist, idx = tree.query(m)
            # template -> observed correspondences, plus observed -> template for coverage
            src = np.concatenate([tmpl, tmpl[cKDTree(m).query(q)[1]]])
            dst = np.concatenate([q[idx], q])
            mu_s, mu_d = src.mean(0), dst.mean(0)
            Hm = (src - mu_s).T @ (dst - mu_d)
            U, _, Vt = np.linalg.svd(Hm)
            R = Vt.T @ U.T
            if np.linalg.det(R) < 0:
                Vt[-1] *= -1
                R = Vt.T @ U.T
            t = mu_d - mu_s @ R.T
        m = tmpl @ R.T + t
        err = float(np.mean(tree.query(m)[0] ** 2) + np.mean(cKDTree(m).query(q)[0] ** 2))
        if err < best[0]:
            best = (err, np.array([t[0], t[1], np.arctan2(R[1, 0], R[0, 0])]))
    return best[1]
