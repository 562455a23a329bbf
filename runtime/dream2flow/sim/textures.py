"""Seeded procedural textures (PNG bytes for MuJoCo's ``assets`` dict).

Why: point tracking (Lucas-Kanade, or a learned tracker) needs texture with corners at the
scale of a few pixels, and segmentation needs the moving part to differ in colour from what
surrounds it. MuJoCo maps a ``cube`` texture with ``texuniform="false"`` once onto each face
of a box, stretched to the face: so ``cells`` (blocks per face) sets the pattern's scale and the
pattern follows the geometry when a generated video morphs the object (tested).
"""

from __future__ import annotations

import numpy as np


def png_bytes(rgb: np.ndarray) -> bytes:
    """[H,W,3] uint8 RGB -> PNG file bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _upsample(grid: np.ndarray, size: int, smooth: bool) -> np.ndarray:
    import cv2

    interp = cv2.INTER_CUBIC if smooth else cv2.INTER_NEAREST
    return cv2.resize(grid, (size, size), interpolation=interp)


def speckle(rng: np.random.Generator, base_rgb: tuple[float, float, float], *, cells: int = 12,
            size: int = 128, contrast: float = 0.45, alt_rgb: tuple[float, float, float] | None = None) -> np.ndarray:
    """High-frequency blotchy pattern around ``base_rgb`` (0..1): blocks of ``cells`` per side, finer
    noise on top, and a second colour ``alt_rgb`` in random patches. -> [size,size,3] uint8."""
    cells = int(np.clip(cells, 2, size))
    base = np.asarray(base_rgb, dtype=np.float32)
    alt = np.asarray(alt_rgb if alt_rgb is not None else 1.0 - base, dtype=np.float32)
    blocks = _upsample(rng.random((cells, cells)).astype(np.float32), size, smooth=False)
    fine = _upsample(rng.random((cells * 2, cells * 2)).astype(np.float32), size, smooth=False)
    coarse = _upsample(rng.random((max(2, cells // 3), max(2, cells // 3))).astype(np.float32), size, smooth=True)
    mix = (coarse > 0.62)[..., None].astype(np.float32)
    shade = 1.0 + contrast * (0.7 * (blocks - 0.5) + 0.6 * (fine - 0.5))
    img = (base * (1 - mix) + alt * mix) * shade[..., None]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def wood(rng: np.random.Generator, base_rgb: tuple[float, float, float], *, size: int = 256,
         rings: float = 18.0) -> np.ndarray:
    """Wood-grain-like stripes with noise (table tops). -> [size,size,3] uint8."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    warp = _upsample(rng.random((6, 6)).astype(np.float32), size, smooth=True)
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (rings * y + 3.0 * warp + 0.3 * x))
    fine = _upsample(rng.random((size // 4, size // 4)).astype(np.float32), size, smooth=False)
    shade = 0.78 + 0.18 * grain + 0.10 * (fine - 0.5)
    img = np.asarray(base_rgb, dtype=np.float32) * shade[..., None]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def checker(rng: np.random.Generator, rgb1: tuple[float, float, float], rgb2: tuple[float, float, float], *,
            cells: int = 16, size: int = 256, noise: float = 0.08) -> np.ndarray:
    """A checkerboard with per-pixel-block noise (table tops, walls). -> [size,size,3] uint8."""
    y, x = np.mgrid[0:size, 0:size]
    board = ((x * cells // size + y * cells // size) % 2).astype(np.float32)[..., None]
    img = np.asarray(rgb1, np.float32) * board + np.asarray(rgb2, np.float32) * (1 - board)
    fine = _upsample(rng.random((size // 4, size // 4)).astype(np.float32), size, smooth=False)
    img = img * (1.0 + noise * (fine[..., None] - 0.5))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def random_colour(rng: np.random.Generator, hue_range: tuple[float, float], sat: tuple[float, float],
                  val: tuple[float, float]) -> tuple[float, float, float]:
    """An RGB colour (0..1) drawn in HSV ranges (hue in 0..1, wraps)."""
    import colorsys

    h = float(rng.uniform(*hue_range)) % 1.0
    return colorsys.hsv_to_rgb(h, float(rng.uniform(*sat)), float(rng.uniform(*val)))
