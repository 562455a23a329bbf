"""Pre/post-processing shared by the ONNX wrappers (OpenCV + NumPy, no torch): resizing,
letterboxing, ImageNet normalisation, box and heatmap maths."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dream2flow.errors import InvalidInput


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InvalidInput(f"{what} must be [H,W,3] uint8 RGB, got {img.dtype} {list(img.shape)}")
    return img


def normalize(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """[...,H,W,3] uint8 -> [...,3,H,W] float32, (x/255 - mean) / std."""
    x = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    interp = cv2.INTER_AREA if width < rgb.shape[1] and height < rgb.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(rgb, (int(width), int(height)), interpolation=interp)


def dense_per_frame(session: Any, frames: np.ndarray, output: str, width: int, height: int,
                    mean: Sequence[float], std: Sequence[float], max_batch: int) -> np.ndarray:
    """A dense per-frame model (depth, disparity) over a video: ``frames`` [T,H,W,3] uint8 RGB,
    resized to the model's ``width`` x ``height``, normalised, run ``max_batch`` frames at a time
    (input ``pixel_values``); its ``output`` [B,h,w] resized back (bilinear) -> [T,H,W] float32."""
    import cv2

    T, H, W = frames.shape[:3]
    out = np.empty((T, H, W), np.float32)
    for s in range(0, T, max_batch):
        chunk = frames[s:s + max_batch]
        x = normalize(np.stack([resize(f, width, height) for f in chunk]), mean, std)
        pred = session.run({"pixel_values": x})[output]
        for i, d in enumerate(pred):
            out[s + i] = cv2.resize(d.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    return out


def letterbox(rgb: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit ``rgb`` into a ``width`` x ``height`` canvas keeping its aspect, top-left aligned (as
    DETR-style processors pad). Returns (canvas uint8 [h,w,3], valid mask [h,w] int64, scale)."""
    H, W = rgb.shape[:2]
    s = min(width / W, height / H)
    nw, nh = max(1, int(round(W * s))), max(1, int(round(H * s)))
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:nh, :nw] = resize(rgb, nw, nh)
    mask = np.zeros((height, width), np.int64)
    mask[:nh, :nw] = 1
    return canvas, mask, s


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of (x0,y0,x1,y1) boxes."""
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, np.int64)


def heatmap_peak(hm: np.ndarray) -> tuple[float, float, float]:
    """(x, y, value) of a heatmap's maximum with the usual quarter-pixel shift toward the higher
    neighbour (as in the ViTPose/HRNet decoders), in heatmap pixels."""
    h, w = hm.shape
    idx = int(np.argmax(hm))
    y, x = divmod(idx, w)
    v = float(hm[y, x])
    fx, fy = float(x), float(y)
    if 0 < x < w - 1:
        fx += 0.25 * np.sign(hm[y, x + 1] - hm[y, x - 1])
    if 0 < y < h - 1:
        fy += 0.25 * np.sign(hm[y + 1, x] - hm[y - 1, x])
    return fx, fy, v
