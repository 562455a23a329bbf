"""Lifting: 2D tracks + per-frame calibrated depth -> 3D points in the robot base frame.

Per frame, the relative depth is mapped to metres with the alignment (``Z = s*·Ẑ + b*``),
optionally median-filtered (edge-preserving: removes per-pixel noise and salt outliers without
blurring the object's silhouette into the background), sampled bilinearly at each track's
sub-pixel position, and back-projected with ``K`` and ``T_base_cam``.

A point is visible in 3D only if it is visible in 2D *and* its depth is trustworthy: all four
bilinear neighbours valid (finite, within [min_depth_m, max_depth_m]) and no depth
discontinuity among them (a point on the object's rim would otherwise get a depth halfway to
the background). Invisible points keep a value -- their last visible position (or the first
one, before they are first seen; NaN if never seen) -- so arrays stay full but must not be
trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.flow.align import Alignment
from dream2flow.types import CameraModel

if TYPE_CHECKING:
    from jaxtyping import Bool, Float


@dataclass(frozen=True)
class LiftConfig:
    min_depth_m: float = 0.05
    max_depth_m: float = 10.0
    jump_abs_m: float = 0.03      # max spread of the 4 neighbours: jump_abs_m + jump_rel * depth
    jump_rel: float = 0.05
    median_px: int = 5            # 0 (off), 3 or 5: median filter of each calibrated depth frame


def calibrated_depth(rel: Float[np.ndarray, "H W"], alignment: Alignment, config: LiftConfig | None = None
                     ) -> Float[np.ndarray, "H W"]:
    """One relative depth frame -> metres (float32), 0 where invalid, median-filtered if configured."""
    import cv2

    cfg = config or LiftConfig()
    z = alignment.apply(rel)
    ok = np.isfinite(z) & (z >= cfg.min_depth_m) & (z <= cfg.max_depth_m)
    z = np.where(ok, z, 0.0).astype(np.float32)
    if cfg.median_px:
        if cfg.median_px not in (3, 5):
            raise InvalidInput(f"depth median filter size must be 0, 3 or 5, got {cfg.median_px}")
        z = cv2.medianBlur(z, cfg.median_px)
    return z


def sample_depth(depth: Float[np.ndarray, "H W"], px: Float[np.ndarray, "n 2"], config: LiftConfig | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear depth at pixels ``px`` (x, y) -> (depth [n] m, ok [n]). ``ok`` is False outside the
    image, where a neighbour is invalid (<= min_depth_m or > max_depth_m), or across a jump."""
    cfg = config or LiftConfig()
    H, W = depth.shape
    p = np.asarray(px, np.float64)
    x, y = p[:, 0], p[:, 1]
    inside = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    xs = np.where(inside, x, 0.0)
    ys = np.where(inside, y, 0.0)
    x0 = np.floor(xs).astype(np.int64)
    y0 = np.floor(ys).astype(np.int64)
    x1 = np.minimum(x0 + 1, W - 1)
    y1 = np.minimum(y0 + 1, H - 1)
    fx, fy = xs - x0, ys - y0
    d00, d01 = depth[y0, x0].astype(np.float64), depth[y0, x1].astype(np.float64)
    d10, d11 = depth[y1, x0].astype(np.float64), depth[y1, x1].astype(np.float64)
    z = (d00 * (1 - fx) * (1 - fy) + d01 * fx * (1 - fy) + d10 * (1 - fx) * fy + d11 * fx * fy)
    nb = np.stack([d00, d01, d10, d11], axis=1)
    valid = np.all((nb > cfg.min_depth_m) & (nb <= cfg.max_depth_m) & np.isfinite(nb), axis=1)
    spread = nb.max(1) - nb.min(1)
    smooth = spread <= cfg.jump_abs_m + cfg.jump_rel * z
    ok = inside & valid & smooth
    return np.where(ok, z, np.nan), ok


def lift_tracks(tracks_px: Float[np.ndarray, "T n 2"], visible_2d: Bool[np.ndarray, "T n"],
                rel_depth: Float[np.ndarray, "T H W"], alignment: Alignment, camera: CameraModel,
                config: LiftConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> (points_base [T,n,3] float64 metres, visible [T,n] bool); see the module docstring."""
    cfg = config or LiftConfig()
    tr = np.asarray(tracks_px, np.float64)
    v2 = np.asarray(visible_2d, bool)
    T, n = v2.shape
    if tr.shape != (T, n, 2):
        raise InvalidInput(f"tracks must be [{T},{n},2], got {list(tr.shape)}")
    if rel_depth.shape[0] != T:
        raise InvalidInput(f"video depth has {rel_depth.shape[0]} frames, tracks have {T}")
    if rel_depth.shape[1:] != (camera.height, camera.width):
        raise InvalidInput(f"video depth is {rel_depth.shape[2]}x{rel_depth.shape[1]}, "
                           f"camera is {camera.width}x{camera.height}")
    pts = np.full((T, n, 3), np.nan)
    vis = np.zeros((T, n), bool)
    H, W = camera.height, camera.width
    r = cfg.median_px // 2  # the median's reach: the crop keeps every sampled pixel's full window
    for t in range(T):
        p = tr[t]
        use = v2[t] & np.isfinite(p).all(1) & (p[:, 0] >= 0) & (p[:, 0] <= W - 1) & (p[:, 1] >= 0) & (p[:, 1] <= H - 1)
        if not use.any():
            continue
        # only the region around this frame's points is calibrated and filtered: the same values at
        # every sampled pixel as on the whole frame (crop edges that are image edges replicate the
        # border exactly as the full-frame filter does), at a fraction of the cost
        x0 = max(0, int(np.floor(p[use, 0].min())) - r)
        y0 = max(0, int(np.floor(p[use, 1].min())) - r)
        x1 = min(W, int(np.floor(p[use, 0].max())) + 2 + r)
        y1 = min(H, int(np.floor(p[use, 1].max())) + 2 + r)
        z_map = calibrated_depth(rel_depth[t, y0:y1, x0:x1], alignment, cfg)
        z, ok = sample_depth(z_map, np.where(use[:, None], p - (x0, y0), np.nan), cfg)
        ok &= use
        vis[t] = ok
        if ok.any():
            pts[t, ok] = camera.backproject(tr[t, ok], z[ok])
    return fill_invisible(pts, vis), vis


def fill_invisible(points: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Invisible entries <- the last visible value of their track (before the first visible frame:
    the first visible value; never visible: NaN). Pure bookkeeping, no estimate."""
    out = np.array(points, dtype=np.float64, copy=True)
    T, n = visible.shape
    idx = np.where(visible, np.arange(T)[:, None], -1)
    last = np.maximum.accumulate(idx, axis=0)  # index of last visible frame at or before t
    first = np.argmax(visible, axis=0)          # first visible frame (0 if never)
    seen = visible.any(0)
    src = np.where(last >= 0, last, first[None, :])
    cols = np.arange(n)[None, :].repeat(T, 0)
    out = out[src, cols]
    out[:, ~seen] = np.nan
    return out
