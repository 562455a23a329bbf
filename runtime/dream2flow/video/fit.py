"""Fit a video of another size onto the camera's pixel grid, never stretching it.

Why: a video generator may return 16:9 for a 4:3 camera. Stretching it to the camera's size
would bend every ray the flow is lifted along. The caller says what the video shows:

- ``crop``: the video shows *more* than the camera (e.g. the generator outpainted a padded I0):
  scale it uniformly until it covers the camera's frame, keep the centre.
- ``letterbox``: the video shows the *centre* of the camera's view (e.g. the generator was given
  a centre crop of I0): scale it uniformly until it fits, pad the rest (those pixels are
  invalid: ``Fit.valid_mask``).

Same aspect (within 1 %) is a plain uniform resize, whatever the mode. Either way the result is
one affine map ``A_cam_video`` (pixel centres, ``u_cam = sx·u_vid + ox``): the fitted frames are
in the camera's grid, so the camera's ``K`` applies to them, and the original video's own
intrinsics are ``K_video = A_cam_video⁻¹ · K`` (recorded in the flow's meta).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput

FIT_MODES = ("crop", "letterbox")
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Fit:
    """How video pixels map into the camera's grid. ``mode``: ``none`` (same size), ``resize``
    (same aspect), ``crop`` or ``letterbox``. ``scaled_wh``: the video's size after its uniform
    scale; ``offset_px``: where that scaled video's top-left corner lands in the camera frame
    (integers; negative = cropped, positive = padded)."""

    mode: str
    src_wh: tuple[int, int]
    dst_wh: tuple[int, int]
    scaled_wh: tuple[int, int]
    offset_px: tuple[int, int]

    @property
    def identity(self) -> bool:
        return self.mode == "none"

    @property
    def scale_xy(self) -> tuple[float, float]:
        return self.scaled_wh[0] / self.src_wh[0], self.scaled_wh[1] / self.src_wh[1]

    @property
    def A_cam_video(self) -> np.ndarray:
        """3x3: homogeneous video pixel (centre convention) -> camera pixel."""
        sx, sy = self.scale_xy
        ox = self.offset_px[0] + 0.5 * (sx - 1.0)
        oy = self.offset_px[1] + 0.5 * (sy - 1.0)
        return np.array([[sx, 0.0, ox], [0.0, sy, oy], [0.0, 0.0, 1.0]])

    def K_video(self, K: np.ndarray) -> np.ndarray:
        """The intrinsics of the original video's pixels, consistent with ``K`` of the camera."""
        return np.linalg.inv(self.A_cam_video) @ np.asarray(K, np.float64)

    def valid_rect(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the camera pixels that show video content (x1/y1 exclusive)."""
        W, H = self.dst_wh
        ox, oy = self.offset_px
        sw, sh = self.scaled_wh
        return max(0, ox), max(0, oy), min(W, ox + sw), min(H, oy + sh)

    def valid_mask(self) -> np.ndarray:
        W, H = self.dst_wh
        m = np.zeros((H, W), bool)
        x0, y0, x1, y1 = self.valid_rect()
        m[y0:y1, x0:x1] = True
        return m

    def _place(self, scaled: np.ndarray, fill: Any) -> np.ndarray:
        W, H = self.dst_wh
        out = np.full((H, W) + scaled.shape[2:], fill, dtype=scaled.dtype)
        x0, y0, x1, y1 = self.valid_rect()
        ox, oy = self.offset_px
        out[y0:y1, x0:x1] = scaled[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        return out

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """One image [h,w,(c)] of the video's size -> the camera's grid (padding is black)."""
        import cv2

        if self.identity:
            return frame
        if (frame.shape[1], frame.shape[0]) != self.src_wh:
            raise InvalidInput(f"frame is {frame.shape[1]}x{frame.shape[0]}, the fit expects {self.src_wh[0]}x{self.src_wh[1]}")
        interp = cv2.INTER_AREA if self.scaled_wh[0] < self.src_wh[0] else cv2.INTER_LINEAR
        scaled = cv2.resize(frame, self.scaled_wh, interpolation=interp)
        return self._place(scaled, 0)

    def apply_depth(self, depth: np.ndarray) -> np.ndarray:
        """Relative depth [T,h,w] at the video's size (or any size of its aspect) -> the camera's
        grid; padding and pixels whose interpolation touched an invalid one are NaN."""
        import cv2

        d = np.asarray(depth, np.float32)
        if d.ndim != 3:
            raise InvalidInput(f"video depth must be [T,H,W], got {list(d.shape)}")
        h, w = d.shape[1:]
        if (w, h) == self.dst_wh and self.identity:
            return d
        sw, sh = self.src_wh
        if abs((w / h) / (sw / sh) - 1.0) > ASPECT_TOLERANCE:
            raise InvalidInput(f"video depth is {w}x{h} but the video is {sw}x{sh} (another aspect ratio)")
        out = np.empty((d.shape[0], self.dst_wh[1], self.dst_wh[0]), np.float32)
        for t in range(d.shape[0]):
            bad = ~np.isfinite(d[t])
            src = np.where(bad, 0.0, d[t]).astype(np.float32)
            scaled = cv2.resize(src, self.scaled_wh, interpolation=cv2.INTER_LINEAR)
            if bad.any():
                badr = cv2.resize(bad.astype(np.float32), self.scaled_wh, interpolation=cv2.INTER_LINEAR) > 0
                scaled[badr] = np.nan
            out[t] = self._place(scaled, np.nan)
        return out

    def to_dict(self, K: np.ndarray | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"mode": self.mode, "video_size": list(self.src_wh), "camera_size": list(self.dst_wh),
                             "scaled_size": list(self.scaled_wh), "offset_px": list(self.offset_px),
                             "A_cam_video": self.A_cam_video.round(9).tolist()}
        if K is not None:
            d["K_video"] = self.K_video(K).round(6).tolist()
        return d


def plan_fit(src_wh: tuple[int, int], dst_wh: tuple[int, int], mode: str | None = None, *,
             aspect_tolerance: float = ASPECT_TOLERANCE, what: str = "video") -> Fit:
    """How to bring a ``src_wh`` video onto a ``dst_wh`` camera. Another aspect ratio needs
    ``mode`` (``crop`` | ``letterbox``); without it the video is refused (``InvalidInput``)."""
    sw, sh = int(src_wh[0]), int(src_wh[1])
    W, H = int(dst_wh[0]), int(dst_wh[1])
    if min(sw, sh, W, H) <= 0:
        raise InvalidInput(f"sizes must be positive, got {what} {sw}x{sh} and camera {W}x{H}")
    if mode is not None and mode not in FIT_MODES:
        raise InvalidInput(f"fit must be one of {', '.join(FIT_MODES)}, got {mode!r}")
    if (sw, sh) == (W, H):
        return Fit("none", (sw, sh), (W, H), (sw, sh), (0, 0))
    a_src, a_dst = sw / sh, W / H
    if abs(a_src / a_dst - 1.0) <= aspect_tolerance:
        return Fit("resize", (sw, sh), (W, H), (W, H), (0, 0))
    if mode is None:
        raise InvalidInput(f"{what} is {sw}x{sh} (aspect {a_src:.3f}) but the camera is {W}x{H} (aspect {a_dst:.3f}); "
                           "refusing to stretch it: pass --fit crop (the video shows more than the camera; keep its "
                           "centre) or --fit letterbox (the video shows the centre of the camera's view)")
    s = max(W / sw, H / sh) if mode == "crop" else min(W / sw, H / sh)
    # the axis that must match the camera exactly does; the other is rounded to whole pixels
    scaled = (W if abs(s * sw - W) < 0.5 else int(round(s * sw)), H if abs(s * sh - H) < 0.5 else int(round(s * sh)))
    offset = ((W - scaled[0]) // 2, (H - scaled[1]) // 2)
    return Fit(mode, (sw, sh), (W, H), scaled, offset)


__all__ = ["Fit", "FIT_MODES", "plan_fit"]
