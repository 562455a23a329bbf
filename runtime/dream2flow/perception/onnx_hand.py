"""``HandDetector`` on an exported ViTPose (``export_tools/export_hand_vitpose.py``): thumb tip per frame.

ViTPose is a top-down model: it needs a crop around the person/hand. With a ``detector`` (any
``Detector``, e.g. the ONNX Grounding DINO) the crop is the best "hand" box of each frame,
expanded by ``box_expand``; without one, the whole frame (fine when the hand fills much of a
generated close-up video, weaker otherwise). Each crop keeps its aspect by padding to the model's
3:4 input. The thumb tip is the most confident of the layout's thumb-tip channels (left/right
hand for COCO-WholeBody); frames whose peak is below ``min_confidence`` get NaN, and a video with
no confident frame returns ``None`` (no hand in the video)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dream2flow.perception.onnx_preprocess import heatmap_peak, normalize
from dream2flow.perception.protocols import Detector, VideoLike, video_frames

if TYPE_CHECKING:
    from dream2flow.perception.engine import InferenceEngine


class OnnxVitPoseHand:
    """``name = "onnx:<manifest name>"``."""

    def __init__(self, engine: "InferenceEngine", model: str | None = None, *, detector: Detector | None = None,
                 prompt: str = "hand", min_confidence: float | None = None) -> None:
        self.session = engine.session_for_role("hand_keypoints", model)
        spec = self.session.spec
        pre = spec.preprocess
        self.name = f"onnx:{spec.name}"
        self.height, self.width = int(pre["height"]), int(pre["width"])
        self.mean, self.std = pre["mean"], pre["std"]
        self.thumbs = [int(c) for c in pre["thumb_tip_channels"]]
        self.min_confidence = float(min_confidence if min_confidence is not None else pre.get("min_confidence", 0.3))
        self.expand = float(pre.get("box_expand", 1.25))
        self.max_batch = max(1, int(pre.get("max_batch", 8)))
        self.detector = detector
        self.prompt = prompt

    def _crop_box(self, frame: np.ndarray) -> tuple[float, float, float, float]:
        """Box (cx, cy, w, h) in frame pixels with the model's aspect ratio."""
        H, W = frame.shape[:2]
        cx, cy, bw, bh = W / 2.0, H / 2.0, float(W), float(H)
        if self.detector is not None:
            det = self.detector(frame, self.prompt)
            if len(det.scores):
                x0, y0, x1, y1 = (float(v) for v in det.boxes[0])
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                bw, bh = (x1 - x0) * self.expand, (y1 - y0) * self.expand
        aspect = self.width / self.height
        if bw / bh > aspect:
            bh = bw / aspect
        else:
            bw = bh * aspect
        return cx, cy, bw, bh

    def __call__(self, video: VideoLike) -> np.ndarray | None:
        import cv2

        frames = video_frames(video)
        T = frames.shape[0]
        crops, affines = [], []
        for f in frames:
            cx, cy, bw, bh = self._crop_box(f)
            s = self.width / bw
            # crop pixel = s * (frame pixel - (cx - bw/2, cy - bh/2))
            A = np.array([[s, 0, -s * (cx - bw / 2)], [0, s, -s * (cy - bh / 2)]], np.float64)
            crops.append(cv2.warpAffine(f, A, (self.width, self.height), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)))
            affines.append(A)
        out = np.full((T, 2), np.nan, np.float32)
        for s0 in range(0, T, self.max_batch):
            x = normalize(np.stack(crops[s0:s0 + self.max_batch]), self.mean, self.std)
            hms = self.session.run({"pixel_values": x})["heatmaps"]
            for i, hm in enumerate(hms):
                hh, hw = hm.shape[1:]
                best = max((heatmap_peak(hm[c]) for c in self.thumbs), key=lambda p: p[2])
                if best[2] < self.min_confidence:
                    continue
                A = affines[s0 + i]
                px = (best[0] + 0.5) * self.width / hw - 0.5   # heatmap -> crop pixels
                py = (best[1] + 0.5) * self.height / hh - 0.5
                out[s0 + i] = ((px - A[0, 2]) / A[0, 0], (py - A[1, 2]) / A[1, 1])
        return None if np.isnan(out).all() else out
