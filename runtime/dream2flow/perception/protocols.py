"""The perception interfaces (DESIGN.md "Contracts"). Each has classical (OpenCV) and/or ONNX
implementations; the flow stage only depends on these protocols, so a backend can be swapped
without touching lifting or planning.

Every implementation carries a ``name`` (what ``ObjectFlow.meta["backends"]`` records), so a
classical backend is never passed off as a foundation model.

Conventions: images are RGB uint8 ``[H,W,3]``; videos ``[T,H,W,3]`` uint8 (or a
``dream2flow.types.Video``); pixel coordinates are ``(x, y)`` = (column, row) with the centre
of the top-left pixel at (0, 0); boxes are ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol, Union, runtime_checkable

import numpy as np

from dream2flow.types import Video

if TYPE_CHECKING:  # shape annotations only
    from jaxtyping import Bool, Float, UInt8

Box = tuple[float, float, float, float]
"""(x0, y0, x1, y1) pixels, x1/y1 exclusive."""

VideoLike = Union[Video, np.ndarray]
"""A ``Video`` or its frames ``[T,H,W,3]`` uint8 RGB."""


def video_frames(video: VideoLike) -> np.ndarray:
    """The frames ``[T,H,W,3]`` uint8 of a ``Video`` or of a bare array (no copy)."""
    frames = video.frames if isinstance(video, Video) else np.asarray(video)
    if frames.ndim != 4 or frames.shape[3] != 3:
        from dream2flow.errors import InvalidInput

        raise InvalidInput(f"video frames must be [T,H,W,3], got {list(frames.shape)}")
    return frames


class Detections(NamedTuple):
    """Detector output: ``boxes`` [k,4] float32 (x0,y0,x1,y1 px), ``scores`` [k] float32 in [0,1],
    sorted by score, best first. ``k`` may be 0 (nothing found). A NamedTuple, so
    ``boxes, scores = detector(image, text)`` works too."""

    boxes: Float[np.ndarray, "k 4"]
    scores: Float[np.ndarray, "k"]


class Tracks(NamedTuple):
    """PointTracker output: ``tracks_px`` [T,n,2] float32 (x, y) pixels, ``visible`` [T,n] bool.
    Arrays are always full: a point that is lost or leaves the frame keeps a row (its last
    estimate, possibly outside the image) and is marked invisible, never deleted. A NamedTuple,
    so ``tracks_px, visible = tracker(video, query_px)`` works too. Row 0 equals the queries
    and is visible."""

    tracks_px: Float[np.ndarray, "T n 2"]
    visible: Bool[np.ndarray, "T n"]


def validate_box(box: Box, width: int, height: int, *, min_size_px: float = 4.0,
                 tolerance_px: float = 1.0) -> tuple[float, float, float, float]:
    """Check a box against an image of ``width`` x ``height``: four finite numbers, x0 < x1, y0 < y1,
    inside the image (a box poking out by at most ``tolerance_px`` is clipped, e.g. rounding), at
    least ``min_size_px`` on each side. Returns the (clipped) box; ``InvalidInput`` otherwise."""
    from dream2flow.errors import InvalidInput

    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InvalidInput(f"box must be 4 numbers x0,y0,x1,y1, got {box!r}") from None
    if not np.isfinite([x0, y0, x1, y1]).all():
        raise InvalidInput(f"box must be finite, got {box!r}")
    if not (x1 > x0 and y1 > y0):
        raise InvalidInput(f"box ({x0:g},{y0:g},{x1:g},{y1:g}) is empty or inverted: need x0 < x1 and y0 < y1")
    tol = float(tolerance_px)
    if x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
        raise InvalidInput(f"box ({x0:g},{y0:g},{x1:g},{y1:g}) is not inside the {width}x{height} image")
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if x1 - x0 < min_size_px or y1 - y0 < min_size_px:
        raise InvalidInput(f"box ({x0:g},{y0:g},{x1:g},{y1:g}) is smaller than {min_size_px:g} px on a side")
    return x0, y0, x1, y1


@runtime_checkable
class Detector(Protocol):
    """Open-vocabulary detection: image + text prompt -> boxes and scores."""

    name: str

    def __call__(self, image: UInt8[np.ndarray, "H W 3"], text: str) -> Detections: ...


@runtime_checkable
class Segmenter(Protocol):
    """Box-prompted segmentation: image + box (+ optional depth) -> boolean mask ``[H,W]``.

    ``depth_m`` is the robot camera's metric depth of the same view (``[H,W]`` float32 metres
    along the optical axis, aligned with ``image``; 0 or NaN = invalid). The robot always has
    it (D0), so callers pass it; a segmenter that does not use depth accepts and ignores it.
    Raises ``PerceptionFailed`` when the mask would be empty, ``InvalidInput`` for a bad box
    or a depth map of another size."""

    name: str

    def __call__(self, image: UInt8[np.ndarray, "H W 3"], box: Box,
                 depth_m: Float[np.ndarray, "H W"] | None = None) -> Bool[np.ndarray, "H W"]: ...


@runtime_checkable
class PointTracker(Protocol):
    """Track query points (given in frame 0) through a video -> ``Tracks`` (full [T,n] arrays)."""

    name: str

    def __call__(self, video: VideoLike, query_px: Float[np.ndarray, "n 2"]) -> Tracks: ...


@runtime_checkable
class VideoDepth(Protocol):
    """Per-frame relative depth ``[T,H,W]`` float32: an unknown affine (scale, shift) of metric
    depth along the optical axis; larger = farther. Non-finite values mark invalid pixels."""

    name: str

    def __call__(self, video: VideoLike) -> Float[np.ndarray, "T H W"]: ...


@runtime_checkable
class HandDetector(Protocol):
    """Thumb tip (or hand contact point) per frame: ``[T,2]`` float32 pixels with NaN rows where
    no hand is seen, or ``None`` when no hand appears at all."""

    name: str

    def __call__(self, video: VideoLike) -> Float[np.ndarray, "T 2"] | None: ...


__all__ = [
    "Box", "VideoLike", "video_frames", "validate_box", "Detections", "Tracks",
    "Detector", "Segmenter", "PointTracker", "VideoDepth", "HandDetector",
]
