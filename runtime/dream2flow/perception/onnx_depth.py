"""``VideoDepth`` on an exported Depth Anything V2 (relative) model (``export_tools/export_depth_anything.py``),
run frame by frame in batches.

Depth Anything predicts relative *inverse* depth (disparity, larger = nearer) up to an unknown
scale and shift; the protocol wants relative depth (larger = farther). Inverting needs the
disparity's shift, which is unknown: this wrapper assumes it is zero (``depth = 1/disparity``,
after clamping at ``min_disparity_frac`` of each frame's 99th percentile to avoid blow-ups at the
far end) and marks non-positive disparities invalid (NaN). The flow stage then fits a scale and
shift of this to the first RGB-D frame; the residual left by a non-zero disparity shift shows up
in its alignment residual. The same scale is used for the whole video (per-video percentile),
so frame-to-frame depth changes are kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dream2flow.perception.onnx_preprocess import dense_per_frame
from dream2flow.perception.protocols import VideoLike, video_frames

if TYPE_CHECKING:
    from dream2flow.perception.engine import InferenceEngine


class OnnxDepthAnything:
    """``name = "onnx:<manifest name>"``."""

    def __init__(self, engine: "InferenceEngine", model: str | None = None, *, min_disparity_frac: float = 0.02) -> None:
        self.session = engine.session_for_role("video_depth", model)
        spec = self.session.spec
        pre = spec.preprocess
        self.name = f"onnx:{spec.name}"
        self.height, self.width = int(pre["height"]), int(pre["width"])
        self.mean, self.std = pre["mean"], pre["std"]
        self.kind = str(pre.get("output_kind", "relative_disparity"))
        self.max_batch = max(1, int(pre.get("max_batch", 8)))
        self.min_disparity_frac = float(min_disparity_frac)

    def disparity(self, video: VideoLike) -> np.ndarray:
        """The model's raw output resized to the video: [T,H,W] float32."""
        return dense_per_frame(self.session, video_frames(video), "predicted_depth", self.width, self.height,
                               self.mean, self.std, self.max_batch)

    def __call__(self, video: VideoLike) -> np.ndarray:
        d = self.disparity(video)
        if self.kind != "relative_disparity":
            return d
        pos = d[np.isfinite(d) & (d > 0)]
        if pos.size == 0:
            return np.full_like(d, np.nan)
        floor = float(np.percentile(pos, 99)) * self.min_disparity_frac
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.where(d > 0, 1.0 / np.maximum(d, floor), np.nan)
        return depth.astype(np.float32)
