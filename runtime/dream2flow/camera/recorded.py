"""Recorded RGB-D: the folder ``dream2flow camera record`` writes, and its replay as a ``Camera``.

Why: tests and laptop debugging need the robot's real frames without the robot. The
format is plain files anyone can open, and replay gives back exactly what was recorded
(PNG is lossless; depth is ``.npy`` float32 metres, or a 16-bit PNG in units of the
camera's ``depth_scale_m``, which is exact for RealSense depth: it *is* z16 × scale)::

    DIR/camera.toml            the CameraModel (config.save_camera)
    DIR/index.json             {"format": "dream2flow-rgbd", "version": 1, "count": N,
                                "depth_format": "npy"|"png16", "width", "height",
                                "frames": [{"rgb": "frames/000000_rgb.png",
                                            "depth": "frames/000000_depth.npy", "t_s": 0.0}, ...]}
    DIR/frames/000000_rgb.png  ...

A RealSense ``.bag`` is replayed through pyrealsense2's playback (``open_recording``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from dream2flow.camera.configs import RealSenseConfig, RecordedConfig
from dream2flow.errors import DataLoss, InvalidInput, NotReady
from dream2flow.types import RGBD, CameraModel

FORMAT = "dream2flow-rgbd"
VERSION = 1
DEPTH_FORMATS = ("npy", "png16")


def _depth_to_png16(depth_m: np.ndarray, scale_m: float) -> np.ndarray:
    units = np.rint(np.asarray(depth_m, dtype=np.float64) / scale_m)
    if units.max(initial=0) > 65535:
        raise InvalidInput(f"depth up to {float(np.max(depth_m)):.2f} m does not fit a 16-bit PNG at "
                           f"{scale_m} m per unit; record depth as npy")
    return units.astype(np.uint16)


class RecordingWriter:
    """Writes frames one by one into ``out_dir`` (normally a ``staged_output`` folder), then
    ``finish()`` writes ``camera.toml`` and ``index.json``."""

    def __init__(self, out_dir: str | Path, model: CameraModel, *, depth_format: str = "npy",
                 source: str = "") -> None:
        if depth_format not in DEPTH_FORMATS:
            raise InvalidInput(f"depth format must be one of {', '.join(DEPTH_FORMATS)}, got {depth_format!r}")
        self.out = Path(out_dir)
        (self.out / "frames").mkdir(parents=True, exist_ok=True)
        self.model = model
        self.depth_format = depth_format
        self.scale_m = model.depth_scale_m or 0.001  # the 16-bit PNG convention: millimetres
        self.source = source
        self.frames: list[dict[str, Any]] = []

    def add(self, rgbd: RGBD, t_s: float = 0.0) -> None:
        from dream2flow.io_utils import write_rgb

        m = self.model
        if rgbd.rgb.shape[:2] != (m.height, m.width):
            raise InvalidInput(f"frame {len(self.frames)} is {rgbd.rgb.shape[1]}x{rgbd.rgb.shape[0]}, "
                               f"the recording's camera is {m.width}x{m.height}")
        i = len(self.frames)
        rgb_name = f"frames/{i:06d}_rgb.png"
        write_rgb(self.out / rgb_name, rgbd.rgb)
        if self.depth_format == "npy":
            depth_name = f"frames/{i:06d}_depth.npy"
            np.save(self.out / depth_name, np.asarray(rgbd.depth_m, dtype=np.float32), allow_pickle=False)
        else:
            import cv2

            depth_name = f"frames/{i:06d}_depth.png"
            if not cv2.imwrite(str(self.out / depth_name), _depth_to_png16(rgbd.depth_m, self.scale_m)):
                raise OSError(f"could not write {self.out / depth_name}")
        self.frames.append({"rgb": rgb_name, "depth": depth_name, "t_s": float(t_s)})

    def finish(self) -> Path:
        from dream2flow.config import save_camera

        model = self.model
        if self.depth_format == "png16" and model.depth_scale_m is None:
            # Record the unit the PNGs use, so the camera file says how to read them.
            model = CameraModel(K=model.K, width=model.width, height=model.height, T_base_cam=model.T_base_cam,
                                depth_scale_m=self.scale_m, serial=model.serial)
        save_camera(model, self.out / "camera.toml", comment=f"recorded by dream2flow camera record ({self.source})")
        index = {"format": FORMAT, "version": VERSION, "count": len(self.frames), "depth_format": self.depth_format,
                 "width": model.width, "height": model.height, "source": self.source, "frames": self.frames}
        (self.out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        return self.out


def record(camera: Any, out_dir: str | Path, num_frames: int, *, depth_format: str = "npy", source: str = "",
           on_frame: Any = None) -> Path:
    """Capture ``num_frames`` frames from ``camera`` into ``out_dir`` (see the module docstring)."""
    if num_frames <= 0:
        raise InvalidInput(f"number of frames must be positive, got {num_frames}")
    writer = RecordingWriter(out_dir, camera.model(), depth_format=depth_format, source=source)
    t0 = time.monotonic()
    for i in range(num_frames):
        writer.add(camera.capture(), t_s=time.monotonic() - t0)
        if on_frame is not None:
            on_frame(i)
    return writer.finish()


def write_recording(out_dir: str | Path, frames: Iterable[RGBD], model: CameraModel, *,
                    depth_format: str = "npy", source: str = "") -> Path:
    """Write already-captured frames as a recording folder."""
    writer = RecordingWriter(out_dir, model, depth_format=depth_format, source=source)
    for f in frames:
        writer.add(f)
    return writer.finish()


class RecordedCamera:
    """Replays a recording folder frame by frame as a ``Camera``. At the end it raises
    ``NotReady`` (or starts again with ``loop=True``). ``calibration_file`` overrides the
    recording's ``T_base_cam``."""

    def __init__(self, path: str | Path, *, loop: bool = False, calibration_file: str | Path | None = None) -> None:
        from dream2flow.config import load_camera

        self.path = Path(path)
        index_path = self.path / "index.json"
        if not index_path.is_file():
            raise InvalidInput(f"{self.path} is not a recording (no index.json); record one with "
                               "`dream2flow camera record`")
        try:
            index = json.loads(index_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataLoss(f"{index_path} is not valid JSON ({exc})") from None
        if index.get("format") != FORMAT or not isinstance(index.get("frames"), list):
            raise InvalidInput(f"{index_path} is not a {FORMAT} index")
        if index.get("version", 0) > VERSION:
            raise InvalidInput(f"{index_path} is format version {index.get('version')}; this build reads <= {VERSION}")
        if index.get("count") != len(index["frames"]):
            raise DataLoss(f"{index_path} lists {len(index['frames'])} frames but says count={index.get('count')}")
        model = load_camera(self.path / "camera.toml")
        if calibration_file is not None:
            calib = load_camera(calibration_file)
            model = CameraModel(K=model.K, width=model.width, height=model.height, T_base_cam=calib.T_base_cam,
                                depth_scale_m=model.depth_scale_m, serial=model.serial)
        self._model = model
        self._frames: list[dict[str, Any]] = index["frames"]
        self._index = index
        self._next = 0
        self.loop = loop

    def __len__(self) -> int:
        return len(self._frames)

    def frame(self, i: int) -> RGBD:
        """Frame ``i`` (random access)."""
        from dream2flow.io_utils import read_depth, read_rgb

        if not 0 <= i < len(self._frames):
            raise InvalidInput(f"frame {i} out of range: {self.path} has {len(self._frames)} frames")
        entry = self._frames[i]
        try:
            rgb = read_rgb(self.path / entry["rgb"])
            depth = read_depth(self.path / entry["depth"], self._model.depth_scale_m)
        except InvalidInput as exc:
            raise DataLoss(f"recording {self.path}, frame {i}: {exc.message}") from None
        try:
            return RGBD(rgb=rgb, depth_m=depth, camera=self._model)
        except InvalidInput as exc:
            raise DataLoss(f"recording {self.path}, frame {i}: {exc.message}") from None

    def capture(self) -> RGBD:
        if self._next >= len(self._frames):
            if not self.loop or not self._frames:
                raise NotReady(f"recording {self.path} has no more frames ({len(self._frames)} played)")
            self._next = 0
        out = self.frame(self._next)
        self._next += 1
        return out

    def reset(self) -> None:
        self._next = 0

    def model(self) -> CameraModel:
        return self._model

    def info(self) -> dict[str, Any]:
        return {"source": f"recording {self.path}", "frames": len(self._frames),
                "depth_format": self._index.get("depth_format"), "recorded_from": self._index.get("source", "")}

    def close(self) -> None:
        pass


def open_recording(config: RecordedConfig) -> Any:
    """A recording folder -> ``RecordedCamera``; a ``.bag`` -> pyrealsense2 playback
    (``RealSenseCamera`` with ``bag_file``; needs pyrealsense2)."""
    p = Path(config.path)
    if p.suffix.lower() == ".bag":
        from dream2flow.camera.realsense import RealSenseCamera

        return RealSenseCamera(RealSenseConfig(bag_file=str(p), repeat_playback=config.loop,
                                               calibration_file=config.calibration_file))
    if not p.exists():
        raise InvalidInput(f"recording not found: {p}")
    return RecordedCamera(p, loop=config.loop, calibration_file=config.calibration_file)
