"""Optional clean-up of a lifted 3D flow, per track, along time.

1. Outlier rejection: a visible point far from the running median of its own track (a depth
   spike, a tracker slip that survived the 2D checks) is marked invisible -- not moved, not
   deleted. "Far" = more than ``outlier_k`` robust sigmas of that track's deviations, and
   at least ``outlier_abs_m``.
2. Temporal smoothing: each visible point is replaced by a local quadratic fit (tricube
   weights) over the visible points of its track within ``smooth_half_window`` frames. A
   polynomial, not a plain average, so motion is not biased (quadratic: exact under constant
   acceleration; a linear fit lagged by several mm on 8-frame videos); gaps and track ends are
   handled by the same fit (one-sided at the ends).

Whether this helps is measured (tests/test_flow_filtering.py, bench/flow_bench.py). On the
synthetic scene with 1 % depth noise (median 3D error, mm, off -> on): T=8 2.41 -> 2.13,
T=12 1.85 -> 1.32, T=24 1.91 -> 1.33, T=48 2.01 -> 1.39; with blob-shaped depth errors the
outlier step takes the mean error from ~17 mm to ~2 mm. So it is on by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.flow.lift import fill_invisible
from dream2flow.nanstats import nanmedian

if TYPE_CHECKING:
    from jaxtyping import Bool, Float


@dataclass(frozen=True)
class FilterConfig:
    enabled: bool = True
    outlier_window: int = 7        # frames in the running median (odd)
    outlier_k: float = 5.0         # robust sigmas
    outlier_abs_m: float = 0.015   # never call a deviation below this an outlier
    smooth_half_window: int = 3    # frames each side; 0 = no smoothing
    smooth_degree: int = 2         # local polynomial degree (1 lags under acceleration)


@dataclass
class FilterStats:
    outliers_removed: int = 0
    smoothed_points: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _windows(a: np.ndarray, half: int) -> np.ndarray:
    """[T, ...] -> [T, 2*half+1, ...] centred windows, NaN-padded at both ends."""
    pad = [(half, half)] + [(0, 0)] * (a.ndim - 1)
    ap = np.pad(a, pad, constant_values=np.nan)
    w = np.lib.stride_tricks.sliding_window_view(ap, 2 * half + 1, axis=0)  # [T, ..., W]
    return np.moveaxis(w, -1, 1)


def reject_outliers(points: Float[np.ndarray, "T n 3"], visible: Bool[np.ndarray, "T n"],
                    config: FilterConfig | None = None) -> tuple[np.ndarray, int]:
    """-> (new visible [T,n], number of points newly marked invisible)."""
    cfg = config or FilterConfig()
    if cfg.outlier_window < 3 or cfg.outlier_window % 2 == 0:
        raise InvalidInput(f"outlier window must be odd and >= 3, got {cfg.outlier_window}")
    p = np.where(visible[..., None], points, np.nan)
    win = _windows(p, cfg.outlier_window // 2)  # [T, W, n, 3]
    med = nanmedian(win, axis=1)                 # [T, n, 3]
    dev = np.linalg.norm(p - med, axis=-1)       # [T, n], NaN where invisible
    sigma = 1.4826 * nanmedian(dev, axis=0)      # [n]
    thr = np.maximum(cfg.outlier_k * np.nan_to_num(sigma, nan=0.0), cfg.outlier_abs_m)
    out = visible & ~(dev > thr[None, :])
    return out, int(visible.sum() - out.sum())


def smooth_tracks(points: Float[np.ndarray, "T n 3"], visible: Bool[np.ndarray, "T n"],
                  half_window: int = 2, degree: int = 2) -> np.ndarray:
    """Local polynomial fit (``degree`` 1 or 2, tricube weights) over each track's visible points
    within +-half_window frames, evaluated at every visible frame. Where too few points are
    visible for the degree, a lower degree is used. Invisible entries are returned unchanged.
    Degree 2 has no bias under constant acceleration (a linear fit lags by ~a·k²/2 there, which
    matters when a video has few frames per motion)."""
    if half_window <= 0:
        return np.array(points, dtype=np.float64, copy=True)
    if degree not in (1, 2):
        raise InvalidInput(f"smoothing degree must be 1 or 2, got {degree}")
    p = np.where(visible[..., None], points, 0.0).astype(np.float64)
    k = np.arange(-half_window, half_window + 1, dtype=np.float64)
    kern = (1 - (np.abs(k) / (half_window + 1)) ** 3) ** 3
    vw = np.nan_to_num(_windows(visible.astype(np.float64), half_window), nan=0.0) * kern[None, :, None]  # [T,W,n]
    pw = np.nan_to_num(_windows(p, half_window), nan=0.0)                                              # [T,W,n,3]
    S = [(vw * k[None, :, None] ** j).sum(1) for j in range(2 * degree + 1)]                            # [T,n] each
    Y = [(vw[..., None] * (k[None, :, None, None] ** j) * pw).sum(1) for j in range(degree + 1)]        # [T,n,3]
    est = Y[0] / np.maximum(S[0], 1e-300)[..., None]  # degree 0: weighted mean
    nvis = (vw > 0).sum(1)
    for deg in range(1, degree + 1):
        A = np.stack([np.stack([S[i + j] for j in range(deg + 1)], -1) for i in range(deg + 1)], -2)  # [T,n,d,d]
        B = np.stack(Y[: deg + 1], -2)                                                                  # [T,n,d,3]
        det = np.linalg.det(A)
        scale = np.maximum(S[0], 1e-12) ** (deg + 1) * max(half_window, 1) ** (deg * (deg + 1))
        ok = (nvis >= deg + 2) & (np.abs(det) > 1e-9 * scale)
        if ok.any():
            sol = np.linalg.solve(A[ok], B[ok])  # [m,d,3]; row 0 = value at k = 0
            est[ok] = sol[:, 0, :]
    return np.where(visible[..., None], est, points)


def filter_flow(points: Float[np.ndarray, "T n 3"], visible: Bool[np.ndarray, "T n"],
                config: FilterConfig | None = None) -> tuple[np.ndarray, np.ndarray, FilterStats]:
    """Outlier rejection then smoothing (if ``config.enabled``) -> (points, visible, stats)."""
    cfg = config or FilterConfig()
    stats = FilterStats()
    if not cfg.enabled:
        return np.asarray(points, np.float64), np.asarray(visible, bool), stats
    vis, stats.outliers_removed = reject_outliers(points, visible, cfg)
    pts = smooth_tracks(points, vis, cfg.smooth_half_window, cfg.smooth_degree)
    stats.smoothed_points = int(vis.sum())
    return fill_invisible(pts, vis), vis, stats
