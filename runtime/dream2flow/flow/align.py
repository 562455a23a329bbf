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
    best = (-1, 0.0, 0.0)
    m = len(z)
    i = rng.integers(m, size=cfg.ransac_iters)
    j = rng.integers(m, size=cfg.ransac_iters)
    dz = z[i] - z[j]
    good = np.abs(dz) > 0.25 * (hi - lo)
    for ii, jj, dzz in zip(i[good], j[good], dz[good]):
        a = (x_rel[ii] - x_rel[jj]) / dzz
        if not a > 0:
            continue
        c = x_rel[ii] - a * z[ii]
        cnt = int(np.count_nonzero(np.abs(x_rel - a * z - c) < cfg.ransac_inlier_m * a))
        if cnt > best[0]:
            best = (cnt, a, c)
    if best[0] < 2:
        raise _failed(f"depth alignment: no positive-scale fit found over the {where} "
                      "(relative depth does not increase with D0: is it inverse depth?)", "sign")
    _, a, c = best
    inl = np.abs(x_rel - a * z - c) < cfg.ransac_inlier_m * a

    # IRLS with Huber weights on the RANSAC inliers
    zi, xi = z[inl], x_rel[inl]
    w = np.ones_like(zi)
    for _ in range(cfg.irls_iters):
        A = np.stack([zi, np.ones_like(zi)], 1) * np.sqrt(w)[:, None]
        sol, *_ = np.linalg.lstsq(A, xi * np.sqrt(w), rcond=None)
        a_new, c_new = float(sol[0]), float(sol[1])
        r = xi - a_new * zi - c_new
        sigma = 1.4826 * np.median(np.abs(r)) + 1e-12
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
        sigma = 1.4826 * np.median(np.abs(r[inl])) + 1e-12
        keep = np.abs(r) <= cfg.final_sigmas * sigma
        if keep.sum() < 2:
            break
        A = np.stack([z[keep], np.ones(int(keep.sum()))], 1)
        sol, *_ = np.linalg.lstsq(A, x_rel[keep], rcond=None)
        a, c = float(sol[0]), float(sol[1])
    if not (np.isfinite(a) and np.isfinite(c)) or a <= 0:
        raise _failed(f"depth alignment: degenerate fit over the {where} (scale {1 / a if a else float('inf'):.3g})",
                      "sign")
    s, b = 1.0 / a, -c / a
    res_all = np.abs(s * x_rel + b - z)
    sigma_m = 1.4826 * float(np.median(res_all))
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
