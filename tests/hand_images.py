"""Drawn hands with a known thumb tip, for testing a real hand detector (MediaPipe) without photographs.

A hand is a 2D articulated model in units of palm width: a palm polygon, four fingers and a thumb
of three tapered segments each, and a forearm. Each part is filled with anti-aliased OpenCV
shapes and shaded like a cylinder lit from a random direction (brightness from the distance to
the part's outline, plus a directional term), with darker outlines between parts, joint creases,
nails (back view) or palm creases (palm view), sensor noise and a slight blur. Skin tone, finger
lengths, spread and bend, thumb angle, left/right (mirror), palm/back view, forearm length, scale,
rotation and position are drawn from the generator.

Ground truth, independent of any detector: the thumb tip is the end point of the thumb's distal
segment axis (the centre of the fingertip's rounded end), mapped through the same transform that
places the drawing in the image.

Backgrounds: plain, gradients and the simulator's own procedural textures (wood, speckle,
checker), or any image given (e.g. a rendered task scene). A drawing whose skin tone is too close
to the background around it (CIE Lab distance < ``MIN_CONTRAST``) is redrawn: a hand that a person
could not tell from the table is not a fair test of any detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SKIN_RGB = ((224, 172, 140), (198, 134, 100), (241, 194, 160), (160, 105, 75), (232, 180, 150), (120, 80, 60))
MIN_CONTRAST = 30.0  # CIE Lab distance (OpenCV 8-bit Lab, roughly ΔE76)


@dataclass
class DrawnHand:
    """``image`` [H,W,3] uint8 RGB, ``thumb_tip`` (x, y) px float32, and how it was drawn."""

    image: np.ndarray
    thumb_tip: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def _rot(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def _skeleton(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[np.ndarray, float]], tuple[np.ndarray, float]]:
    """Canonical hand: fingers toward -y, wrist centre at the origin, thumb on the -x side; units
    of palm width. Returns (palm polygon [k,2], fingers [(joints [4,2], width)], thumb)."""
    knuckles = np.array([[-0.36, -1.02], [-0.12, -1.08], [0.12, -1.04], [0.34, -0.94]])
    lengths = np.array([[0.44, 0.27, 0.22], [0.50, 0.31, 0.24], [0.47, 0.29, 0.23], [0.37, 0.23, 0.20]])
    lengths = lengths * rng.uniform(0.9, 1.1)
    widths = np.array([0.23, 0.24, 0.225, 0.20]) * rng.uniform(0.92, 1.08)
    spread = rng.uniform(0.4, 1.3)
    base = np.array([-0.16, -0.04, 0.06, 0.18]) * spread + rng.normal(0, 0.03, 4)
    fingers = []
    for i in range(4):
        p, a, pts = knuckles[i].copy(), base[i], [knuckles[i].copy()]
        for j in range(3):
            if j:
                a += rng.uniform(0.0, 0.075) * (1 if i >= 2 else -1)
            p = p + np.array([math.sin(a), -math.cos(a)]) * lengths[i, j]
            pts.append(p.copy())
        fingers.append((np.array(pts), float(widths[i])))
    p = np.array([-0.40, -0.30])
    a = -0.85 + rng.uniform(-0.25, 0.2)
    seg = np.array([0.36, 0.30, 0.26]) * rng.uniform(0.92, 1.08)
    bend = rng.uniform(0.05, 0.3)
    pts = [p.copy()]
    for j in range(3):
        p = p + np.array([math.sin(a), -math.cos(a)]) * seg[j]
        pts.append(p.copy())
        a += bend
    thumb = (np.array(pts), 0.27 * float(rng.uniform(0.92, 1.08)))
    # the palm's skin reaches past the knuckles (the webs between the fingers)
    palm = np.array([[-0.40, 0.02], [-0.52, -0.30], [-0.50, -0.80], [-0.46, -1.10], [-0.24, -1.22], [0.0, -1.26],
                     [0.22, -1.22], [0.42, -1.10], [0.48, -0.85], [0.48, -0.45], [0.42, 0.02]])
    return palm, fingers, thumb


def _shade(mask: np.ndarray, light: np.ndarray, skin: np.ndarray, scale: float) -> np.ndarray:
    """Cylinder-like shading of one part: brighter away from its outline, a directional term near
    the outline, a darker rim."""
    import cv2

    d = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 5)
    inner = np.sqrt(np.clip(d / max(0.12 * scale, 1.5), 0, 1))
    gx = cv2.Sobel(d, cv2.CV_32F, 1, 0, ksize=5)
    gy = cv2.Sobel(d, cv2.CV_32F, 0, 1, ksize=5)
    lam = (gx * light[0] + gy * light[1]) / (np.sqrt(gx ** 2 + gy ** 2) + 1e-6)
    bright = 0.5 + 0.4 * inner + 0.15 * lam * (1 - inner)
    rim = np.clip(1 - d / 1.8, 0, 1) * (mask > 0)
    return skin[None, None, :] * (bright * (1 - 0.3 * rim))[..., None]


BACKGROUNDS = ("plain", "gradient", "wood", "speckle", "checker")


def texture_background(rng: np.random.Generator, width: int = 640, height: int = 480, kind: str | None = None
                       ) -> np.ndarray:
    """Plain, gradient, or a tiled simulator texture (wood, speckle, checker) at a random scale."""
    import cv2

    from dream2flow.sim import textures as tx

    def colour() -> np.ndarray:
        return np.asarray(tx.random_colour(rng, (0, 1), (0.1, 0.6), (0.3, 0.9)))

    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))] if kind is None else kind
    if kind == "plain":
        return np.broadcast_to((colour() * 255).astype(np.uint8), (height, width, 3)).copy()
    if kind == "gradient":
        t = np.linspace(0, 1, height)[:, None, None] * np.ones((1, width, 1))
        return (colour() * 255 * (1 - t) + colour() * 255 * t).astype(np.uint8)
    c = tuple(colour())
    if kind == "wood":
        tile = tx.wood(rng, c, size=256)
    elif kind == "speckle":
        tile = tx.speckle(rng, c, cells=int(rng.integers(6, 20)), size=256, contrast=0.3)
    else:
        tile = tx.checker(rng, c, tuple(colour()), cells=int(rng.integers(4, 12)), size=256)
    k = float(rng.uniform(1.0, 3.0))
    tile = cv2.resize(tile, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR)
    reps = (height // tile.shape[0] + 1, width // tile.shape[1] + 1, 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])


def _lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.asarray(rgb, np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)


def draw_hand(rng: np.random.Generator, *, scale_px: float, angle_rad: float, background: np.ndarray | None = None,
              width: int = 640, height: int = 480, mirror: bool | None = None, back: bool | None = None,
              margin_px: float = 12.0, max_tries: int = 20, background_kind: str | None = None) -> DrawnHand:
    """One hand, ``scale_px`` pixels per palm width, rotated by ``angle_rad`` (0 = fingers up,
    positive = clockwise on screen), placed at a random position where the whole hand (not
    necessarily the forearm) is inside the image. ``background`` defaults to ``texture_background``;
    with a given background only the skin tone is redrawn for contrast."""
    import cv2

    palm, fingers, thumb = _skeleton(rng)
    mirror = bool(rng.integers(2)) if mirror is None else mirror
    back = bool(rng.integers(2)) if back is None else back
    if background is not None:
        height, width = background.shape[:2]
    sx = -1.0 if mirror else 1.0
    R = _rot(angle_rad)

    def local(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, float) * np.array([sx, 1.0])) @ R.T * scale_px

    ext = local(np.vstack([palm] + [f for f, _ in fingers] + [thumb[0]]))
    pad = 0.16 * scale_px + margin_px
    lo = -ext.min(0) + pad
    hi = np.array([width, height]) - ext.max(0) - pad
    if np.any(hi < lo):
        raise ValueError(f"a hand of {scale_px} px per palm width does not fit a {width}x{height} image")
    center = rng.uniform(lo, hi)

    def tf(p: np.ndarray) -> np.ndarray:
        return local(p) + center

    def fx(p: np.ndarray) -> tuple[int, int]:  # fixed-point (4 fractional bits) for sub-pixel drawing
        q = np.round(np.asarray(p) * 16).astype(int)
        return int(q[0]), int(q[1])

    arm_len, arm_w = rng.uniform(1.2, 3.0), rng.uniform(0.8, 0.95)
    arm = np.array([[-0.42, 0.0], [0.42, 0.0], [arm_w * 0.55, arm_len], [-arm_w * 0.55, arm_len]])
    hand_mask = np.zeros((height, width), np.uint8)
    for poly in (arm, palm):  # one call per polygon: a single call leaves a seam where they meet
        cv2.fillPoly(hand_mask, [np.round(tf(poly) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)

    def capsule(pts: np.ndarray, w: float, taper: float) -> np.ndarray:
        m = np.zeros((height, width), np.uint8)
        P = tf(pts)
        r = w * scale_px / 2
        for k, (a, b) in enumerate(zip(P[:-1], P[1:])):
            rk = r * (1 - taper * k)
            cv2.line(m, fx(a), fx(b), 255, max(1, int(round(2 * rk))), cv2.LINE_AA, shift=4)
            cv2.circle(m, fx(a), int(round(rk * 16)), 255, -1, cv2.LINE_AA, shift=4)
        cv2.circle(m, fx(P[-1]), int(round(r * (1 - taper * (len(P) - 2)) * 16)), 255, -1, cv2.LINE_AA, shift=4)
        return m

    parts = [(hand_mask, None)] + [(capsule(f, w, 0.1), (f, w)) for f, w in fingers]
    parts.append((capsule(thumb[0], thumb[1], 0.06), thumb))
    union = np.max(np.stack([m for m, _ in parts]), axis=0)
    ring = cv2.dilate(union, np.ones((15, 15), np.uint8)) & ~cv2.dilate(union, np.ones((3, 3), np.uint8))

    for _ in range(max_tries):  # skin tone (and background) with enough contrast
        kind = "given" if background is not None else (
            background_kind or BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
        bg = background if background is not None else texture_background(rng, width, height, kind)
        skin_id = int(rng.integers(len(SKIN_RGB)))
        skin = np.asarray(SKIN_RGB[skin_id], np.float64) * rng.uniform(0.9, 1.1)
        skin = np.clip(skin, 0, 255)
        contrast = float(np.linalg.norm(_lab(skin)[0] - _lab(bg[ring > 0]).mean(0)))
        if contrast >= MIN_CONTRAST:
            break
    else:
        raise ValueError("no skin tone with enough contrast to this background")

    light = _rot(rng.uniform(0, 2 * math.pi)) @ np.array([1.0, 0.0])
    img = bg.astype(np.float32)
    for m, meta in parts:
        a = (m.astype(np.float32) / 255)[..., None]
        img = img * (1 - a) + _shade(m, light, skin.astype(np.float32), scale_px) * a
        if meta is None:
            continue
        P, r = tf(meta[0]), meta[1] * scale_px / 2
        crease = tuple(float(c) for c in skin * 0.6)
        for k in range(1, len(P) - 1):  # joint creases
            d = P[k + 1] - P[k - 1]
            d /= np.linalg.norm(d) + 1e-9
            n = np.array([-d[1], d[0]])
            cv2.line(img, fx(P[k] - n * r * 0.7), fx(P[k] + n * r * 0.7), crease, 1, cv2.LINE_AA, shift=4)
        if back:  # a nail on the distal segment
            d = P[-1] - P[-2]
            d /= np.linalg.norm(d) + 1e-9
            ang = math.degrees(math.atan2(d[1], d[0]))
            nail = tuple(float(x) for x in 0.8 * skin + 0.2 * np.array([250.0, 205.0, 200.0]))  # pinkish, not white
            cv2.ellipse(img, fx(P[-1] - d * r * 0.5), (int(r * 0.6 * 16), int(r * 0.5 * 16)), ang, 0, 360, nail, -1,
                        cv2.LINE_AA, shift=4)
    if not back:  # palm creases (quadratic curves)
        t = np.linspace(0, 1, 20)[:, None]
        for p0, p1, p2 in (((-0.48, -0.62), (-0.1, -0.72), (0.45, -0.8)), ((-0.48, -0.5), (-0.1, -0.45), (0.3, -0.55)),
                           ((-0.3, -0.35), (-0.2, -0.15), (-0.12, 0.0))):
            P = tf(np.array([p0, p1, p2]))
            curve = (1 - t) ** 2 * P[0] + 2 * (1 - t) * t * P[1] + t ** 2 * P[2]
            cv2.polylines(img, [np.round(curve * 16).astype(np.int32)], False, tuple(float(c) for c in skin * 0.75), 1,
                          cv2.LINE_AA, shift=4)
    img = img + rng.normal(0, 2.5, img.shape)
    img = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (3, 3), 0)
    return DrawnHand(img, tf(thumb[0][-1]).astype(np.float32),
                     dict(scale_px=scale_px, angle_deg=math.degrees(angle_rad), mirror=mirror, back=back,
                          contrast=contrast, skin=skin_id, background=kind))


def hand_free_images(rng: np.random.Generator, n: int, width: int = 640, height: int = 480) -> list[np.ndarray]:
    """Texture backgrounds with a few skin-free distractors (ellipses, bars, blobs) but no hand."""
    import cv2

    out = []
    for _ in range(n):
        img = texture_background(rng, width, height)
        for _ in range(int(rng.integers(0, 5))):
            col = tuple(int(c) for c in rng.integers(0, 256, 3))
            c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            if rng.random() < 0.5:
                cv2.ellipse(img, c, (int(rng.integers(10, 80)), int(rng.integers(10, 80))), float(rng.uniform(0, 180)),
                            0, 360, col, -1, cv2.LINE_AA)
            else:
                cv2.rectangle(img, c, (c[0] + int(rng.integers(10, 120)), c[1] + int(rng.integers(10, 120))), col, -1)
        out.append(img)
    return out
