"""``HandDetector`` on MediaPipe's hand models (``export_tools/export_mediapipe_hands.py``): the
thumb tip per frame, from real weights.

MediaPipe Hands is a two-stage pipeline, reproduced here with NumPy + OpenCV around the two ONNX
graphs (the numbers come from the manifest's ``preprocess`` tables, i.e. MediaPipe's own graph
options for the full models):

1. **Palm detection** (192x192, NHWC float in [0, 1], letterboxed): an SSD with 2016 fixed-size
   anchors (``ssd_anchors``, MediaPipe's ``SsdAnchorsCalculator``); each anchor regresses a box and
   7 palm keypoints; scores are sigmoids; overlapping boxes merge by weighted non-maximum
   suppression (``weighted_nms``).
2. **Palm -> hand crop** (``hand_roi``): rotate so the wrist -> middle-finger-base vector points up,
   take the box's long side, scale by 2.6 and shift half a box toward the fingers -- a square
   rotated crop that holds the whole hand.
3. **Landmarks** (224x224 crop, NHWC float in [0, 1]): 21 (x, y, z) + a hand-presence probability;
   the landmarks are mapped back through the crop's affine transform. Thumb tip = landmark 4.
4. **Second pass** (``refine``, on by default): the crop MediaPipe's video mode would use for the
   next frame (``landmarks_roi``: from the landmarks, scale 2, centred on the palm and finger
   joints) and the landmarks again. Why: the palm-derived crop can be off-centre; on the drawn
   test hands (development seeds, 312 images) the second pass removed the one gross thumb error
   (50 px; the thumb collapsed onto its base) and lowered the 95th-percentile error from 6.5 to
   6.1 px, for one more landmark inference (~7 ms per frame on this project's 2-core CPU).

Why palm first: a palm is rigid and roughly square, so it is detected reliably whatever the
fingers do; the landmark model then only has to work on an upright, well-framed crop. Why the
presence threshold matters: on hand-free textures the palm detector alone scores up to ~0.9; the
landmark model's hand-presence probability is what rejects those (none passed on 200 development
images).

Every frame is processed on its own (MediaPipe's "static image" mode plus the second pass): a
frame's result never depends on the previous one, so a video's thumb track is deterministic frame
by frame.

Pixel convention: (x, y), the centre of the top-left pixel at (0, 0), like the other backends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from dream2flow.perception.onnx_preprocess import check_image, sigmoid
from dream2flow.perception.protocols import VideoLike, video_frames

if TYPE_CHECKING:
    from dream2flow.perception.engine import InferenceEngine

THUMB_TIP = 4


# ---- SSD anchors and box decoding (MediaPipe's SsdAnchorsCalculator / TensorsToDetections) ------

def _scale(min_scale: float, max_scale: float, i: int, n: int) -> float:
    return (min_scale + max_scale) * 0.5 if n == 1 else min_scale + (max_scale - min_scale) * i / (n - 1.0)


def ssd_anchors(input_size: int, strides: Sequence[int], *, min_scale: float, max_scale: float,
                offset: float = 0.5, aspect_ratios: Sequence[float] = (1.0,),
                interpolated_scale_aspect_ratio: float = 1.0, fixed_size: bool = True) -> np.ndarray:
    """Anchors ``[N,4]`` (x_centre, y_centre, w, h), normalised to the input, in the order the model
    emits its boxes: layer by layer (layers with the same stride share one feature map), row-major
    over the map, anchors of a cell consecutive. With ``fixed_size`` every w = h = 1 (the model
    regresses absolute sizes), as for MediaPipe's palm detectors."""
    n_layers = len(strides)
    out: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < n_layers:
        sizes: list[tuple[float, float]] = []  # (w, h) per anchor of a cell
        last = layer
        while last < n_layers and strides[last] == strides[layer]:
            s = _scale(min_scale, max_scale, last, n_layers)
            for ar in aspect_ratios:
                sizes.append((s * math.sqrt(ar), s / math.sqrt(ar)))
            if interpolated_scale_aspect_ratio > 0:
                s_next = 1.0 if last == n_layers - 1 else _scale(min_scale, max_scale, last + 1, n_layers)
                si, ar = math.sqrt(s * s_next), interpolated_scale_aspect_ratio
                sizes.append((si * math.sqrt(ar), si / math.sqrt(ar)))
            last += 1
        fm = int(math.ceil(input_size / strides[layer]))
        for y in range(fm):
            for x in range(fm):
                for w, h in sizes:
                    out.append(((x + offset) / fm, (y + offset) / fm, 1.0 if fixed_size else w, 1.0 if fixed_size else h))
        layer = last
    return np.asarray(out, np.float32)


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, scale: float, num_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    """``raw`` [N, 4 + 2K] (x, y, w, h, then K keypoints x, y; offsets in input pixels) ->
    boxes [N,4] (x0, y0, x1, y1) and keypoints [N,K,2], normalised to the input."""
    a_xy, a_wh = anchors[:, None, :2], anchors[:, None, 2:]
    c = raw[:, :2] / scale * anchors[:, 2:] + anchors[:, :2]
    wh = raw[:, 2:4] / scale * anchors[:, 2:]
    boxes = np.concatenate([c - wh / 2, c + wh / 2], axis=1)
    kp = raw[:, 4:4 + 2 * num_keypoints].reshape(-1, num_keypoints, 2) / scale * a_wh + a_xy
    return boxes, kp


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
                 ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: the best remaining detection absorbs every detection overlapping it
    by more than ``iou_threshold`` (itself included); box and keypoints become their score-weighted
    mean, the score stays the best one's. Returns [(box [4], keypoints [K,2], score)], best first."""
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        best = order[0]
        ious = _iou_one(boxes[best], boxes[order])
        group, order = order[ious > iou_threshold], order[ious <= iou_threshold]
        if group.size == 0:  # degenerate (zero-area) box: keep it alone
            group, order = order[:1], order[1:]
        w = scores[group][:, None]
        tot = float(w.sum())
        out.append(((boxes[group] * w).sum(0) / tot, (keypoints[group] * w[:, :, None]).sum(0) / tot,
                    float(scores[best])))
    return out


