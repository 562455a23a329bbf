"""Test helper: what ``ffprobe`` would say about a video, from the ffmpeg that imageio-ffmpeg
ships (``ffmpeg -i FILE`` prints the stream line: codec, pixel format, size, fps)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def probe_video(path: str | Path) -> dict[str, str | int]:
    """{codec, profile, pix_fmt, width, height} of the first video stream of ``path``."""
    import imageio_ffmpeg

    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"Stream #\S+: Video: (\w+)(?: \(([^)]*)\))?.*?, (\w+)(?:\([^)]*\))?, (\d+)x(\d+)", r.stderr)
    assert m, f"no video stream in {path}: {r.stderr[-500:]}"
    return {"codec": m.group(1), "profile": m.group(2) or "", "pix_fmt": m.group(3), "width": int(m.group(4)),
            "height": int(m.group(5))}
