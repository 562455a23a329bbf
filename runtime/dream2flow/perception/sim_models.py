"""Wrappers of the sim-trained models (``export_tools/train_sim_*.py``): small U-Nets trained in
this repository on ``dream2flow.sim`` renders, shipped in ``exported_models/`` and selected by
``hw/perception.sim.toml``. They are stand-ins for the foundation models on simulated scenes
(never passed off as them: names are ``onnx:<manifest name>``, e.g. ``onnx:sim_video_depth``).

- ``SimVideoDepth`` (``VideoDepth``): each frame resized to the model's input (INTER_AREA), the
  relative depth upsampled back (bilinear). Larger = farther, an unknown affine map of metric
  depth per frame (the flow stage fits it to D0; ``flow.align`` also refits it per frame on the
  static scene).
- ``SimBoxSegmenter`` (``Segmenter``): a crop around the box (``context`` x its size on each
  side) with RGB, D0 normalised in the crop and the box as a channel -> mask logits; the largest
  connected component is kept.
- ``SimDetector`` (``Detector``): closed vocabulary. The prompt is looked up in the manifest's
  vocabulary (``preprocess.vocabulary``: phrase -> class); an unknown prompt is an
  ``InvalidInput`` naming the vocabulary, never a guess. Centre heatmap peaks of that class ->
  boxes (CenterNet-style decoding), NMS, sorted by score.

The manifest entry's ``preprocess`` holds every number these wrappers use (input size, mean/std,
context, depth unit, thresholds, vocabulary), so a retrained model brings its own.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from dream2flow.errors import InvalidInput, PerceptionFailed
from dream2flow.perception.onnx_preprocess import check_image, dense_per_frame, nms, normalize, resize, sigmoid
from dream2flow.perception.protocols import Box, Detections, VideoLike, validate_box, video_frames

if TYPE_CHECKING:
    from dream2flow.perception.engine import InferenceEngine

WRAPPERS = ("sim_depth", "sim_segmenter", "sim_detector")


def _check_wrapper(spec: Any, want: str) -> None:
    got = spec.preprocess.get("wrapper")
    if got != want:
        raise InvalidInput(f"model '{spec.name}' is not a {want} model (its preprocess.wrapper is {got!r})")


# ---- video depth ---------------------------------------------------------------------------

class SimVideoDepth:
    """``VideoDepth`` on a sim-trained depth model (``name = "onnx:<manifest name>"``)."""

    def __init__(self, engine: "InferenceEngine", model: str | None = None, *, max_batch: int | None = None) -> None:
        self.session = engine.session_for_role("video_depth", model)
        spec = self.session.spec
        _check_wrapper(spec, "sim_depth")
        pre = spec.preprocess
        self.name = f"onnx:{spec.name}"
        self.height, self.width = int(pre["height"]), int(pre["width"])
        self.mean, self.std = pre["mean"], pre["std"]
        self.max_batch = max(1, int(max_batch if max_batch is not None else pre.get("max_batch", 8)))

    def __call__(self, video: VideoLike) -> np.ndarray:
        out = dense_per_frame(self.session, video_frames(video), "relative_depth", self.width, self.height,
                              self.mean, self.std, self.max_batch)
        if not np.isfinite(out).all():
            raise PerceptionFailed(f"{self.name} produced non-finite depth")
        return out


# ---- box-prompted segmentation -----------------------------------------------------------------

def crop_window(box: Sequence[float], W: int, H: int, context: float, min_context_px: int = 16
                ) -> tuple[int, int, int, int]:
    """Integer crop (x0, y0, x1, y1; exclusive ends) of the box plus ``context`` x its size (at least
    ``min_context_px``) on each side, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    mx = max(float(min_context_px), context * (x1 - x0))
    my = max(float(min_context_px), context * (y1 - y0))
    cx0, cy0 = int(max(0, np.floor(x0 - mx))), int(max(0, np.floor(y0 - my)))
    cx1, cy1 = int(min(W, np.ceil(x1 + mx))), int(min(H, np.ceil(y1 + my)))
    return cx0, cy0, max(cx1, cx0 + 1), max(cy1, cy0 + 1)