# ---- results -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Palm:
    """A palm detection in image pixels: ``box`` (x0, y0, x1, y1), ``keypoints`` [7,2] (0 = wrist
    centre, 2 = middle-finger base), ``score`` in [0, 1]."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


@dataclass(frozen=True)
class HandROI:
    """A square crop rotated by ``angle_rad`` (clockwise on screen; 0 = fingers up) around
    ``center`` (x, y) px, ``size`` px on a side."""

    center: tuple[float, float]
    size: float
    angle_rad: float

    def corners(self) -> np.ndarray:
        """[4,2] px: top-left, top-right, bottom-right, bottom-left of the crop."""
        c, s = math.cos(self.angle_rad), math.sin(self.angle_rad)
        h = self.size / 2
        pts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
        rot = np.array([[c, -s], [s, c]])
        return pts @ rot.T + np.asarray(self.center)


@dataclass(frozen=True)
class HandLandmarks:
    """One hand: ``points`` [21,3] (x, y px in the image; z depth relative to the wrist in about the
    same pixel scale, smaller = nearer the camera), ``presence`` in [0, 1], ``handedness``
    (MediaPipe's score, > 0.5 = "Right" for a mirrored, selfie-view image), the palm it came from
    and the crop used."""

    points: np.ndarray
    presence: float
    handedness: float
    palm: Palm
    roi: HandROI

    @property
    def thumb_tip(self) -> np.ndarray:
        return self.points[THUMB_TIP, :2].astype(np.float32)


def hand_roi(palm: Palm, *, scale: float, shift_x: float, shift_y: float, rotation_keypoints: Sequence[int],
             target_angle_rad: float) -> HandROI:
    """MediaPipe's palm -> hand rectangle (``DetectionsToRectsCalculator`` with the wrist -> middle
    finger rotation, then ``RectTransformationCalculator`` with ``square_long``), in pixels."""
    i0, i1 = rotation_keypoints
    (x0, y0), (x1, y1) = palm.keypoints[i0], palm.keypoints[i1]
    ang = target_angle_rad - math.atan2(-(y1 - y0), x1 - x0)
    ang = ang - 2 * math.pi * math.floor((ang + math.pi) / (2 * math.pi))
    bx0, by0, bx1, by1 = (float(v) for v in palm.box)
    w, h = bx1 - bx0, by1 - by0
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    c, s = math.cos(ang), math.sin(ang)
    cx += w * shift_x * c - h * shift_y * s
    cy += w * shift_x * s + h * shift_y * c
    return HandROI((cx, cy), max(w, h) * scale, ang)


# MediaPipe's "hand_rect_for_next_frame" (HandLandmarksToRectCalculator on the landmark subset
# wrist, thumb CMC/MCP, and the MCP + PIP joints of the four fingers; rotation from the wrist to
# the mean of the index/middle/ring PIP joints; then scale 2.0, shift_y -0.1, square_long).
ROI_LANDMARKS = (0, 1, 2, 5, 6, 9, 10, 13, 14, 17, 18)


def landmarks_roi(points: np.ndarray, *, scale: float = 2.0, shift_y: float = -0.1) -> HandROI:
    """The crop MediaPipe would use for the same hand in the next video frame, from landmarks
    ``points`` [21,>=2] image px."""
    p = np.asarray(points, np.float64)[list(ROI_LANDMARKS), :2]
    x0, y0 = p[0]
    x1, y1 = ((p[4] + p[8]) / 2 + p[6]) / 2  # subset 4, 6, 8 = index, middle, ring PIP
    ang = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    ang = ang - 2 * math.pi * math.floor((ang + math.pi) / (2 * math.pi))
    c, s = math.cos(ang), math.sin(ang)
    centre_aa = (p.min(0) + p.max(0)) / 2
    q = (p - centre_aa) @ np.array([[c, -s], [s, c]])  # rotate by -ang
    lo, hi = q.min(0), q.max(0)
    mid = (lo + hi) / 2
    cx, cy = np.array([[c, -s], [s, c]]) @ mid + centre_aa
    w, h = hi - lo
    cx += -h * shift_y * s
    cy += h * shift_y * c
    return HandROI((float(cx), float(cy)), float(max(w, h) * scale), ang)


def roi_affine(roi: HandROI, out_size: int) -> np.ndarray:
    """2x3 affine: image pixel -> crop pixel (both with pixel centres at integers)."""
    c, s = math.cos(roi.angle_rad), math.sin(roi.angle_rad)
    k = out_size / roi.size
    # continuous crop coordinates q = k R^T (p - c) + out/2 (the crop spans [0, out]); ``center``
    # and p are in index coordinates, whose offset cancels in p - c; crop index = q - 0.5.
    M = np.array([[c, s], [-s, c]]) * k
    t = -M @ np.asarray(roi.center, np.float64) + out_size / 2.0 - 0.5
    return np.hstack([M, t[:, None]])


class MediaPipeHand:
    """MediaPipe palm detector + hand landmarks through the ``InferenceEngine``. ``name`` is
    ``mediapipe_hands``; the models are the manifest's ``hand_palm_detector`` and ``hand_landmarks``
    entries (or the named ones)."""

    name = "mediapipe_hands"

    def __init__(self, engine: "InferenceEngine", palm_model: str | None = None, landmark_model: str | None = None, *,
                 score_threshold: float | None = None, presence_threshold: float | None = None,
                 max_hands: int = 2, refine: bool = True) -> None:
        self.palm_session = engine.session_for_role("hand_palm_detector", palm_model)
        self.landmark_session = engine.session_for_role("hand_landmarks", landmark_model)
        pp = self.palm_session.spec.preprocess
        lp = self.landmark_session.spec.preprocess
        self.models = (self.palm_session.spec.name, self.landmark_session.spec.name)
        self.palm_size = int(pp["input_size"])
        self.anchors = ssd_anchors(self.palm_size, [int(s) for s in pp["anchor_strides"]],
                                   min_scale=float(pp["anchor_min_scale"]), max_scale=float(pp["anchor_max_scale"]),
                                   offset=float(pp["anchor_offset"]),
                                   aspect_ratios=[float(a) for a in pp["anchor_aspect_ratios"]],
                                   interpolated_scale_aspect_ratio=float(pp["anchor_interpolated_scale_aspect_ratio"]),
                                   fixed_size=bool(pp["anchor_fixed_size"]))
        n_out = int(self.palm_session.spec.outputs[0].shape[1])
        if self.anchors.shape[0] != n_out:
            from dream2flow.errors import ModelMismatch

            raise ModelMismatch(f"model '{self.models[0]}': its anchor options make {self.anchors.shape[0]} anchors "
                                f"but the model emits {n_out} boxes")
        self.num_keypoints = int(pp["num_keypoints"])
        self.box_scale = float(pp["box_scale"])
        self.clip = float(pp["score_clipping"])
        self.score_threshold = float(score_threshold if score_threshold is not None else pp["score_threshold"])
        self.nms_iou = float(pp["nms_iou_threshold"])
        self.roi_kw: dict[str, Any] = dict(scale=float(pp["roi_scale"]), shift_x=float(pp["roi_shift_x"]),
                                           shift_y=float(pp["roi_shift_y"]),
                                           rotation_keypoints=[int(k) for k in pp["rotation_keypoints"]],
                                           target_angle_rad=math.radians(float(pp["rotation_target_deg"])))
        self.crop_size = int(lp["input_size"])
        self.num_landmarks = int(lp["num_landmarks"])
        self.thumb_index = int(lp.get("thumb_tip_landmark", THUMB_TIP))
        self.z_scale = float(lp.get("z_scale", 1.0))
        self.presence_threshold = float(presence_threshold if presence_threshold is not None
                                        else lp["presence_threshold"])
        self.max_hands = max(1, int(max_hands))
        self.refine = bool(refine)

    # -- stage 1: palms
    def detect_palms(self, image: np.ndarray) -> list[Palm]:
        """Palms above the score threshold, best first, in image pixels."""
        import cv2

        img = check_image(image)
        H, W = img.shape[:2]
        S = self.palm_size
        k = min(S / W, S / H)
        nw, nh = max(1, int(round(W * k))), max(1, int(round(H * k)))
        ox, oy = (S - nw) // 2, (S - nh) // 2
        canvas = np.zeros((S, S, 3), np.float32)
        interp = cv2.INTER_AREA if nw < W else cv2.INTER_LINEAR
        canvas[oy:oy + nh, ox:ox + nw] = cv2.resize(img, (nw, nh), interpolation=interp).astype(np.float32) / 255.0
        out = self.palm_session.run({self.palm_session.spec.inputs[0].name: canvas[None]})
        raw, logits = (out[t.name][0] for t in self.palm_session.spec.outputs[:2])
        scores = sigmoid(np.clip(logits[:, 0], -self.clip, self.clip))
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        boxes, kps = decode_boxes(raw[keep], self.anchors[keep], self.box_scale, self.num_keypoints)
        palms = []
        sx, sy = nw / W, nh / H
        for box, kp, sc in weighted_nms(boxes, kps, scores[keep], self.nms_iou):
            # input-normalised -> canvas continuous px -> image continuous px -> image index px
            b = box.reshape(2, 2) * S
            b = (b - (ox, oy)) / (sx, sy) - 0.5
            kpx = (kp * S - (ox, oy)) / (sx, sy) - 0.5
            palms.append(Palm(b.reshape(4).astype(np.float64), kpx.astype(np.float64), float(sc)))
        return palms

    # -- stages 2 + 3: crop and landmarks
    def landmarks_in_roi(self, image: np.ndarray, roi: HandROI) -> tuple[np.ndarray, float, float]:
        """(points [21,3] image px, presence, handedness) for one rotated crop."""
        import cv2

        A = roi_affine(roi, self.crop_size)
        crop = cv2.warpAffine(image, A, (self.crop_size, self.crop_size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        x = (crop.astype(np.float32) / 255.0)[None]
        out = self.landmark_session.run({self.landmark_session.spec.inputs[0].name: x})
        names = [t.name for t in self.landmark_session.spec.outputs]
        lm = out[names[0]].reshape(self.num_landmarks, 3).astype(np.float64)
        presence = float(np.ravel(out[names[1]])[0])
        handed = float(np.ravel(out[names[2]])[0])
        # the model's (x, y) are continuous crop coordinates; to index coordinates, then invert A
        q = lm[:, :2] - 0.5
        M = A[:, :2]
        p = np.linalg.solve(M, (q - A[:, 2]).T).T
        pts = np.column_stack([p, lm[:, 2] / self.crop_size / self.z_scale * roi.size])
        return pts, presence, handed

    def hands_in_image(self, image: np.ndarray) -> list[HandLandmarks]:
        """Every hand whose presence passes the threshold (up to ``max_hands`` palms tried), best palm first."""
        img = check_image(image)
        hands = []
        for palm in self.detect_palms(img)[:self.max_hands]:
            roi = hand_roi(palm, **self.roi_kw)
            pts, presence, handed = self.landmarks_in_roi(img, roi)
            if presence < self.presence_threshold:
                continue
            if self.refine:
                roi2 = landmarks_roi(pts)
                pts2, presence2, handed2 = self.landmarks_in_roi(img, roi2)
                if presence2 >= self.presence_threshold:
                    pts, presence, handed, roi = pts2, presence2, handed2, roi2
            hands.append(HandLandmarks(pts, presence, handed, palm, roi))
        return hands

    def landmarks_in_image(self, image: np.ndarray) -> HandLandmarks | None:
        """The most confident hand (palm score x presence), or None."""
        hands = self.hands_in_image(image)
        return max(hands, key=lambda h: h.palm.score * h.presence) if hands else None

    def thumb_in_image(self, image: np.ndarray) -> np.ndarray | None:
        """Thumb tip (x, y) float32 px of the most confident hand, or None when no hand is found."""
        hand = self.landmarks_in_image(image)
        return None if hand is None else hand.points[self.thumb_index, :2].astype(np.float32)

    def __call__(self, video: VideoLike) -> np.ndarray | None:
        """``thumb_px`` [T,2] float32 with NaN rows where no hand is found; None if no frame has one."""
        frames = video_frames(video)
        out = np.full((frames.shape[0], 2), np.nan, np.float32)
        for t, f in enumerate(frames):
            p = self.thumb_in_image(f)
            if p is not None:
                out[t] = p
        return None if np.isnan(out).all() else out


__all__ = ["MediaPipeHand", "HandLandmarks", "HandROI", "Palm", "ssd_anchors", "decode_boxes", "weighted_nms",
           "hand_roi", "landmarks_roi", "roi_affine", "ROI_LANDMARKS", "THUMB_TIP"]
