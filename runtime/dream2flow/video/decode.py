"""Decode and validate a task video (MP4 / AVI / a folder of images) into a ``Video``.

Why so strict: the video comes from outside (an upload, a URL, a generator endpoint). A file
that is empty, truncated, corrupted, huge, or at another aspect ratio than the camera would
silently give a wrong flow downstream, so every such case is an ``InvalidInput`` with one
sentence saying what is wrong. Frames come out RGB uint8 at the camera's resolution.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.log import get_logger
from dream2flow.types import Video

if TYPE_CHECKING:
    from dream2flow.video.fit import Fit

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
    fit: str | None = None,
) -> Video:
    """Read ``path`` (a video file or a folder of images, sorted by name) -> ``Video``.

    ``expect_size`` = (W, H) of the camera: frames of exactly that size pass; otherwise, when
    ``resize`` and the aspect ratios agree within ``aspect_tolerance`` (relative), every frame is
    resized to (W, H) (both axes scaled, so pixel coordinates stay consistent with the camera's
    K); another aspect ratio needs ``fit`` = ``crop`` | ``letterbox`` (``video.fit``), else it is
    refused, never stretched. ``fps`` overrides the file's frame rate (a folder has
    none: default 10). Limits: ``max_bytes`` on disk, ``max_frames``, ``max_decoded_bytes`` in
    memory; fewer than ``min_frames`` decodable frames is an error (a flow needs motion).
    ``load_video_fit`` also returns the ``Fit`` that was applied.
    """
    return load_video_fit(path, max_bytes=max_bytes, max_frames=max_frames, min_frames=min_frames,
                          expect_size=expect_size, resize=resize, aspect_tolerance=aspect_tolerance, fps=fps,
                          max_decoded_bytes=max_decoded_bytes, fit=fit)[0]


def load_video_fit(
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
    fit: str | None = None,
) -> "tuple[Video, Fit]":
    """``load_video`` that also returns the ``video.fit.Fit`` mapping its pixels into the camera's."""
    from dream2flow.video.fit import plan_fit

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
    plan = None
    for i, bgr in enumerate(frames_iter):
        if i >= max_frames:
            raise InvalidInput(f"video {p} has more than {max_frames} frames (the limit)")
        h, w = bgr.shape[:2]
        if src_size is None:
            src_size = (w, h)
            if expect_size is not None and tuple(expect_size) != src_size and not resize:
                raise InvalidInput(f"video {p} is {w}x{h} but the camera is {expect_size[0]}x{expect_size[1]} "
                                   "(resizing disabled)")
            plan = plan_fit(src_size, expect_size if expect_size is not None else src_size, fit,
                            aspect_tolerance=aspect_tolerance, what=f"video {p}")
            dst_size = plan.dst_wh
            per_frame = dst_size[0] * dst_size[1] * 3
            if per_frame * min(max_frames, max(declared, 1)) > max_decoded_bytes:
                raise InvalidInput(f"video {p}: {declared} frames of {dst_size[0]}x{dst_size[1]} exceed the "
                                   f"decoded-size limit of {max_decoded_bytes} bytes")
        elif (w, h) != src_size:
            raise InvalidInput(f"video {p}: frame {i} is {w}x{h} but frame 0 is {src_size[0]}x{src_size[1]}")
        assert dst_size is not None
        if (len(frames) + 1) * dst_size[0] * dst_size[1] * 3 > max_decoded_bytes:
            raise InvalidInput(f"video {p}: decoded frames exceed the limit of {max_decoded_bytes} bytes")
        frames.append(_to_rgb(bgr, plan))

    if not frames:
        raise InvalidInput(f"video {p} has no decodable frames (empty, truncated or corrupted)")
    if declared > 0 and len(frames) < declared:
        raise InvalidInput(f"video {p} is truncated or corrupted: its header declares {declared} frames "
                           f"but only {len(frames)} decode")
    if len(frames) < min_frames:
        raise InvalidInput(f"video {p} has {len(frames)} frame(s); at least {min_frames} are needed")
    assert plan is not None
    if not plan.identity:
        _log.info("video %s: %dx%d fitted to %dx%d (%s)", p, *plan.src_wh, *plan.dst_wh, plan.mode)
    return Video(frames=np.stack(frames), fps=out_fps), plan


def _to_rgb(img: np.ndarray, plan: "Fit") -> np.ndarray:
    import cv2

    if img.dtype != np.uint8:
        raise InvalidInput(f"video frames must be 8-bit, got {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(plan.apply(img)[:, :, ::-1])


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
