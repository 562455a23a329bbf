"""Classical (OpenCV) perception backends: GrabCut segmentation, query-point sampling, pyramidal
Lucas-Kanade tracking, and a "given" video depth. They work today on a CPU with no model files;
the exported foundation models plug into the same protocols (``perception.protocols``).

Names (recorded in ``ObjectFlow.meta``) say what they are: ``classical_grabcut``,
``classical_lk``, ``given_video_depth`` -- never passed off as SAM / CoTracker / a depth model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from dream2flow.errors import InvalidInput, PerceptionFailed
from dream2flow.perception.classical_lk import ClassicalLKTracker
from dream2flow.perception.protocols import Box, VideoLike, validate_box, video_frames

if TYPE_CHECKING:
    from jaxtyping import Bool, Float, UInt8

LucasKanadeTracker = ClassicalLKTracker  # the name in the team API note


class GrabCutSegmenter:
    """Box -> object mask with OpenCV GrabCut (colour GMMs + graph cut), then the largest
    connected component. Deterministic: OpenCV's RNG (used by the GMM k-means) is seeded.
    Colour only: a ``depth_m`` argument is accepted (the ``Segmenter`` protocol) and ignored;
    ``RGBDSegmenter`` (``perception.rgbd_segmenter``) is the one that uses D0.

    GrabCut needs background colour samples outside the box, so a box covering (almost) the
    whole image is refused. It runs on a crop around the box (``context`` x the box size on
    each side, at least 16 px) for speed; the background model comes from that ring.
    """

    name = "classical_grabcut"

    def __init__(self, *, iterations: int = 5, seed: int = 0, context: float = 0.5, min_pixels: int = 20) -> None:
        if iterations < 1:
            raise InvalidInput(f"GrabCut iterations must be >= 1, got {iterations}")
        self.iterations = int(iterations)
        self.seed = int(seed)
        self.context = float(context)
        self.min_pixels = int(min_pixels)

    def __call__(self, image: UInt8[np.ndarray, "H W 3"], box: Box,
                 depth_m: Float[np.ndarray, "H W"] | None = None) -> Bool[np.ndarray, "H W"]:
        img = check_rgb(image)
        H, W = img.shape[:2]
        box_f = validate_box(box, W, H)
        win = crop_window(box_f, W, H, self.context)
        cx0, cy0, cx1, cy1 = win.crop
        ix0, iy0, ix1, iy1 = win.box
        gc_mask = np.zeros((cy1 - cy0, cx1 - cx0), np.uint8)
        rect = (ix0 - cx0, iy0 - cy0, ix1 - ix0, iy1 - iy0)
        fg = run_grabcut(img, win, gc_mask, self.iterations, self.seed, rect=rect)
        return finish_mask(fg, win, (H, W), box_f, self.min_pixels)


class CropWindow(NamedTuple):
    """Integer pixel boxes (x0, y0, x1, y1; x1/y1 exclusive) of the object box rounded outwards
    (``box``) and of the crop around it that GrabCut works on (``crop``)."""

    box: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]


def check_rgb(image: np.ndarray) -> np.ndarray:
    """The image as an [H,W,3] uint8 array, or ``InvalidInput``."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InvalidInput(f"segmenter image must be [H,W,3] uint8, got {img.dtype} {list(img.shape)}")
    return img


def crop_window(box_f: tuple[float, float, float, float], W: int, H: int, context: float) -> CropWindow:
    """The box rounded outwards and a crop ``context`` x its size (>= 16 px) larger on each side,
    clipped to the image. Refuses (``InvalidInput``) a box that leaves too little of the *image*
    outside it for a background model: < 2 % of the image or < 64 px. (The test is about the box
    against the image: a small box near a border has a small ring but plenty of background.)"""
    x0, y0, x1, y1 = box_f
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    ix1, iy1 = int(np.ceil(x1)), int(np.ceil(y1))
    bw, bh = ix1 - ix0, iy1 - iy0
    if W * H - bw * bh < max(64, 0.02 * W * H):
        raise InvalidInput(f"box ({x0:g},{y0:g},{x1:g},{y1:g}) covers (almost) the whole {W}x{H} image: "
                           "GrabCut needs background pixels outside the box")
    mx, my = max(16, int(context * bw)), max(16, int(context * bh))
    crop = (max(0, ix0 - mx), max(0, iy0 - my), min(W, ix1 + mx), min(H, iy1 + my))
    return CropWindow((ix0, iy0, ix1, iy1), crop)


