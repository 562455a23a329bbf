"""Decode and validate a task video (MP4 / AVI / a folder of images) into a ``Video``.

Why so strict: the video comes from outside (an upload, a URL, a generator endpoint). A file
that is empty, truncated, corrupted, huge, or at another aspect ratio than the camera would
silently give a wrong flow downstream, so every such case is an ``InvalidInput`` with one
sentence saying what is wrong. Frames come out RGB uint8 at the camera's resolution.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.log import get_logger
from dream2flow.types import Video

_log = get_logger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

DEFAULT_MAX_BYTES = 512 * 1024 * 1024  # encoded file (or folder) size
DEFAULT_MAX_FRAMES = 1000
DEFAULT_MAX_DECODED_BYTES = 4 * 1024 * 1024 * 1024  # T*H*W*3 after decoding
DEFAULT_FOLDER_FPS = 10.0
MAX_FPS = 1000.0


def load_video(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_frames: int = DEFAULT_MAX_FRAMES,
    min_frames: int = 2,
    expect_size: tuple[int, int] | None = None,
    resize: bool = True,
    aspect_tolerance: float = 0.01,
    fps: float | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> Video:
    """Read ``path`` (a video file or a folder of images, sorted by name) -> ``Video``.

    ``expect_size`` = (W, H) of the camera: frames of exactly that size pass; otherwise, when
    ``resize`` and the aspect ratios agree within ``aspect_tolerance`` (relative), every frame is
    resized to (W, H) (both axes scaled, so pixel coordinates stay consistent with the camera's
    K); any other mismatch is refused. ``fps`` overrides the file's frame rate (a folder has
    none: default 10). Limits: ``max_bytes`` on disk, ``max_frames``, ``max_decoded_bytes`` in
    memory; fewer than ``min_frames`` decodable frames is an error (a flow needs motion).
    """
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"video not found: {p}")
    if fps is not None and not (np.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise InvalidInput(f"video fps must be in (0, {MAX_FPS:g}], got {fps}")
    if expect_size is not None:
        ew, eh = int(expect_size[0]), int(expect_size[1])
        if ew <= 0 or eh <= 0:
            raise InvalidInput(f"expected video size must be positive, got {expect_size}")
    if p.is_dir():
        frames_iter, file_fps, declared = _folder_frames(p, max_bytes)
    else:
        frames_iter, file_fps, declared = _file_frames(p, max_bytes)
    out_fps = float(fps) if fps is not None else file_fps
    if not (np.isfinite(out_fps) and 0 < out_fps <= MAX_FPS):
        raise InvalidInput(f"video {p}: frame rate {out_fps} is not usable (pass fps explicitly)")

    frames: list[np.ndarray] = []
    src_size: tuple[int, int] | None = None
    dst_size: tuple[int, int] | None = None
    for i, bgr in enumerate(frames_iter):
        if i >= max_frames:
            raise InvalidInput(f"video {p} has more than {max_frames} frames (the limit)")
        h, w = bgr.shape[:2]
        if src_size is None:
            src_size = (w, h)
            dst_size = _target_size(p, src_size, expect_size, resize, aspect_tolerance)
            per_frame = dst_size[0] * dst_size[1] * 3
            if per_frame * min(max_frames, max(declared, 1)) > max_decoded_bytes:
                raise InvalidInput(f"video {p}: {declared} frames of {dst_size[0]}x{dst_size[1]} exceed the "
                                   f"decoded-size limit of {max_decoded_bytes} bytes")
        elif (w, h) != src_size:
            raise InvalidInput(f"video {p}: frame {i} is {w}x{h} but frame 0 is {src_size[0]}x{src_size[1]}")
        assert dst_size is not None
        if (len(frames) + 1) * dst_size[0] * dst_size[1] * 3 > max_decoded_bytes:
            raise InvalidInput(f"video {p}: decoded frames exceed the limit of {max_decoded_bytes} bytes")
        frames.append(_to_rgb(bgr, dst_size))

    if not frames:
        raise InvalidInput(f"video {p} has no decodable frames (empty, truncated or corrupted)")
    if declared > 0 and len(frames) < declared:
        raise InvalidInput(f"video {p} is truncated or corrupted: its header declares {declared} frames "
                           f"but only {len(frames)} decode")
    if len(frames) < min_frames:
        raise InvalidInput(f"video {p} has {len(frames)} frame(s); at least {min_frames} are needed")
    if src_size != dst_size:
        _log.info("video %s resized from %dx%d to %dx%d", p, *src_size, *dst_size)  # type: ignore[misc]
    return Video(frames=np.stack(frames), fps=out_fps)


def _target_size(p: Path, src: tuple[int, int], expect: tuple[int, int] | None, resize: bool,
                 tol: float) -> tuple[int, int]:
    if expect is None or tuple(expect) == src:
        return src
    ew, eh = int(expect[0]), int(expect[1])
    if not resize:
        raise InvalidInput(f"video {p} is {src[0]}x{src[1]} but the camera is {ew}x{eh} (resizing disabled)")
    a_src, a_dst = src[0] / src[1], ew / eh
    if abs(a_src / a_dst - 1.0) > tol:
        raise InvalidInput(f"video {p} is {src[0]}x{src[1]} (aspect {a_src:.3f}) but the camera is {ew}x{eh} "
                           f"(aspect {a_dst:.3f}); refusing to stretch it")
    return ew, eh


def _to_rgb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if img.dtype != np.uint8:
        raise InvalidInput(f"video frames must be 8-bit, got {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if (img.shape[1], img.shape[0]) != size:
        interp = cv2.INTER_AREA if size[0] < img.shape[1] else cv2.INTER_LINEAR
        img = cv2.resize(img, size, interpolation=interp)
    return np.ascontiguousarray(img[:, :, ::-1])


def _check_bytes(p: Path, nbytes: int, max_bytes: int) -> None:
    if nbytes == 0:
        raise InvalidInput(f"video {p} is empty (0 bytes)")
    if nbytes > max_bytes:
        raise InvalidInput(f"video {p} is {nbytes} bytes, above the limit of {max_bytes}")


def quiet_opencv() -> None:
    """Keep FFmpeg's and OpenCV's own log lines ("moov atom not found", ...) off stderr, so a bad
    file gives our one clear line only. Respects the user's OPENCV_* settings if present."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg starts
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _file_frames(p: Path, max_bytes: int) -> tuple[Iterator[np.ndarray], float, int]:
    import cv2

    quiet_opencv()

    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise InvalidInput(f"video {p}: unsupported file type '{p.suffix}' "
                           f"(use {', '.join(VIDEO_SUFFIXES)} or a folder of images)")
    _check_bytes(p, p.stat().st_size, max_bytes)
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise InvalidInput(f"video {p} could not be opened (corrupted, truncated, or an unknown codec)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if declared < 0:
        declared = 0

    def gen() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                yield frame
        finally:
            cap.release()

    return gen(), fps, declared


def _folder_frames(p: Path, max_bytes: int) -> tuple[Iterator[np.ndarray], float, int]:
    import cv2

    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InvalidInput(f"video folder {p} contains no images ({', '.join(IMAGE_SUFFIXES)})")
    _check_bytes(p, sum(f.stat().st_size for f in files), max_bytes)

    def gen() -> Iterator[np.ndarray]:
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise InvalidInput(f"video folder {p}: image {f.name} could not be decoded (corrupted?)")
            yield img

    return gen(), DEFAULT_FOLDER_FPS, len(files)
