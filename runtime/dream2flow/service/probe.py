"""Check a video or a depth array from outside *in a separate process* before the server
decodes it in its own.

Why a process: a crafted file that crashes or hangs a decoder (FFmpeg inside OpenCV) must not
take the robot's server down. The probe decodes every frame once (one frame in memory at a
time), so a file that passes will decode again in the server. A crash or a timeout of the
worker is reported as an invalid file and the worker is replaced.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
from typing import Any

from dream2flow.errors import InvalidInput


def probe_video_file(path: str, max_frames: int, max_width_px: int, max_height_px: int) -> dict[str, Any]:
    """Decode ``path`` frame by frame → {"num_frames", "width_px", "height_px", "fps"}, or
    {"error": one sentence}. Runs in the worker process (plain data in and out)."""
    import cv2

    from dream2flow.video.decode import quiet_opencv

    quiet_opencv()
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            return {"error": "not a readable video (corrupted, truncated, or an unknown container/codec)"}
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if declared > max_frames:
            return {"error": f"the video declares {declared} frames; the limit is {max_frames}"}
        n = 0
        size = None
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            h, w = frame.shape[:2]
            if size is None:
                size = (w, h)
                if w > max_width_px or h > max_height_px:
                    return {"error": f"the video is {w}x{h}; the limit is {max_width_px}x{max_height_px}"}
            elif (w, h) != size:
                return {"error": f"frame {n} is {w}x{h} but frame 0 is {size[0]}x{size[1]}"}
            n += 1
            if n > max_frames:
                return {"error": f"the video has more than {max_frames} frames (the limit)"}
        if n == 0 or size is None:
            return {"error": "the video has no decodable frames (empty or corrupted)"}
        if n < 2:
            return {"error": "the video has 1 frame; at least 2 are needed"}
        if declared > 0 and n < declared:
            return {"error": f"the video is truncated or corrupted: {declared} frames declared, {n} decode"}
        if not (0 < fps <= 1000):
            return {"error": f"the video's frame rate {fps} is not usable"}
        return {"num_frames": n, "width_px": size[0], "height_px": size[1], "fps": fps}
    finally:
        cap.release()


def probe_depth_file(path: str, max_frames: int, max_width_px: int, max_height_px: int) -> dict[str, Any]:
    """Check a relative-depth ``.npy`` header (no pickles) → {"num_frames", "width_px",
    "height_px", "dtype"} or {"error"}. Cheap and pure Python: runs in the server process."""
    import numpy as np

    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # ValueError/OSError/EOFError for garbage or pickles
        return {"error": f"not a NumPy .npy array ({type(exc).__name__})"}
    if not isinstance(arr, np.ndarray):
        return {"error": "not a single NumPy array (.npz archives are not accepted)"}
    if arr.dtype not in (np.float16, np.float32, np.float64):
        return {"error": f"video depth must be float16/32/64, got {arr.dtype}"}
    if arr.ndim != 3:
        return {"error": f"video depth must be [T,H,W], got shape {list(arr.shape)}"}
    t, h, w = (int(x) for x in arr.shape)
    if not (2 <= t <= max_frames) or not (1 <= h <= max_height_px) or not (1 <= w <= max_width_px):
        return {"error": f"video depth shape {[t, h, w]} is outside the limits (2..{max_frames} frames, "
                         f"at most {max_width_px}x{max_height_px})"}
    return {"num_frames": t, "width_px": w, "height_px": h, "dtype": str(arr.dtype)}


class ProbePool:
    """One warm worker process (``python -m dream2flow.service.probe --worker``: a fresh
    interpreter, so nothing of the server's threads or ``__main__`` is inherited) answering
    JSON lines on stdin/stdout. ``probe_video`` blocks (call it from a worker thread); one
    probe runs at a time. A worker that dies or overruns ``timeout_s`` is killed and replaced."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def _get(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-m", "dream2flow.service.probe", "--worker"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, close_fds=True)
        return self._proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.kill()
                proc.wait(5)
            except Exception:  # pragma: no cover - already gone
                pass
            for f in (proc.stdin, proc.stdout):
                try:
                    f.close()  # type: ignore[union-attr]
                except Exception:  # pragma: no cover
                    pass

    def probe_video(self, path: str, max_frames: int, max_width_px: int, max_height_px: int) -> dict[str, Any]:
        """→ the probe's dict; InvalidInput when the file is refused, crashes or hangs the decoder."""
        line = json.dumps({"path": path, "max_frames": max_frames, "max_width_px": max_width_px,
                           "max_height_px": max_height_px}) + "\n"
        with self._lock:
            proc = self._get()
            try:
                proc.stdin.write(line.encode())  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
                ready, _, _ = select.select([proc.stdout], [], [], self.timeout_s)
                if not ready:
                    self._kill()
                    raise InvalidInput(f"the video took more than {self.timeout_s:.0f} s to decode; refused")
                answer = proc.stdout.readline()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError, ValueError):
                answer = b""
            if not answer:
                self._kill()
                raise InvalidInput("the video crashed the decoder; refused")
        try:
            out = json.loads(answer)
        except ValueError:
            self._kill()
            raise InvalidInput("the video decoder answered garbage; refused") from None
        if "error" in out:
            raise InvalidInput(out["error"])
        return out

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(5)
            except Exception:
                proc.kill()
            try:
                proc.stdout.close()  # type: ignore[union-attr]
            except Exception:  # pragma: no cover
                pass


def _worker() -> int:
    """The worker loop: one JSON request per line in, one JSON answer per line out."""
    for line in sys.stdin:
        try:
            req = json.loads(line)
            out = probe_video_file(str(req["path"]), int(req["max_frames"]), int(req["max_width_px"]),
                                   int(req["max_height_px"]))
        except Exception as exc:  # a bad request or an OpenCV exception: an answer, not a dead worker
            out = {"error": f"the decoder failed ({type(exc).__name__})"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - runs as the worker process
    if "--worker" in sys.argv:
        sys.exit(_worker())
