"""Classical dense-flow point tracker: OpenCV's DIS optical flow, frame to frame, with a
forward-backward check and a patch-appearance check giving visibility (``name = "classical_dis"``).

Why a second classical tracker: Lucas-Kanade (``classical_lk``) tracks each point's window on
its own; dense inverse-search flow (Kroeger et al., ECCV 2016) solves the whole image coarse to
fine with a smoothness prior, which can follow fast or weakly textured motion that a window
loses. Which one the runtime uses by default is decided by measurement (``bench/sim_models_bench.py
track``: the flow's 3D error and visible fraction on the simulator's videos; see the README).

Per frame t-1 -> t: forward and backward DIS flow over the whole frame; each point moves by the
forward flow at its position (bilinear); it is visible at t when the backward flow brings it back
within ``fb_max_px``, it is inside the image, and the patch around it still resembles its patch
in the last frame where it was visible (normalised cross-correlation >= ``min_ncc``; a point
dragged onto an occluder fails it). A point that fails keeps moving with the flow, invisible,
and becomes visible again when both checks pass (re-acquisition after a short occlusion).
Arrays stay full: a point is never deleted, only marked invisible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.perception.protocols import Tracks, VideoLike, video_frames

if TYPE_CHECKING:
    from jaxtyping import Float

_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


def _bilinear(field: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``field`` [H,W,C] sampled at ``p`` [n,2] (x, y), clamped to the image."""
    import cv2

    H, W = field.shape[:2]
    x = np.clip(p[:, 0], 0, W - 1).astype(np.float32)
    y = np.clip(p[:, 1], 0, H - 1).astype(np.float32)
    out = cv2.remap(field, x.reshape(-1, 1), y.reshape(-1, 1), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(len(p), -1).astype(np.float64)


@dataclass
class DISFlowTracker:
    """Dense DIS optical-flow tracker; see the module docstring."""

    name: ClassVar[str] = "classical_dis"
    preset: str = "medium"
    fb_max_px: float = 1.0
    min_ncc: float = 0.6
    ncc_patch: int = 11
    finest_scale: int | None = None  # DIS's finest pyramid level (None: the preset's)

    def __post_init__(self) -> None:
        if self.preset not in _PRESETS:
            raise InvalidInput(f"DIS tracker preset must be one of {', '.join(_PRESETS)}, got {self.preset!r}")
        if self.fb_max_px <= 0 or self.ncc_patch < 3 or not -1.0 <= self.min_ncc <= 1.0:
            raise InvalidInput("DIS tracker: need fb_max_px > 0, ncc_patch >= 3 and min_ncc in [-1, 1]")

    def _dis(self):  # noqa: ANN202
        import cv2

        dis = cv2.DISOpticalFlow_create(_PRESETS[self.preset])
        if self.finest_scale is not None:
            dis.setFinestScale(int(self.finest_scale))
        return dis

    def _patches(self, gray: np.ndarray, p: np.ndarray) -> np.ndarray:
        """[n, k*k] patches around ``p`` (bilinear, border replicated)."""
        import cv2

        k = int(self.ncc_patch) | 1
        r = k // 2
        off = np.arange(-r, r + 1, dtype=np.float32)
        xs = (p[:, 0:1].astype(np.float32) + off[None, :])[:, None, :].repeat(k, 1)
        ys = (p[:, 1:2].astype(np.float32) + off[None, :])[:, :, None].repeat(k, 2)
        out = cv2.remap(gray, xs.reshape(len(p), -1), ys.reshape(len(p), -1), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        return out.astype(np.float64)

    @staticmethod
    def _ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        return (a * b).sum(1) / np.maximum(np.sqrt((a * a).sum(1) * (b * b).sum(1)), 1e-6)

    def __call__(self, video: VideoLike, query_px: Float[np.ndarray, "n 2"]) -> Tracks:
        import cv2

        frames = video_frames(video)
        q = np.asarray(query_px, np.float64)
        if q.ndim != 2 or q.shape[1] != 2 or not np.isfinite(q).all():
            raise InvalidInput(f"query points must be a finite [n,2] array, got {list(q.shape)}")
        T, H, W = frames.shape[:3]
        n = len(q)
        tracks = np.zeros((T, n, 2), np.float64)
        vis = np.zeros((T, n), bool)
        tracks[0], vis[0] = q, True
        if n == 0:
            return Tracks(tracks.astype(np.float32), vis)
        dis = self._dis()
        grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        ref = self._patches(grays[0].astype(np.float32), q)  # each point's patch where it was last seen
        p = q.copy()
        for t in range(1, T):
            g0, g1 = grays[t - 1], grays[t]
            fwd = dis.calc(g0, g1, None)
            bwd = dis.calc(g1, g0, None)
            p1 = p + _bilinear(fwd, p)
            back = p1 + _bilinear(bwd, p1)
            fb = np.linalg.norm(back - p, axis=1)
            inside = (p1[:, 0] >= 0) & (p1[:, 0] <= W - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= H - 1)
            now = self._patches(g1.astype(np.float32), p1)
            ok = inside & (fb <= self.fb_max_px) & (self._ncc(now, ref) >= self.min_ncc)
            ref[ok] = now[ok]
            p = p1
            tracks[t], vis[t] = p1, ok
        return Tracks(tracks.astype(np.float32), vis)


__all__ = ["DISFlowTracker"]
