"""Does the video start at I0? Frame 0 must show the robot camera's scene, from the same place.

Why: the flow stage segments the object in I0 and tracks those pixels through the video, and
lifts them with D0 and the camera's calibration. A video from another scene, or from a camera
that is off by tens of pixels, would still give a flow, and a confident-looking wrong motion.

How (deterministic, a few ms at 640x480): both images to grey, downscaled to at most
``work_width`` px wide and band-passed (difference of Gaussians, sigma 1 and 3 px there: the
scene's edges and textures; the large-scale layout of two different table-top scenes is alike,
their textures are not); the translation between them by phase correlation (a Hann window,
sub-pixel); then the zero-normalised cross-correlation (ZNCC, in [-1, 1]: invariant to a
brightness/contrast change such as a generator's colour drift) of the overlapping parts after
undoing that translation. Refused (``InvalidInput``, one line) when the similarity is below
``min_similarity`` (another scene) or the shift is beyond ``max_shift_frac`` of the image
diagonal (a moved camera). Thresholds and their evidence: ``bench/first_frame_bench.py`` and the
README ("Checks on the video").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput

MIN_SIMILARITY = 0.55  # measured: same scene >= 0.82 (codec + blur/noise/...), another scene <= 0.32
MAX_SHIFT_FRAC = 0.0125  # of the image diagonal: 10 px at 640x480
WORK_WIDTH = 320
DOG_SIGMAS = (1.0, 3.0)  # px at WORK_WIDTH
FLAT_STD = 0.05  # grey levels of the band-passed image: below, an image has no texture to compare


@dataclass(frozen=True)
class FirstFrameCheck:
    """``shift_px`` (dx, dy): frame 0 ≈ I0 moved by this many (full-resolution) pixels;
    ``similarity``: ZNCC after undoing the shift; ``similarity_unshifted``: ZNCC as they are."""

    shift_px: tuple[float, float]
    similarity: float
    similarity_unshifted: float
    max_shift_px: float
    min_similarity: float

    @property
    def shift_norm_px(self) -> float:
        return float(np.hypot(*self.shift_px))

    @property
    def same_scene(self) -> bool:
        return self.similarity >= self.min_similarity

    @property
    def ok(self) -> bool:
        return self.same_scene and self.shift_norm_px <= self.max_shift_px

    def reason(self) -> str:
        if not self.same_scene:
            return (f"frame 0 of the video does not show the scene of I0 (similarity {self.similarity:.2f} < "
                    f"{self.min_similarity:.2f}): the video must start at the robot camera's current image")
        if not self.ok:
            dx, dy = self.shift_px
            return (f"frame 0 of the video is shifted by ({dx:+.0f}, {dy:+.0f}) px from I0 (limit "
                    f"{self.max_shift_px:.0f} px): the camera must be static and the video must start at I0")
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"shift_px": [round(float(v), 2) for v in self.shift_px], "similarity": round(self.similarity, 4),
                "similarity_unshifted": round(self.similarity_unshifted, 4),
                "max_shift_px": round(self.max_shift_px, 2), "min_similarity": self.min_similarity, "ok": self.ok}


def _prep(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    a = np.asarray(img)
    g = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) if a.ndim == 3 else a
    g = g.astype(np.float32)
    if scale != 1.0:
        g = cv2.resize(g, (max(8, int(round(g.shape[1] * scale))), max(8, int(round(g.shape[0] * scale)))),
                       interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(g, (0, 0), DOG_SIGMAS[0]) - cv2.GaussianBlur(g, (0, 0), DOG_SIGMAS[1])


def _zncc(a: np.ndarray, b: np.ndarray) -> float:
    """ZNCC of two band-passed images; two featureless ones agree (1), one alone does not (0)."""
    if a.size == 0:
        return 0.0
    a = a - a.mean()
    b = b - b.mean()
    flat_a, flat_b = float(a.std()) < FLAT_STD, float(b.std()) < FLAT_STD
    if flat_a or flat_b:
        return 1.0 if flat_a and flat_b else 0.0
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den)


def _overlap(a: np.ndarray, b: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """Parts of ``a`` and ``b`` that coincide when b(x) ≈ a(x - (dx, dy))."""
    H, W = a.shape
    xa0, xa1 = max(0, -dx), min(W, W - dx)
    ya0, ya1 = max(0, -dy), min(H, H - dy)
    if xa1 - xa0 < 4 or ya1 - ya0 < 4:
        return a[:0, :0], b[:0, :0]
    return a[ya0:ya1, xa0:xa1], b[ya0 + dy:ya1 + dy, xa0 + dx:xa1 + dx]


def measure_first_frame(frame0: np.ndarray, i0: np.ndarray, *, valid_rect: tuple[int, int, int, int] | None = None,
                        min_similarity: float = MIN_SIMILARITY, max_shift_frac: float = MAX_SHIFT_FRAC,
                        work_width: int = WORK_WIDTH) -> FirstFrameCheck:
    """Measure how frame 0 (already in the camera's grid) sits on I0. ``valid_rect`` (x0, y0, x1,
    y1): the part of frame 0 with video content (letterboxed videos); both images are cut to it."""
    import cv2

    f0, im = np.asarray(frame0), np.asarray(i0)
    if f0.shape[:2] != im.shape[:2]:
        raise InvalidInput(f"frame 0 is {f0.shape[1]}x{f0.shape[0]} but I0 is {im.shape[1]}x{im.shape[0]}")
    H, W = im.shape[:2]
    if valid_rect is not None:
        x0, y0, x1, y1 = valid_rect
        f0, im = f0[y0:y1, x0:x1], im[y0:y1, x0:x1]
    scale = min(1.0, work_width / f0.shape[1])
    a, b = _prep(im, scale), _prep(f0, scale)
    win = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, win)
    zero = _zncc(a, b)
    best = _zncc(*_overlap(a, b, int(round(dx)), int(round(dy))))
    if best <= zero:  # the correlation peak was noise: the images agree best as they are
        dx, dy, best = 0.0, 0.0, zero
    max_shift = max_shift_frac * float(np.hypot(W, H))
    return FirstFrameCheck((float(dx / scale), float(dy / scale)), float(best), float(zero), max_shift,
                           float(min_similarity))


def check_first_frame(frame0: np.ndarray, i0: np.ndarray, **kw: Any) -> FirstFrameCheck:
    """``measure_first_frame``, refusing with ``InvalidInput`` (one line) when it does not pass."""
    res = measure_first_frame(frame0, i0, **kw)
    if not res.ok:
        raise InvalidInput(res.reason())
    return res


__all__ = ["FirstFrameCheck", "measure_first_frame", "check_first_frame", "MIN_SIMILARITY", "MAX_SHIFT_FRAC"]
