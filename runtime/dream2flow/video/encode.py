"""Write RGB frames to an MP4 (OpenCV's 'mp4v' codec: available in every opencv wheel, no GPL
encoder needed). Used for the tracks picture, by tests, and by the simulator's video."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dream2flow.errors import InvalidInput


def write_video(path: str | Path, frames: np.ndarray, fps: float, *, fourcc: str = "mp4v") -> Path:
    """``frames`` [T,H,W,3] uint8 RGB -> video file at ``path`` (container from the suffix)."""
    import cv2

    from dream2flow.video.decode import quiet_opencv

    quiet_opencv()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise InvalidInput(f"frames must be [T,H,W,3] uint8 with T >= 1, got {frames.dtype} {list(frames.shape)}")
    if not (np.isfinite(fps) and fps > 0):
        raise InvalidInput(f"fps must be positive, got {fps}")
    p = Path(path)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*fourcc), float(fps), (int(w), int(h)))
    if not writer.isOpened():
        raise OSError(f"could not open a video writer for {p} ({fourcc}, {w}x{h})")
    try:
        for f in frames:
            writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    finally:
        writer.release()
    if not p.is_file() or p.stat().st_size == 0:
        raise OSError(f"video writer produced no file at {p}")
    return p