def crop_inputs(rgb_crop: np.ndarray, depth_crop: np.ndarray | None, box: Sequence[float],
                win: tuple[int, int, int, int], size: int, mean: Sequence[float], std: Sequence[float],
                depth_unit_m: float, depth_clip: float = 3.0) -> np.ndarray:
    """[5, size, size] float32: RGB normalised, depth (z − median z inside the box) / unit clipped
    to ±``depth_clip`` (0 where invalid or without depth), the box as 0/1. ``rgb_crop`` /
    ``depth_crop`` are the image's ``win`` window (any resolution: they are resized here)."""
    import cv2

    x = np.zeros((5, size, size), np.float32)
    x[:3] = normalize(resize(np.ascontiguousarray(rgb_crop), size, size), mean, std)
    cx0, cy0, cx1, cy1 = win
    sx, sy = size / (cx1 - cx0), size / (cy1 - cy0)
    bx0 = int(np.clip(np.floor((box[0] - cx0) * sx), 0, size))
    by0 = int(np.clip(np.floor((box[1] - cy0) * sy), 0, size))
    bx1 = int(np.clip(np.ceil((box[2] - cx0) * sx), bx0 + 1, size))
    by1 = int(np.clip(np.ceil((box[3] - cy0) * sy), by0 + 1, size))
    x[4, by0:by1, bx0:bx1] = 1.0
    if depth_crop is not None:
        d = cv2.resize(np.asarray(depth_crop, np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
        valid = np.isfinite(d) & (d > 0)
        inside = valid & (x[4] > 0)
        if inside.sum() >= 4:
            med = float(np.median(d[inside]))
            x[3] = np.where(valid, np.clip((np.where(valid, d, med) - med) / depth_unit_m, -depth_clip, depth_clip), 0.0)
    return x


class SimBoxSegmenter:
    """``Segmenter`` on a sim-trained box-prompted model (``name = "onnx:<manifest name>"``). Uses D0
    when given (it was trained with it; without it, it sees a flat depth channel and relies on colour)."""

    def __init__(self, engine: "InferenceEngine", model: str | None = None, *, min_pixels: int = 20,
                 threshold: float | None = None) -> None:
        self.session = engine.session_for_role("segmenter", model)
        spec = self.session.spec
        _check_wrapper(spec, "sim_segmenter")
        pre = spec.preprocess
        self.name = f"onnx:{spec.name}"
        self.size = int(pre["size"])
        self.context = float(pre["context"])
        self.min_context_px = int(pre.get("min_context_px", 16))
        self.depth_unit_m = float(pre["depth_unit_m"])
        self.depth_clip = float(pre.get("depth_clip", 3.0))
        self.mean, self.std = pre["mean"], pre["std"]
        self.threshold = float(threshold if threshold is not None else pre.get("mask_threshold", 0.0))
        self.min_pixels = int(min_pixels)

    def logits(self, image: np.ndarray, box: Box, depth_m: np.ndarray | None = None
               ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """(mask logits over the crop [h,w] float32, the crop window) for one box."""
        import cv2

        img = check_image(image)
        H, W = img.shape[:2]
        b = validate_box(box, W, H)
        if depth_m is not None and np.asarray(depth_m).shape != (H, W):
            raise InvalidInput(f"depth is {list(np.asarray(depth_m).shape)} but the image is {H}x{W}")
        win = crop_window(b, W, H, self.context, self.min_context_px)
        cx0, cy0, cx1, cy1 = win
        dcrop = None if depth_m is None else np.asarray(depth_m)[cy0:cy1, cx0:cx1]
        x = crop_inputs(img[cy0:cy1, cx0:cx1], dcrop, b, win, self.size, self.mean, self.std, self.depth_unit_m,
                        self.depth_clip)
        out = self.session.run({"crop": x[None]})["mask_logits"][0]
        return cv2.resize(out.astype(np.float32), (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR), win

    def __call__(self, image: np.ndarray, box: Box, depth_m: np.ndarray | None = None) -> np.ndarray:
        from dream2flow.perception.classical import largest_component

        logits, (cx0, cy0, cx1, cy1) = self.logits(image, box, depth_m)
        fg = largest_component(logits > self.threshold)
        if int(fg.sum()) < self.min_pixels:
            raise PerceptionFailed(f"{self.name}: the mask for box {tuple(round(float(v), 1) for v in box)} is empty "
                                   f"({int(fg.sum())} px < {self.min_pixels})")
        H, W = np.asarray(image).shape[:2]
        mask = np.zeros((H, W), bool)
        mask[cy0:cy1, cx0:cx1] = fg
        return mask


# ---- closed-vocabulary detection -------------------------------------------------------------

_ARTICLES = ("the ", "a ", "an ")


def normalise_prompt(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation or leading article: "The bread." -> "bread"."""
    t = re.sub(r"\s+", " ", str(text).strip().lower()).strip(" .,;:!?\"'")
    for a in _ARTICLES:
        if t.startswith(a):
            t = t[len(a):]
    return t.strip()


class SimDetector:
    """Closed-vocabulary ``Detector`` on a sim-trained centre-heatmap model (``name = "onnx:<name>"``)."""

    def __init__(self, engine: "InferenceEngine", model: str | None = None, *, box_threshold: float | None = None,
                 nms_iou: float = 0.5, max_detections: int = 10) -> None:
        self.session = engine.session_for_role("detector", model)
        spec = self.session.spec
        _check_wrapper(spec, "sim_detector")
        pre = spec.preprocess
        self.name = f"onnx:{spec.name}"
        self.height, self.width = int(pre["height"]), int(pre["width"])
        self.mean, self.std = pre["mean"], pre["std"]
        self.stride = int(pre["stride"])
        self.classes: tuple[str, ...] = tuple(pre["classes"])
        self.vocabulary: dict[str, str] = {normalise_prompt(k): str(v) for k, v in dict(pre["vocabulary"]).items()}
        bad = sorted({v for v in self.vocabulary.values() if v not in self.classes})
        if bad:
            raise InvalidInput(f"model '{spec.name}': vocabulary maps to unknown classes {bad}")
        self.box_threshold = float(box_threshold if box_threshold is not None else pre.get("box_threshold", 0.3))
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)

    def class_of(self, text: str) -> str:
        """The class a prompt names, or ``InvalidInput`` naming the vocabulary."""
        key = normalise_prompt(text)
        if key in self.vocabulary:
            return self.vocabulary[key]
        if key in self.classes:
            return key
        terms = ", ".join(f"'{k}'" for k in sorted(self.vocabulary))
        raise InvalidInput(f"the detector {self.name} is closed-vocabulary and does not know {text!r}: "
                           f"use one of {terms}")

    def raw(self, image: np.ndarray) -> dict[str, np.ndarray]:
        img = check_image(image)
        x = normalize(resize(img, self.width, self.height), self.mean, self.std)[None]
        return self.session.run({"pixel_values": x})

    def __call__(self, image: np.ndarray, text: str) -> Detections:
        cls = self.classes.index(self.class_of(text))
        img = check_image(image)
        H, W = img.shape[:2]
        out = self.raw(img)
        heat = sigmoid(out["heatmap_logits"][0, cls].astype(np.float64))
        size = out["box_size_log"][0].astype(np.float64)
        off = out["center_offset"][0].astype(np.float64)
        h, w = heat.shape
        pad = np.pad(heat, 1, constant_values=-1.0)
        neigh = np.max(np.stack([pad[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]), axis=0)
        ys, xs = np.nonzero((heat >= neigh) & (heat >= self.box_threshold))
        if ys.size == 0:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        scores = heat[ys, xs]
        cx = (xs + off[0, ys, xs]) * self.stride
        cy = (ys + off[1, ys, xs]) * self.stride
        bw, bh = np.exp(size[0, ys, xs]), np.exp(size[1, ys, xs])
        sx, sy = W / self.width, H / self.height
        boxes = np.stack([np.clip((cx - bw / 2) * sx, 0, W), np.clip((cy - bh / 2) * sy, 0, H),
                          np.clip((cx + bw / 2) * sx, 0, W), np.clip((cy + bh / 2) * sy, 0, H)], -1)
        ok = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, self.nms_iou)[: self.max_detections]
        return Detections(boxes[keep].astype(np.float32), scores[keep].astype(np.float32))


__all__ = ["SimVideoDepth", "SimBoxSegmenter", "SimDetector", "crop_window", "crop_inputs", "normalise_prompt",
           "WRAPPERS"]
