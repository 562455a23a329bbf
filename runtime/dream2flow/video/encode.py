"""Write RGB frames as an H.264 MP4 that people can open: browsers, GitHub, phones and every
player decode H.264 in yuv420p with the index at the front (``+faststart``); OpenCV's 'mp4v'
(MPEG-4 Part 2), which this replaced, plays almost nowhere outside OpenCV.

The encoder is the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships (libx264), driven
through a pipe: no system ffmpeg needed, on x86_64 and aarch64 (Jetson) alike. Every video the
runtime writes (tracks, the simulator's generated video, the demo's execution video) goes
through ``write_video``. ``fourcc=`` keeps OpenCV's writer for making *test inputs* in other
codecs (MJPG AVI, mp4v) only.

x264 is deterministic: the same frames and settings give the same bytes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dream2flow.errors import InvalidInput, NotReady

H264_SUFFIXES = (".mp4", ".mov", ".mkv")
CRF = 18              # visually lossless for these synthetic scenes; larger = smaller files
PRESET = "veryfast"   # encoding time matters more than a few % of size (the demo writes several videos)


def write_video(path: str | Path, frames: np.ndarray | Sequence[np.ndarray] | Iterable[np.ndarray], fps: float, *,
                fourcc: str | None = None, crf: int = CRF) -> Path:
    """``frames`` ([T,H,W,3] uint8 RGB, or a sequence of [H,W,3]) -> H.264 video at ``path``.
    Odd widths/heights are padded by one replicated pixel (4:2:0 needs even sizes)."""
    frames_list = [np.asarray(f) for f in frames]
    if not frames_list:
        raise InvalidInput("a video needs at least one frame")
    f0 = frames_list[0]
    if f0.ndim != 3 or f0.shape[2] != 3 or f0.dtype != np.uint8:
        raise InvalidInput(f"frames must be [H,W,3] uint8 RGB, got {f0.dtype} {list(f0.shape)}")
    if any(f.shape != f0.shape or f.dtype != np.uint8 for f in frames_list):
        raise InvalidInput("all frames of a video must have the same size and be uint8")
    if not (np.isfinite(fps) and 0 < fps <= 1000):
        raise InvalidInput(f"fps must be in (0, 1000], got {fps}")
    p = Path(path)
    if fourcc is not None:
        return _write_opencv(p, frames_list, fps, fourcc)
    if p.suffix.lower() not in H264_SUFFIXES:
        raise InvalidInput(f"{p.name}: H.264 videos are written as {', '.join(H264_SUFFIXES)}")
    h, w = f0.shape[:2]
    ph, pw = h + (h % 2), w + (w % 2)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{pw}x{ph}", "-r", repr(float(fps)), "-i", "pipe:0", "-an", "-c:v", "libx264", "-preset", PRESET,
           "-crf", str(int(crf)), "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(p)]
    # No preexec_fn: the child is exec'd straight away (no Python runs in it, so forking a process
    # with JAX's threads is safe); its own session keeps Ctrl-C meant for us from killing it mid-file.
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        for f in frames_list:
            if (ph, pw) != (h, w):
                f = np.pad(f, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            proc.stdin.write(np.ascontiguousarray(f).tobytes())
    except BrokenPipeError:
        pass  # ffmpeg stopped early: its own message follows
    finally:
        _, err = proc.communicate()
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise OSError(f"H.264 encoding of {p} failed (ffmpeg exit {proc.returncode}): {msg[-1] if msg else ''}")
    if not p.is_file() or p.stat().st_size == 0:
        raise OSError(f"the video encoder produced no file at {p}")
    return p


def ffmpeg_exe() -> str:
    """The ffmpeg binary of the ``imageio-ffmpeg`` wheel (``IMAGEIO_FFMPEG_EXE`` overrides it)."""
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a declared dependency
        raise NotReady("imageio-ffmpeg is not installed (pip install imageio-ffmpeg): it ships the H.264 encoder") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # no binary for this platform and none on PATH
        raise NotReady(f"no ffmpeg for H.264 videos: {exc}") from None


def _write_opencv(p: Path, frames: list[np.ndarray], fps: float, fourcc: str) -> Path:
    import cv2

    from dream2flow.video.decode import quiet_opencv

    quiet_opencv()
    h, w = frames[0].shape[:2]
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
