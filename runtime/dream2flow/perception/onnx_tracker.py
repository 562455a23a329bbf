"""``PointTracker`` on an exported CoTracker3 (offline) model (``export_tools/export_cotracker3.py``)
or any ONNX file with its signature (e.g. the I/O fixture used in tests, which is named as such).

Like the authors' predictor: the video is resized to the model's resolution, the queries are
scaled into it (frame 0), a regular support grid of ``support_grid``² extra queries is appended
(CoTracker tracks better with context points; their tracks are dropped), the outputs are scaled
back to image pixels, visibility = probability > ``visibility_threshold`` (optionally times the
confidence), and row 0 is set to the queries and visible (the protocol's contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.perception.onnx_preprocess import resize
from dream2flow.perception.protocols import Tracks, VideoLike, video_frames

if TYPE_CHECKING:
    from dream2flow.perception.engine import InferenceEngine


class OnnxCoTracker:
    """``name = "onnx:<manifest name>"`` (a fixture keeps its ``_io_fixture`` name)."""

    def __init__(self, engine: "InferenceEngine", model: str | None = None) -> None:
        self.session = engine.session_for_role("point_tracker", model)
        spec = self.session.spec
        pre = spec.preprocess
        self.name = f"onnx:{spec.name}"
        self.fixture = spec.fixture
        self.height, self.width = int(pre["height"]), int(pre["width"])
        self.threshold = float(pre.get("visibility_threshold", 0.9))
        self.use_confidence = bool(pre.get("use_confidence", False))
        self.support_grid = int(pre.get("support_grid", 6))
        self.max_frames = int(pre.get("max_frames", 96))

    def _support(self) -> np.ndarray:
        g = self.support_grid
        if g <= 0:
            return np.zeros((0, 2), np.float32)
        # a g x g grid inset from the borders (model-resolution pixels)
        xs = np.linspace(self.width * 0.05, self.width * 0.95 - 1, g)
        ys = np.linspace(self.height * 0.05, self.height * 0.95 - 1, g)
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)

    def __call__(self, video: VideoLike, query_px: np.ndarray) -> Tracks:
        frames = video_frames(video)
        T, H, W = frames.shape[:3]
        q = np.asarray(query_px, np.float32)
        if q.ndim != 2 or q.shape[1] != 2 or q.shape[0] == 0:
            raise InvalidInput(f"query_px must be [n,2] with n >= 1, got {list(q.shape)}")
        if T > self.max_frames:
            raise InvalidInput(f"{self.name}: the video has {T} frames, the exported model takes at most {self.max_frames}")
        sx, sy = (self.width - 1) / max(W - 1, 1), (self.height - 1) / max(H - 1, 1)
        vid = np.stack([resize(f, self.width, self.height) for f in frames]).astype(np.float32)
        vid = np.ascontiguousarray(vid.transpose(0, 3, 1, 2))[None]        # [1,T,3,h,w], 0..255
        qs = np.concatenate([q * np.array([sx, sy], np.float32), self._support()], 0)
        queries = np.concatenate([np.zeros((len(qs), 1), np.float32), qs], 1)[None]
        out = self.session.run({"video": vid, "queries": queries})
        n = len(q)
        tracks = out["tracks"][0, :, :n].astype(np.float32) / np.array([sx, sy], np.float32)
        p = out["visibility"][0, :, :n]
        if self.use_confidence:
            p = p * out["confidence"][0, :, :n]
        visible = p > self.threshold
        tracks[0] = q
        visible[0] = True
        return Tracks(tracks, visible)
