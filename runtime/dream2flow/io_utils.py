"""File helpers shared by commands: all-or-nothing output folders and image/depth readers."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from dream2flow.errors import InvalidInput

if TYPE_CHECKING:  # shape annotations only; no runtime cost
    from jaxtyping import Bool


@contextlib.contextmanager
def staged_output(out_dir: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out_dir``; on success move its files into ``out_dir``
    (created if needed), on any error delete it. So a failed command writes no partial output."""
    out = Path(out_dir)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    out.mkdir(parents=True, exist_ok=True)
    for item in sorted(tmp.iterdir()):
        dest = out / item.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        item.replace(dest)
    shutil.rmtree(tmp, ignore_errors=True)


def read_rgb(path: str | Path) -> np.ndarray:
    """An 8-bit colour image file -> [H,W,3] uint8 RGB."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"image not found: {p}")
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInput(f"image {p} could not be decoded (not a PNG/JPEG, or corrupted)")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def write_rgb(path: str | Path, rgb: np.ndarray) -> Path:
    import cv2

    p = Path(path)
    if not cv2.imwrite(str(p), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise OSError(f"could not write image {p}")
    return p


def read_npy(path: str | Path, what: str) -> np.ndarray:
    """A ``.npy`` array (never pickled objects); a file NumPy cannot read is ``InvalidInput``
    naming ``what`` and the file."""
    p = Path(path)
    try:
        return np.load(p, allow_pickle=False)
    except Exception as exc:
        raise InvalidInput(f"{what} {p} is not a readable .npy ({type(exc).__name__})") from None


def read_mask(path: str | Path, shape: tuple[int, int]) -> Bool[np.ndarray, "H W"]:
    """A binary mask (``.npy`` or an image; nonzero = object) of the image's ``shape`` (H, W)."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"mask not found: {p}")
    if p.suffix.lower() == ".npy":
        m = read_npy(p, "mask")
    else:
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise InvalidInput(f"mask {p} could not be decoded")
    m = np.asarray(m) != 0
    if m.shape != tuple(shape):
        raise InvalidInput(f"mask {p} is {list(m.shape)}, the image is {list(shape)}")
    return m


def read_depth(path: str | Path, depth_scale_m: float | None = None) -> np.ndarray:
    """Depth file -> [H,W] float32 metres, 0 = invalid. ``.npy`` float metres, or a 16-bit PNG in
    millimetres (or in units of ``depth_scale_m`` when the camera file gives one)."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"depth file not found: {p}")
    if p.suffix.lower() == ".npy":
        d = read_npy(p, "depth")
        if d.ndim != 2 or not np.issubdtype(d.dtype, np.floating):
            raise InvalidInput(f"depth {p} must be a 2D float array in metres, got {d.dtype} {list(d.shape)}")
        d = d.astype(np.float32)
    elif p.suffix.lower() == ".png":
        d = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if d is None or d.ndim != 2 or d.dtype != np.uint16:
            raise InvalidInput(f"depth {p} must be a single-channel 16-bit PNG (millimetres)")
        d = d.astype(np.float32) * np.float32(depth_scale_m if depth_scale_m else 0.001)
    else:
        raise InvalidInput(f"depth {p}: unsupported format '{p.suffix}' (use .npy metres or 16-bit .png millimetres)")
    d = np.where(np.isfinite(d) & (d > 0), d, 0).astype(np.float32)
    return d
