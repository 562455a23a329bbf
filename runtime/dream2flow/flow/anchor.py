"""Per-track depth anchoring: each track's frame-0 depth is the measured one (D0).

The video frame 0 is I0, and each track starts at a query pixel of I0, where the robot camera
measured the depth (D0). The video-depth model's frame-0 depth there, even after the flow stage's
affine fit to D0, is off by a per-point error (the model's view of the object's shape: measured
5-10 mm median on the sim-trained model, bench/results/sim_models.md) that stays with the point as
it moves -- it is a property of the surface the track follows, not of the frame. So every track's
depth is shifted by one constant, ``D0(q_i) − z_i(0)``, in all frames: frame 0 becomes exactly
the measured point and the model only supplies each track's depth *change*.

Per track, along its own camera ray (the pixel is the tracker's, only the depth changes), no
assumption about the object's shape or rigidity. A track whose offset is larger than
``max_offset_m`` is left as it was (D0 or the model is wrong there: a rim pixel, a hole in D0).
An offset read in frame 0 also carries frame 0's noise, which would then be added to every frame:
the offsets' spread about their median is shrunk by the video depth's own per-frame noise, measured
from the tracks' second differences over time (``_shrinkage``). The simulator's relative depth (1 %
independent noise per pixel and frame, nothing persistent) is thereby left as it was (flows within
+-0.06 mm); the sim-trained model's persistent error is kept (shrink 0.6-0.95). Measured on held-out
scenes in ``bench/results/sim_models.md`` (issue 14: median error 1-2 mm lower per task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.flow.lift import LiftConfig, fill_invisible, sample_depth
from dream2flow.types import CameraModel

if TYPE_CHECKING:
    from jaxtyping import Bool, Float


@dataclass(frozen=True)
class AnchorConfig:
    enabled: bool = True
    max_offset_m: float = 0.03  # |D0 - the flow's frame-0 depth| above this: the track is not anchored
    noise_factor: float = 2.0   # offsets' variance beyond noise_factor x the per-frame noise's counts as persistent


def anchor_to_d0(points_base: Float[np.ndarray, "T n 3"], visible: Bool[np.ndarray, "T n"],
                 query_px: Float[np.ndarray, "n 2"], depth_m: Float[np.ndarray, "H W"], camera: CameraModel,
                 config: AnchorConfig | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """-> (points_base [T,n,3] float64 with each anchored track's depth shifted by its frame-0 offset
    to D0, stats for the flow's meta). Tracks not visible in frame 0 or without a usable D0 at their
    query pixel (``lift.sample_depth``'s checks) are unchanged; ``visible`` is not changed."""
    cfg = config or AnchorConfig()
    P = np.asarray(points_base, np.float64)
    vis = np.asarray(visible, bool)
    q = np.asarray(query_px, np.float64)
    T, n = vis.shape
    if P.shape != (T, n, 3) or q.shape != (n, 2):
        raise InvalidInput(f"anchoring needs points [T,n,3], visible [T,n], query [n,2]; got {list(P.shape)}, "
                           f"{list(vis.shape)}, {list(q.shape)}")
    if not cfg.max_offset_m > 0:
        raise InvalidInput(f"anchoring's max offset must be positive, got {cfg.max_offset_m}")
    if not cfg.noise_factor >= 0:
        raise InvalidInput(f"anchoring's noise factor must be >= 0, got {cfg.noise_factor}")
    z_d0, ok = sample_depth(np.asarray(depth_m, np.float32), q, LiftConfig())
    T_cb = camera.T_cam_base
    pc = P @ T_cb[:3, :3].T + T_cb[:3, 3]                      # camera frame [T,n,3]
    z0 = pc[0, :, 2]
    off = np.where(ok & vis[0] & np.isfinite(z0), z_d0 - z0, np.nan)
    use = np.isfinite(off) & (np.abs(off) <= cfg.max_offset_m)
    z = pc[..., 2]
    shrink, noise_m, spread_m = _shrinkage(off, use, z, vis, cfg.noise_factor)
    if use.any():
        med = float(np.median(off[use]))
        off = np.where(use, med + shrink * (off - med), off)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(use[None, :] & (z > 0), (z + np.where(use, off, 0.0)[None, :]) / z, 1.0)
    pc = pc * f[..., None]
    out = pc @ camera.T_base_cam[:3, :3].T + camera.T_base_cam[:3, 3]
    out = np.where(np.isfinite(P), out, P)
    a = np.abs(off[use])
    stats = {"enabled": True, "anchored": int(use.sum()), "candidates": int(np.isfinite(off).sum()),
             "shrink": round(shrink, 4), "frame_noise_m": round(noise_m, 6), "offset_spread_m": round(spread_m, 6),
             "median_abs_offset_m": round(float(np.median(a)), 6) if a.size else None,
             "p90_abs_offset_m": round(float(np.percentile(a, 90)), 6) if a.size else None,
             "median_offset_m": round(float(np.median(off[use])), 6) if a.size else None}
    return fill_invisible(np.where(vis[..., None], out, np.nan), vis), stats


def _shrinkage(off: np.ndarray, use: np.ndarray, z: np.ndarray, vis: np.ndarray, noise_factor: float = 2.0
               ) -> tuple[float, float, float]:
    """(w, sigma_noise m, sigma_offsets m): how much of the offsets' spread about their median is the
    video depth's persistent error rather than frame-0 noise. The per-frame noise of a track's depth is
    measured from its second difference over time (white noise: var = 1.5 sigma^2; smooth motion adds
    little at video rates), robustly over all tracks; an offset carries that noise and would add it to
    every frame, so the spread is shrunk by w = max(0, var_o - k sigma^2) / var_o (empirical Bayes;
    k = 1 is the least-squares choice for an error that truly sticks to the surface). k = 2 by default:
    with k = 1 the simulator's relative depth (1 % independent noise per pixel and frame, nothing
    persistent) kept w ~ 0.1-0.4 and its flows lost 0.05-0.15 mm (the median filter's own structure
    does not follow a turning surface); with k = 2 they are unchanged (w = 0) and the sim-trained
    model's persistent error still gets w ~ 0.6-0.95 (bench/results/sim_models.md)."""
    if use.sum() < 8 or z.shape[0] < 3:
        return 0.0, float("nan"), float("nan")
    v3 = vis[:-2] & vis[1:-1] & vis[2:]
    d2 = (z[1:-1] - 0.5 * (z[:-2] + z[2:]))[v3]
    d2 = d2[np.isfinite(d2)]
    if d2.size < 20:
        return 0.0, float("nan"), float("nan")
    noise = 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / np.sqrt(1.5)
    o = off[use]
    spread = 1.4826 * float(np.median(np.abs(o - np.median(o))))
    if not spread > 0:
        return 0.0, noise, spread
    return float(max(0.0, spread ** 2 - noise_factor * noise ** 2) / spread ** 2), noise, spread
