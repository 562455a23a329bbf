"""``Segmenter`` on an exported SAM 2 (``export_tools/export_sam2.py``: image encoder + mask
decoder). The image is resized to the model's SxS square (SAM 2's own processor does the same,
no padding), the box is scaled into that frame, the low-res mask logits are resized back to the
image and thresholded (logit > 0). The encoder result of the last image is kept, so several boxes
on one image cost one encoder run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import PerceptionFailed
from dream2flow.perception.onnx_preprocess import check_image, normalize, resize
from dream2flow.perception.protocols import Box, validate_box

if TYPE_CHECKING:
    from dream2flow.perception.engine import InferenceEngine


class OnnxSam2Segmenter:
    """Box-prompted SAM 2 (``name = "onnx:<encoder name>"``)."""

    def __init__(self, engine: "InferenceEngine", encoder: str | None = None, decoder: str | None = None, *,
                 min_pixels: int = 20) -> None:
        self.encoder = engine.session_for_role("segmenter_encoder", encoder)
        pre = self.encoder.spec.preprocess
        self.decoder = engine.session_for_role("segmenter_decoder", decoder or pre.get("decoder"))
        self.name = f"onnx:{self.encoder.spec.name}"
        self.size = int(pre["image_size"])
        self.mean, self.std = pre["mean"], pre["std"]
        self.threshold = float(pre.get("mask_threshold", 0.0))
        self.min_pixels = int(min_pixels)
        self._cache: tuple[bytes, dict[str, np.ndarray]] | None = None

    def embed(self, image: np.ndarray) -> dict[str, np.ndarray]:
        import hashlib

        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest() + bytes(str(image.shape), "ascii")
        if self._cache is None or self._cache[0] != key:
            x = normalize(resize(image, self.size, self.size), self.mean, self.std)[None]
            self._cache = (key, self.encoder.run({"pixel_values": x}))
        return self._cache[1]

    def logits(self, image: np.ndarray, box: Box) -> np.ndarray:
        """Mask logits [H,W] float32 at the image's size."""
        import cv2

        img = check_image(image)
        H, W = img.shape[:2]
        x0, y0, x1, y1 = validate_box(box, W, H)
        emb = self.embed(img)
        sx, sy = self.size / W, self.size / H
        boxes = np.array([[[x0 * sx, y0 * sy, x1 * sx, y1 * sy]]], np.float32)
        out = self.decoder.run({**emb, "input_boxes": boxes})
        low = out["masks"][0, 0].astype(np.float32)
        up = cv2.resize(low, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(up, (W, H), interpolation=cv2.INTER_LINEAR)

    def __call__(self, image: np.ndarray, box: Box, depth_m: np.ndarray | None = None) -> np.ndarray:
        """``depth_m`` (the ``Segmenter`` protocol's D0) is accepted and ignored: SAM 2 sees RGB only."""
        mask = self.logits(image, box) > self.threshold
        if int(mask.sum()) < self.min_pixels:
            raise PerceptionFailed(f"{self.name}: the mask for box {tuple(round(float(v), 1) for v in box)} is empty "
                                   f"({int(mask.sum())} px < {self.min_pixels})")
        return mask