def run_grabcut(img: np.ndarray, win: CropWindow, gc_mask: np.ndarray, iterations: int, seed: int, *,
                rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """OpenCV GrabCut on ``win.crop`` of ``img`` (RGB), seeded. ``rect`` (crop coordinates) ->
    rectangle initialisation; otherwise ``gc_mask`` (crop-sized GC_* labels) is the prior.
    Returns the crop's foreground (GC_FGD | GC_PR_FGD) as bool; ``PerceptionFailed`` if OpenCV
    cannot model the colours (e.g. a uniform image)."""
    import cv2

    cx0, cy0, cx1, cy1 = win.crop
    crop = np.ascontiguousarray(img[cy0:cy1, cx0:cx1, ::-1])
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(int(seed))
    try:
        if rect is not None:
            cv2.grabCut(crop, gc_mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
        else:
            cv2.grabCut(crop, gc_mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error as exc:  # e.g. a uniform image: the GMM cannot be initialised
        x0, y0, x1, y1 = win.box
        raise PerceptionFailed(f"GrabCut failed on box ({x0},{y0},{x1},{y1}): "
                               f"{str(exc).strip().splitlines()[-1]}") from None
    return (gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)


def finish_mask(fg_crop: np.ndarray, win: CropWindow, shape: tuple[int, int],
                box_f: tuple[float, float, float, float], min_pixels: int, *, largest: bool = True) -> np.ndarray:
    """The crop's foreground (its largest connected component if ``largest``) pasted into a
    full-size mask; ``PerceptionFailed`` if it has fewer than ``min_pixels`` pixels."""
    fg = largest_component(fg_crop) if largest else fg_crop
    if int(fg.sum()) < min_pixels:
        x0, y0, x1, y1 = box_f
        raise PerceptionFailed(f"segmentation of box ({x0:g},{y0:g},{x1:g},{y1:g}) found "
                               f"{int(fg.sum())} object pixels (mask empty); is there an object in the box?")
    cx0, cy0, cx1, cy1 = win.crop
    mask = np.zeros(shape, bool)
    mask[cy0:cy1, cx0:cx1] = fg
    return mask


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a bool mask (the mask itself if it has one or none)."""
    import cv2

    if not mask.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best


def sample_query_points(mask: Bool[np.ndarray, "H W"], n: int = 256, seed: int = 0, *, erode_px: int = 3,
                        max_candidates: int = 20000) -> Float[np.ndarray, "n 2"]:
    """``n`` query pixels (x, y) spread over ``mask``: farthest-point sampling over the mask's pixel
    centres, after eroding it by ``erode_px`` (points off the object's rim track and lift better;
    the erosion is skipped if it would leave too few pixels). Deterministic for a seed (it
    picks the first point and the candidate subset). A mask with fewer pixels than ``n``
    gives repeated points. Returns float32 [n,2]."""
    import cv2

    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise InvalidInput(f"mask must be [H,W], got {list(m.shape)}")
    if n < 1:
        raise InvalidInput(f"number of query points must be >= 1, got {n}")
    total = int(m.sum())
    if total == 0:
        raise PerceptionFailed("the object mask has no pixels: nothing to track")
    if erode_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        eroded = cv2.erode(m.astype(np.uint8), k).astype(bool)
        if int(eroded.sum()) >= max(n, 0.2 * total):
            m = eroded
    ys, xs = np.nonzero(m)
    cand = np.stack([xs, ys], axis=1).astype(np.float64)
    rng = np.random.default_rng(seed)
    if len(cand) > max_candidates:
        cand = cand[np.sort(rng.choice(len(cand), max_candidates, replace=False))]
    if n >= len(cand):
        idx = np.concatenate([rng.permutation(len(cand)) for _ in range(-(-n // len(cand)))])[:n]
        return cand[idx].astype(np.float32)
    chosen = np.empty(n, np.int64)
    chosen[0] = int(rng.integers(len(cand)))
    cx, cy = np.ascontiguousarray(cand[:, 0]), np.ascontiguousarray(cand[:, 1])
    bx, by = np.empty_like(cx), np.empty_like(cy)

    def sq_dist(i: int, out: np.ndarray) -> np.ndarray:
        # (x - xi)² + (y - yi)², in preallocated buffers (the loop runs n times over every candidate)
        np.subtract(cx, cx[i], out=bx)
        np.multiply(bx, bx, out=bx)
        np.subtract(cy, cy[i], out=by)
        np.multiply(by, by, out=by)
        return np.add(bx, by, out=out)

    d2 = sq_dist(int(chosen[0]), np.empty_like(cx))
    for k_ in range(1, n):
        i = int(np.argmax(d2))
        chosen[k_] = i
        np.minimum(d2, sq_dist(i, bx), out=d2)
    return cand[chosen].astype(np.float32)


class GivenVideoDepth:
    """A ``VideoDepth`` that returns a relative depth computed elsewhere (the simulator's video
    generator, a test, or a ``.npy`` from an offline model): ``rel_depth`` [T,H,W], larger =
    farther, non-finite = invalid. If its spatial size differs from the video's but the aspect
    ratio agrees (within ``aspect_tolerance``), it is resized to the video's size."""

    name = "given_video_depth"

    def __init__(self, rel_depth: Float[np.ndarray, "T H W"], *, resize: bool = True,
                 aspect_tolerance: float = 0.01) -> None:
        d = np.asarray(rel_depth)
        if d.ndim != 3 or d.shape[0] < 1 or 0 in d.shape:
            raise InvalidInput(f"video depth must be [T,H,W], got {list(d.shape)}")
        if not (np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.integer)):
            raise InvalidInput(f"video depth must be numeric, got {d.dtype}")
        self.rel_depth = d.astype(np.float32, copy=False)
        self.resize = resize
        self.aspect_tolerance = aspect_tolerance

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> "GivenVideoDepth":
        """Read a ``.npy`` float [T,H,W] relative depth."""
        p = Path(path)
        if not p.is_file():
            raise InvalidInput(f"video depth file not found: {p}")
        if p.suffix.lower() != ".npy":
            raise InvalidInput(f"video depth {p}: expected a .npy file of float [T,H,W]")
        from dream2flow.io_utils import read_npy

        d = read_npy(p, "video depth")
        if d.ndim != 3 or not np.issubdtype(d.dtype, np.floating):
            raise InvalidInput(f"video depth {p} must be float [T,H,W], got {d.dtype} {list(d.shape)}")
        return cls(d, **kwargs)

    def __call__(self, video: VideoLike) -> Float[np.ndarray, "T H W"]:
        import cv2

        frames = video_frames(video)
        T, H, W = frames.shape[:3]
        d = self.rel_depth
        if d.shape[0] != T:
            raise InvalidInput(f"video depth has {d.shape[0]} frames but the video has {T}")
        h, w = d.shape[1:]
        if (h, w) == (H, W):
            return d
        if not self.resize or abs((w / h) / (W / H) - 1.0) > self.aspect_tolerance:
            raise InvalidInput(f"video depth is {w}x{h} but the video is {W}x{H}"
                               + ("" if self.resize else " (resizing disabled)"))
        out = np.empty((T, H, W), np.float32)
        for t in range(T):
            bad = ~np.isfinite(d[t])
            src = np.where(bad, 0.0, d[t]).astype(np.float32)
            out[t] = cv2.resize(src, (W, H), interpolation=cv2.INTER_LINEAR)
            if bad.any():
                # any output pixel whose interpolation touched an invalid one is invalid
                badr = cv2.resize(bad.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR) > 0
                out[t][badr] = np.nan
        return out


__all__ = ["GrabCutSegmenter", "CropWindow", "check_rgb", "crop_window", "run_grabcut", "finish_mask",
           "largest_component", "sample_query_points", "ClassicalLKTracker", "LucasKanadeTracker", "GivenVideoDepth"]
