"""Depth alignment: the affine map ``Z = s*·Ẑ + b*`` from a video-depth model's relative depth
``Ẑ`` (unknown scale and shift) to metres, fitted between frame 0's relative depth and the
robot camera's first depth frame ``D0``.

Why it is fitted the way it is:
- Robust: relative depth has gross errors (reflections, edges, a hand); RANSAC on pixel pairs
  finds the dominant affine map, an iteratively re-weighted (Huber) least-squares refit on its
  inliers refines it, and a last least-squares pass over the pixels within 2.5 robust sigmas
  removes the pull that one-sided junk still has on a Huber fit.
- Regressed in the right direction: the fit is ``Ẑ = a·D0 + c`` (then ``s* = 1/a``,
  ``b* = -c/a``), i.e. the noisy variable is the dependent one. Regressing ``D0`` on a noisy
  ``Ẑ`` would shrink ``s*`` (errors-in-variables attenuation: with 1 % noise on an object whose
  depth spans a few cm, by tens of percent). The depth sensor is the accurate side here.
- Refused when it cannot be trusted: too few valid pixels, no depth variation (scale and shift
  are then not separable), ``s* <= 0``, a residual above ``max_residual_m`` or too few inliers
  -> ``AlignmentFailed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dream2flow.errors import AlignmentFailed, InvalidInput

if TYPE_CHECKING:
    from jaxtyping import Bool, Float


@dataclass(frozen=True)
class Alignment:
    """``Z = scale·Ẑ + shift`` (metres). ``residual_m``: RMS of |s*·Ẑ + b* − D0| over inliers;
    ``inlier_frac``: inliers / valid pixels; ``num_pixels``: valid pixels used; ``region``:
    "mask" or "image" (which pixels the fit used)."""

    scale: float
    shift: float
    residual_m: float
    inlier_frac: float
    num_pixels: int = 0
    region: str = "mask"

    def apply(self, rel: np.ndarray) -> np.ndarray:
        """Relative depth -> metres (float32); non-finite stays non-finite."""
        return (np.float32(self.scale) * np.asarray(rel, np.float32) + np.float32(self.shift)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AlignConfig:
    min_pixels: int = 100
    min_depth_range_m: float = 0.01   # p95 - p5 of D0 over the pixels used
    max_residual_m: float = 0.03
    min_inlier_frac: float = 0.5
    ransac_iters: int = 256
    ransac_inlier_m: float = 0.05     # generous: only to find the dominant map
    huber_k: float = 1.345            # in units of the robust residual sigma
    irls_iters: int = 10
    final_sigmas: float = 2.5         # last LS pass over |residual| <= this many robust sigmas
    max_samples: int = 50000
    region: str = "mask"              # "mask" (object pixels) or "image" (all valid pixels)
    fallback_to_image: bool = True    # a mask without depth variation -> retry on the whole image


def fit_scale_shift(rel: Float[np.ndarray, "H W"], depth_m: Float[np.ndarray, "H W"],
                    mask: Bool[np.ndarray, "H W"] | None = None, *, config: AlignConfig | None = None,
                    seed: int = 0) -> Alignment:
    """Fit ``depth_m ≈ s*·rel + b*`` over pixels valid in both (finite, depth > 0) and in ``mask``
    (``None`` = whole image). See the module docstring; raises ``AlignmentFailed``. When the mask
    alone has no depth variation and ``config.fallback_to_image``, the whole image is used."""
    cfg = config or AlignConfig()
    rel = np.asarray(rel, np.float64)
    d = np.asarray(depth_m, np.float64)
    if rel.shape != d.shape:
        raise InvalidInput(f"relative depth {list(rel.shape)} and D0 {list(d.shape)} differ in size")
    valid = np.isfinite(rel) & np.isfinite(d) & (d > 0)
    region = cfg.region if mask is not None else "image"
    if region not in ("mask", "image"):
        raise InvalidInput(f"alignment region must be 'mask' or 'image', got {region!r}")
    use = valid & np.asarray(mask, bool) if region == "mask" else valid
    try:
        return _fit(rel[use], d[use], cfg, seed, region)
    except AlignmentFailed as exc:
        if region == "mask" and cfg.fallback_to_image and getattr(exc, "reason", "") == "flat":
            return _fit(rel[valid], d[valid], cfg, seed, "image")
        raise


def _failed(msg: str, reason: str) -> AlignmentFailed:
    exc = AlignmentFailed(msg, stage="align")
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


def _ransac_pairs(x_rel: np.ndarray, z: np.ndarray, rng: np.random.Generator, iters: int, min_dz: float,
                  inlier_m: float) -> tuple[int, float, float]:
    """(inliers, a, c) of the best line ``x_rel = a·z + c`` (a > 0) through ``iters`` random pixel pairs
    whose depths differ by more than ``min_dz``; the first of equally good ones. All candidates are
    scored at once in blocks (same arithmetic as one at a time: 128 Python-level passes cost more
    than the counting)."""
    m = len(z)
    i = rng.integers(m, size=iters)
    j = rng.integers(m, size=iters)
    dz = z[i] - z[j]
    good = np.abs(dz) > min_dz
    ig, jg = i[good], j[good]
    a_all = (x_rel[ig] - x_rel[jg]) / dz[good]
    pos = a_all > 0
    a_all, c_all = a_all[pos], x_rel[ig[pos]] - a_all[pos] * z[ig[pos]]
    if not len(a_all):
        return -1, 0.0, 0.0
    # |x - a·z - c| < inlier_m·a per candidate, in blocks of 32, in place (the same operations in the
    # same order as the expression, without its temporaries)
    blk = min(32, len(a_all))
    buf = np.empty((blk, len(z)))
    hit = np.empty((blk, len(z)), bool)
    counts = np.empty(len(a_all), np.int64)
    for k in range(0, len(a_all), 32):
        a_k, c_k = a_all[k:k + 32, None], c_all[k:k + 32, None]
        b, h = buf[:len(a_k)], hit[:len(a_k)]
        np.multiply(a_k, z[None, :], out=b)
        np.subtract(x_rel[None, :], b, out=b)
        np.subtract(b, c_k, out=b)
        np.abs(b, out=b)
        np.less(b, inlier_m * a_k, out=h)
        counts[k:k + len(a_k)] = np.count_nonzero(h, axis=1)
    kb = int(np.argmax(counts))
    return int(counts[kb]), float(a_all[kb]), float(c_all[kb])


def _median(a: np.ndarray) -> np.float64:
    """``np.median`` of a 1-D float array, the same number (the same order statistics from a partition,
    their mean as ``np.mean`` takes it) without its generic-axis overhead: the per-frame alignment
    takes ~700 medians of a few thousand values per video (issue 21)."""
    n = a.size
    if n == 0:
        return np.median(a)
    h = n // 2
    part = np.partition(a, (h - 1, h, n - 1) if n % 2 == 0 else (h, n - 1))
    if np.isnan(part[-1]):  # NaN sorts last; np.median returns NaN then
        return np.float64(np.nan)
    return part[h] if n % 2 else (part[h - 1] + part[h]) / 2


def _line_fit(z: np.ndarray, x: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """(a, c) minimising sum w·(x − a·z − c)² (w = 1 if None), in closed form about the weighted
    means (stable, and ~20x cheaper than a general least-squares call: the per-frame alignment makes
    hundreds); a general solve where z does not vary."""
    w = np.ones_like(z) if w is None else w
    sw = float(w.sum())
    zm, xm = float(w @ z) / sw, float(w @ x) / sw
    dz = z - zm
    den = float(w @ (dz * dz))
    if not den > 0:
        sol, *_ = np.linalg.lstsq(np.stack([z, np.ones_like(z)], 1) * np.sqrt(w)[:, None], x * np.sqrt(w), rcond=None)
        return float(sol[0]), float(sol[1])
    a = float(w @ (dz * (x - xm))) / den
    return a, xm - a * zm


def _fit(x_rel: np.ndarray, z: np.ndarray, cfg: AlignConfig, seed: int, region: str) -> Alignment:
    n_valid = len(z)
    where = "object mask" if region == "mask" else "image"
    if n_valid < cfg.min_pixels:
        raise _failed(f"depth alignment: only {n_valid} pixels of the {where} have valid depth in both D0 and "
                      f"the video depth (need {cfg.min_pixels})", "few")
    rng = np.random.default_rng(seed)
    if n_valid > cfg.max_samples:
        idx = np.sort(rng.choice(n_valid, cfg.max_samples, replace=False))
        x_rel, z = x_rel[idx], z[idx]
    lo, hi = np.percentile(z, [5, 95])
    if hi - lo < cfg.min_depth_range_m:
        raise _failed(f"depth alignment: D0 varies by only {1000 * (hi - lo):.1f} mm over the {where} "
                      f"(need {1000 * cfg.min_depth_range_m:.0f} mm) so scale and shift cannot be separated", "flat")
    rlo, rhi = np.percentile(x_rel, [5, 95])
    if not rhi - rlo > 0:
        raise _failed(f"depth alignment: the video depth is constant over the {where}", "flat")

    # RANSAC on pairs: Ẑ = a·Z + c, residual in metres = (Ẑ − a·Z − c)/a
    best = _ransac_pairs(x_rel, z, rng, cfg.ransac_iters, 0.25 * (hi - lo), cfg.ransac_inlier_m)
    if best[0] < 2:
        raise _failed(f"depth alignment: no positive-scale fit found over the {where} "
                      "(relative depth does not increase with D0: is it inverse depth?)", "sign")
    _, a, c = best
    inl = np.abs(x_rel - a * z - c) < cfg.ransac_inlier_m * a

    # IRLS with Huber weights on the RANSAC inliers
    zi, xi = z[inl], x_rel[inl]
    w = np.ones_like(zi)
    for _ in range(cfg.irls_iters):
        a_new, c_new = _line_fit(zi, xi, w)
        r = xi - a_new * zi - c_new
        sigma = 1.4826 * _median(np.abs(r)) + 1e-12
        u = np.abs(r) / (cfg.huber_k * sigma)
        w = np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12))
        done = abs(a_new - a) <= 1e-9 * abs(a) and abs(c_new - c) <= 1e-9 * (abs(c) + 1e-12)
        a, c = a_new, c_new
        if done:
            break
    # Huber still gives gross outliers (weight ~ 1/|r|) a pull; one-sided junk shifts the fit.
    # A last least-squares pass over the pixels within ``final_sigmas`` robust sigmas removes it.
    for _ in range(3):
        r = x_rel - a * z - c
        sigma = 1.4826 * _median(np.abs(r[inl])) + 1e-12
        keep = np.abs(r) <= cfg.final_sigmas * sigma
        if keep.sum() < 2:
            break
        a, c = _line_fit(z[keep], x_rel[keep])
    if not (np.isfinite(a) and np.isfinite(c)) or a <= 0:
        raise _failed(f"depth alignment: degenerate fit over the {where} (scale {1 / a if a else float('inf'):.3g})",
                      "sign")
    s, b = 1.0 / a, -c / a
    res_all = np.abs(s * x_rel + b - z)
    sigma_m = 1.4826 * float(_median(res_all))
    inliers = res_all <= max(3.0 * sigma_m, 1e-4)
    residual = float(np.sqrt(np.mean(res_all[inliers] ** 2))) if inliers.any() else float("inf")
    frac = float(inliers.mean())
    if residual > cfg.max_residual_m:
        raise _failed(f"depth alignment residual {1000 * residual:.1f} mm exceeds {1000 * cfg.max_residual_m:.0f} mm "
                      f"(s*={s:.4g}, b*={b:.4g} m over the {where}): video depth and D0 disagree", "residual")
    if frac < cfg.min_inlier_frac:
        raise _failed(f"depth alignment: only {100 * frac:.0f}% of the {where}'s pixels agree with the fit "
                      f"(need {100 * cfg.min_inlier_frac:.0f}%)", "inliers")
    return Alignment(scale=float(s), shift=float(b), residual_m=residual, inlier_frac=frac,
                     num_pixels=int(n_valid), region=region)


# ---- per-frame alignment on the static scene -------------------------------------------------

@dataclass(frozen=True)
class FrameAlignConfig:
    """Per-frame refit of a drifting video depth on the scene that does not move (see
    ``fit_static_per_frame``). ``object_margin_px``: how far around the object's frame-0 mask and
    its tracked region (convex hull of the visible tracks) pixels count as possibly moving;
    ``grid_px``: pixels are taken on this grid (the fit needs thousands, not 300k);
    ``agree_sigmas``: frame-0 pixels farther than this many robust sigmas from the frame-0 static
    fit are left out of every frame (where the video and D0 disagree anyway: the robot, which D0
    shows and a generated video does not, or the model's persistent mistakes)."""

    enabled: bool = True
    object_fit: str = "shift"  # "shift": the object keeps the static frame-0 scale, its shift fitted on the
    #                            mask (fit_shift_on_mask); "scale_shift": scale and shift fitted on the mask
    object_margin_px: int = 12
    grid_px: int = 3
    agree_sigmas: float = 3.0
    min_pixels: int = 300
    align: AlignConfig = AlignConfig(region="mask", fallback_to_image=False, max_samples=6000, ransac_iters=128,
                                     max_residual_m=0.06, min_inlier_frac=0.3, min_depth_range_m=0.02)


@dataclass(frozen=True)
class FrameAlignment:
    """Per frame t: ``gain[t]``, ``offset[t]`` map the frame's relative depth into frame 0's relative
    scale (``rel0_equiv = gain·rel_t + offset``; frame 0 is the identity), from robust fits
    ``D0 ≈ s_t·rel_t + b_t`` on the static scene: gain = s_t/s_0, offset = (b_t − b_0)/s_0.
    ``residual_m[t]``: RMS of the static fit's inliers (m); ``num_pixels[t]``; ``ok[t]``: False
    where the fit failed and the frame was left as it was (identity)."""

    gain: np.ndarray
    offset: np.ndarray
    residual_m: np.ndarray
    num_pixels: np.ndarray
    ok: np.ndarray
    scale0: float = 1.0
    shift0: float = 0.0

    def apply(self, rel: np.ndarray) -> np.ndarray:
        """[T,H,W] relative depth -> the same in frame 0's relative scale (float32)."""
        g = self.gain.astype(np.float32)[:, None, None]
        o = self.offset.astype(np.float32)[:, None, None]
        return (np.asarray(rel, np.float32) * g + o).astype(np.float32)

    def view(self, rel: np.ndarray) -> "FrameMappedDepth":
        """``apply`` computed only where read: lifting samples a few crops per frame, not 15 M pixels."""
        return FrameMappedDepth(np.asarray(rel, np.float32), self.gain.astype(np.float32),
                                self.offset.astype(np.float32))

    def to_dict(self) -> dict[str, Any]:
        r = lambda a, k=6: [round(float(v), k) for v in a]  # noqa: E731
        return {"gain": r(self.gain), "offset": r(self.offset), "residual_m": r(self.residual_m),
                "num_pixels": [int(v) for v in self.num_pixels], "ok": [bool(v) for v in self.ok],
                "static_scale0": float(self.scale0), "static_shift0": float(self.shift0),
                "frames_refit": int(self.ok[1:].sum()) if len(self.ok) > 1 else 0,
                "max_gain_change": float(np.max(np.abs(self.gain - 1.0))) if len(self.gain) else 0.0}


class FrameMappedDepth:
    """``FrameAlignment.apply(rel)`` evaluated lazily: ``view[t]`` / ``view[t, ys, xs]`` give exactly the
    values (same float32 arithmetic) of the mapped array at those indices; ``shape``/``ndim`` as it."""

    def __init__(self, rel: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> None:
        self._rel, self._g, self._o = rel, gain, offset
        self.shape, self.ndim, self.dtype = rel.shape, rel.ndim, np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        t, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if not isinstance(t, (int, np.integer)):
            raise TypeError("FrameMappedDepth is indexed by one frame first (view[t, ...])")
        return (self._rel[(t, *rest)] * self._g[t] + self._o[t]).astype(np.float32)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = (self._rel * self._g[:, None, None] + self._o[:, None, None]).astype(np.float32)
        return out if dtype is None else out.astype(dtype)


def moving_region(mask0: np.ndarray, tracks_px: np.ndarray, visible: np.ndarray, t: int, margin_px: int) -> np.ndarray:
    """[H,W] bool: where the object may be at frame t or was at frame 0 -- its frame-0 mask and the
    convex hull of its visible tracks at t (all its tracks' last estimates when fewer than 3 are
    visible), grown by ``margin_px``."""
    return _moving_region_at(mask0, tracks_px[t], visible[t], margin_px)


def _moving_region_at(mask0: np.ndarray, tracks_t: np.ndarray, visible_t: np.ndarray, margin_px: int) -> np.ndarray:
    """``moving_region`` from one frame's tracks [n,2] and visibility [n]."""
    import cv2

    H, W = mask0.shape
    reg = mask0.astype(np.uint8).copy()
    pts = tracks_t[visible_t] if visible_t.sum() >= 3 else tracks_t
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) >= 3:
        hull = cv2.convexHull(np.round(pts).astype(np.int32).reshape(-1, 1, 2))
        cv2.fillConvexPoly(reg, hull, 1)
    k = 2 * int(margin_px) + 1
    out = np.zeros((H, W), bool)
    rows, cols = np.flatnonzero(reg.any(1)), np.flatnonzero(reg.any(0))
    if not len(rows):
        return out
    # dilated on the region's bounding box grown by the margin: everything outside it is 0 and stays
    # 0, and dilation ignores the crop's border, so the result is the full-frame dilation's
    m = int(margin_px)
    y0, y1 = max(0, rows[0] - m), min(H, rows[-1] + m + 1)
    x0, x1 = max(0, cols[0] - m), min(W, cols[-1] + m + 1)
    out[y0:y1, x0:x1] = cv2.dilate(np.ascontiguousarray(reg[y0:y1, x0:x1]),
                                   cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    return out


def _hull_dilated(tracks_t: np.ndarray, visible_t: np.ndarray, H: int, W: int, margin_px: int
                  ) -> tuple[int, int, np.ndarray] | None:
    """The convex hull of one frame's tracks (as ``moving_region`` draws it) grown by ``margin_px``, on
    its own bounding box: (y0, x0, crop [h,w] bool), or None without a hull. Drawn and dilated on the
    crop (integer offsets: the same pixels as on the full frame, which clips the same)."""
    import cv2

    pts = tracks_t[visible_t] if visible_t.sum() >= 3 else tracks_t
    pts = pts[np.isfinite(pts).all(1)]
    if len(pts) < 3:
        return None
    hull = cv2.convexHull(np.round(pts).astype(np.int32).reshape(-1, 1, 2))
    m = int(margin_px)
    lo, hi = hull.reshape(-1, 2).min(0), hull.reshape(-1, 2).max(0)
    x0, y0 = max(0, int(lo[0]) - m), max(0, int(lo[1]) - m)
    x1, y1 = min(W, int(hi[0]) + m + 1), min(H, int(hi[1]) + m + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    reg = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(reg, hull - np.array([x0, y0], np.int32), 1)
    k = 2 * m + 1
    return y0, x0, cv2.dilate(reg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


class _StaticPixels:
    """``np.flatnonzero(agree & ~moving_region(mask0, tracks, visible, t, margin))`` frame after frame
    without whole-frame passes: the moving region is the dilation of the frame-0 mask (the same every
    frame, done once) united with the dilation of frame t's track hull (dilation distributes over a
    union), so each frame only drops the candidates that its hull's dilated box covers (issue 21)."""

    def __init__(self, agree: np.ndarray, mask0: np.ndarray, margin_px: int) -> None:
        H, W = agree.shape
        self.H, self.W, self.margin = H, W, int(margin_px)
        dil0 = _moving_region_at(mask0, np.zeros((0, 2), np.float32), np.zeros(0, bool), margin_px)
        self.idx = np.flatnonzero(agree & ~dil0)
        self.rows, self.cols = np.divmod(self.idx, W)

    def at(self, tracks_t: np.ndarray, visible_t: np.ndarray) -> np.ndarray:
        hd = _hull_dilated(tracks_t, visible_t, self.H, self.W, self.margin)
        if hd is None:
            return self.idx
        y0, x0, crop = hd
        h, w = crop.shape
        r, c = self.rows - y0, self.cols - x0
        box = np.flatnonzero((r >= 0) & (r < h) & (c >= 0) & (c < w))
        keep = np.ones(len(self.idx), bool)
        keep[box[crop[r[box], c[box]]]] = False
        return self.idx[keep]


class StaticSceneFitter:
    """``fit_static_per_frame`` one frame at a time: frame 0's static fit on construction (from the
    query points and their visibility), then ``fit_frame(t, ...)`` once frame t's tracks are final
    (any order: the flow stage runs it on a worker while the tracker goes on, issue 21), then
    ``result()``. A frame's fit depends only on frame 0's, its own tracks and ``seed + t``: the same
    numbers as fitting the frames in a row."""

    def __init__(self, rel: np.ndarray, depth_m: np.ndarray, mask0: np.ndarray, tracks0: np.ndarray,
                 visible0: np.ndarray, *, config: FrameAlignConfig | None = None, seed: int = 0) -> None:
        cfg = config or FrameAlignConfig()
        self.cfg, self.seed, self.rel, self.depth_m = cfg, int(seed), rel, depth_m
        T = rel.shape[0]
        H, W = depth_m.shape
        self.shape = (H, W)
        grid = np.zeros((H, W), bool)
        grid[:: cfg.grid_px, :: cfg.grid_px] = True
        d0 = np.asarray(depth_m, np.float64)
        base = grid & np.isfinite(d0) & (d0 > 0)
        self.gain, self.offset = np.ones(T), np.zeros(T)
        self.resid, self.npx, self.ok = np.full(T, np.nan), np.zeros(T, np.int64), np.zeros(T, bool)
        self.ok[0] = True
        self.a0: Alignment | None = None
        try:
            use0 = base & ~_moving_region_at(mask0, tracks0, visible0, cfg.object_margin_px)
            a0 = fit_scale_shift(rel[0], depth_m, use0, config=cfg.align, seed=seed)
        except AlignmentFailed:
            return
        r0 = np.abs(a0.scale * rel[0].astype(np.float64) + a0.shift - d0)
        sigma = max(1.4826 * float(np.median(r0[use0 & np.isfinite(r0)])), 1e-4)
        agree = base & np.isfinite(r0) & (r0 <= cfg.agree_sigmas * sigma)
        self.resid[0], self.npx[0] = a0.residual_m, int(use0.sum())
        self.direct = cfg.align.region == "mask" and not cfg.align.fallback_to_image
        self.d0_flat = d0.reshape(-1)
        self.static = _StaticPixels(agree, mask0, cfg.object_margin_px)
        self.a0 = a0

    def fit_frame(self, t: int, tracks_t: np.ndarray, visible_t: np.ndarray) -> None:
        """Frame ``t`` (>= 1) from its tracks [n,2] (float32, as the flow stage keeps them) and visibility
        [n]; a frame whose fit fails stays the identity (``ok[t]`` False)."""
        cfg, a0 = self.cfg, self.a0
        if a0 is None or t == 0:
            return
        idx = self.static.at(tracks_t, visible_t)  # = flatnonzero(agree & ~moving_region(..., t, ...))
        self.npx[t] = len(idx)
        if self.npx[t] < cfg.min_pixels:
            return
        try:
            if self.direct:  # what fit_scale_shift fits, gathered on the grid's pixels only (not whole frames)
                x = np.asarray(self.rel[t]).reshape(-1)[idx].astype(np.float64)
                fin = np.isfinite(x)
                a = _fit(x[fin], self.d0_flat[idx][fin], cfg.align, self.seed + t, "mask")
            else:
                use = np.zeros(self.shape[0] * self.shape[1], bool)
                use[idx] = True
                a = fit_scale_shift(self.rel[t], self.depth_m, use.reshape(self.shape), config=cfg.align,
                                    seed=self.seed + t)
        except AlignmentFailed:
            return
        self.gain[t], self.offset[t] = a.scale / a0.scale, (a.shift - a0.shift) / a0.scale
        self.resid[t], self.ok[t] = a.residual_m, True

    def result(self) -> FrameAlignment:
        if self.a0 is None:  # no static fit at frame 0: every frame as it was
            T = len(self.gain)
            return FrameAlignment(np.ones(T), np.zeros(T), np.full(T, np.nan), np.zeros(T, np.int64),
                                  np.eye(1, T, dtype=bool)[0])
        return FrameAlignment(self.gain, self.offset, self.resid, self.npx, self.ok, scale0=self.a0.scale,
                              shift0=self.a0.shift)


def fit_static_per_frame(rel: np.ndarray, depth_m: np.ndarray, mask0: np.ndarray, tracks_px: np.ndarray,
                         visible: np.ndarray, *, config: FrameAlignConfig | None = None, seed: int = 0) -> FrameAlignment:
    """Refit the video depth frame by frame on the static scene (the camera is static, so pixels
    the object never covers keep D0's depth): ``D0 ≈ s_t·rel_t + b_t`` robustly (``fit_scale_shift``)
    over D0-valid pixels outside ``moving_region`` that agree at frame 0; returns the per-frame
    map into frame 0's relative scale, so the object keeps its own frame-0 fit (s*, b*) and only
    the model's frame-to-frame drift is removed. (``StaticSceneFitter`` frame by frame.)"""
    rel = np.asarray(rel)
    fitter = StaticSceneFitter(rel, depth_m, mask0, tracks_px[0], visible[0], config=config, seed=seed)
    for t in range(1, rel.shape[0]):
        fitter.fit_frame(t, tracks_px[t], visible[t])
    return fitter.result()


def fit_shift_on_mask(rel: np.ndarray, depth_m: np.ndarray, mask: np.ndarray, scale: float, *,
                      config: AlignConfig | None = None) -> Alignment:
    """``depth_m ≈ scale·rel + b*`` over the mask with ``scale`` given (the static scene's frame-0 scale):
    b* = the median of ``depth_m − scale·rel`` over valid mask pixels, refined as the mean over those
    within 2.5 robust sigmas. ``AlignmentFailed`` for too few pixels or a residual above
    ``config.max_residual_m``."""
    cfg = config or AlignConfig()
    rel = np.asarray(rel, np.float64)
    d = np.asarray(depth_m, np.float64)
    use = np.isfinite(rel) & np.isfinite(d) & (d > 0) & np.asarray(mask, bool)
    n = int(use.sum())
    if n < cfg.min_pixels:
        raise _failed(f"depth alignment: only {n} pixels of the object mask have valid depth in both D0 and "
                      f"the video depth (need {cfg.min_pixels})", "few")
    if not (np.isfinite(scale) and scale > 0):
        raise _failed(f"depth alignment: degenerate static-scene scale {scale}", "degenerate")
    r = d[use] - scale * rel[use]
    b = float(np.median(r))
    sigma = max(1.4826 * float(np.median(np.abs(r - b))), 1e-4)
    keep = np.abs(r - b) <= cfg.final_sigmas * sigma
    b = float(np.mean(r[keep]))
    residual = float(np.sqrt(np.mean((r[keep] - b) ** 2)))
    frac = float(keep.mean())
    if residual > cfg.max_residual_m or frac < cfg.min_inlier_frac:
        raise _failed(f"depth alignment: residual {1000 * residual:.1f} mm over the object with the static scale "
                      f"(max {1000 * cfg.max_residual_m:.0f} mm), inliers {100 * frac:.0f}%", "residual")
    return Alignment(scale=float(scale), shift=b, residual_m=residual, inlier_frac=frac, num_pixels=n,
                     region="mask_shift")
