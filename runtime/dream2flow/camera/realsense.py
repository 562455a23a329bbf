"""Intel RealSense D400 camera (``pyrealsense2``, imported lazily) and ``.bag`` playback.

Why each step:
- depth is aligned to colour (``rs.align(rs.stream.color)``) so that I0 and D0 share one
  pixel grid and the colour camera's ``K``: every flow point is back-projected with it;
- the device's depth scale (metres per z16 unit, 0.001 on D435, 0.0001 on some models)
  is read from the depth sensor, never assumed;
- the first frames after start are dropped (auto-exposure and the laser settle);
- optional post-processing filters run in Intel's recommended order (depth->disparity,
  spatial, temporal, disparity->depth, hole filling) on the frameset, before alignment
  (alignment after filtering avoids the jagged edges of filtering a re-projected image);
- a frame that does not arrive within ``timeout_ms`` (``wait_for_frames`` raises
  ``RuntimeError``) is retried, then reported as ``NotReady`` naming the camera.

The colour intrinsics' distortion model is recorded in ``info()``; D435 colour streams
report (near-)zero coefficients, and ``CameraModel`` is pinhole, so non-zero coefficients
only raise a warning (undistortion is not done here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.camera.configs import RealSenseConfig
from dream2flow.errors import InvalidInput, NotReady
from dream2flow.log import get_logger
from dream2flow.types import RGBD, CameraModel

log = get_logger("camera.realsense")

_INSTALL_HINT = ("pyrealsense2 is not installed: `pip install pyrealsense2` on x86_64, or on a Jetson build "
                 "librealsense with -DBUILD_PYTHON_BINDINGS=ON")


def import_pyrealsense2() -> Any:
    """``import pyrealsense2`` or a clear ``NotReady``. Some source builds nest the module
    (``pyrealsense2.pyrealsense2``); both layouts are accepted."""
    try:
        import pyrealsense2 as rs  # type: ignore[import-not-found]
    except ImportError:
        raise NotReady(_INSTALL_HINT) from None
    if not hasattr(rs, "pipeline") and hasattr(rs, "pyrealsense2"):
        rs = rs.pyrealsense2
    return rs


def list_devices(rs: Any | None = None) -> list[dict[str, str]]:
    """Connected RealSense devices: ``name``, ``serial_number``, ``firmware_version``,
    ``usb_type_descriptor`` (when the device reports them)."""
    rs = rs if rs is not None else import_pyrealsense2()
    out = []
    for dev in rs.context().query_devices():
        info: dict[str, str] = {}
        for key in ("name", "serial_number", "firmware_version", "usb_type_descriptor", "product_line"):
            field = getattr(rs.camera_info, key, None)
            if field is not None and dev.supports(field):
                info[key] = str(dev.get_info(field))
        out.append(info)
    return out


def intrinsics_to_K(intr: Any) -> np.ndarray:
    """``rs.intrinsics`` (fx, fy, ppx, ppy in pixels) -> ``K`` [3,3]."""
    return np.array([[float(intr.fx), 0.0, float(intr.ppx)],
                     [0.0, float(intr.fy), float(intr.ppy)],
                     [0.0, 0.0, 1.0]])


def build_filters(rs: Any, names: tuple[str, ...]) -> list[Any]:
    """The post-processing chain for the named filters, in Intel's recommended order."""
    chain: list[Any] = []
    smoothing = [n for n in ("spatial", "temporal") if n in names]
    if smoothing:
        chain.append(rs.disparity_transform(True))
        if "spatial" in names:
            chain.append(rs.spatial_filter())
        if "temporal" in names:
            chain.append(rs.temporal_filter())
        chain.append(rs.disparity_transform(False))
    if "hole_filling" in names:
        chain.append(rs.hole_filling_filter())
    return chain


class RealSenseCamera:
    """A RealSense colour + depth stream as a ``Camera`` (see the module docstring).

    ``T_base_cam`` comes from ``config.calibration_file`` (identity, with a warning, when
    none is given: fine for ``camera info``/``record``, wrong for the robot)."""

    def __init__(self, config: RealSenseConfig, *, start: bool = True) -> None:
        self.config = config
        self._rs = import_pyrealsense2()
        self._pipeline: Any = None
        self._align: Any = None
        self._filters: list[Any] = []
        self._model: CameraModel | None = None
        self._bgr = False
        self._info: dict[str, Any] = {}
        self._frames_read = 0
        if start:
            self.start()

    # -- set-up ---------------------------------------------------------------------------
    def _calibration(self) -> CameraModel | None:
        if not self.config.calibration_file:
            return None
        from dream2flow.config import load_camera

        calib = load_camera(self.config.calibration_file)
        if self.config.serial and calib.serial and calib.serial != self.config.serial:
            raise InvalidInput(f"calibration file {self.config.calibration_file} is for camera {calib.serial}, "
                               f"not the configured serial {self.config.serial}")
        return calib

    def _select_device(self, cfg: Any, calib: CameraModel | None) -> tuple[str, dict[str, str]]:
        rs, c = self._rs, self.config
        devices = list_devices(rs)
        if not devices:
            raise NotReady("no RealSense device found (check the USB 3 cable and port, udev rules, "
                           "and that no other process holds the camera; `rs-enumerate-devices` lists them)")
        wanted = c.serial or (calib.serial if calib is not None else None)
        serials = [d.get("serial_number", "") for d in devices]
        if wanted:
            if wanted not in serials:
                raise NotReady(f"RealSense with serial {wanted} not found; connected: {', '.join(serials)}")
            dev = devices[serials.index(wanted)]
        else:
            dev = devices[0]
            if len(devices) > 1:
                log.warning("several RealSense devices (%s); using %s (set a serial to choose)",
                            ", ".join(serials), dev.get("serial_number"))
        serial = dev.get("serial_number", "")
        cfg.enable_device(serial)
        return serial, dev

    def start(self) -> None:
        """Open the device (or ``.bag``), start colour + depth, read scale and intrinsics, warm up."""
        if self._pipeline is not None:
            return
        rs, c = self._rs, self.config
        calib = self._calibration()
        cfg = rs.config()
        device_info: dict[str, str] = {}
        if c.bag_file:
            bag = Path(c.bag_file)
            if not bag.is_file():
                raise InvalidInput(f"RealSense recording not found: {bag}")
            # The bag holds the streams it was recorded with; enabling none replays them all.
            cfg.enable_device_from_file(str(bag), repeat_playback=c.repeat_playback)
            serial = c.serial or (calib.serial if calib is not None else None)
            what = f"RealSense recording {bag.name}"
        else:
            serial, device_info = self._select_device(cfg, calib)
            fmt = rs.format.rgb8 if c.color_format == "rgb8" else rs.format.bgr8
            cfg.enable_stream(rs.stream.color, c.width, c.height, fmt, c.fps)
            dw, dh = c.depth_size
            cfg.enable_stream(rs.stream.depth, dw, dh, rs.format.z16, c.fps)
            what = f"RealSense {serial}"
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(cfg)
        except RuntimeError as exc:
            mode = ("" if c.bag_file else
                    f" (colour {c.width}x{c.height} {c.color_format} + depth {c.depth_size[0]}x{c.depth_size[1]} "
                    f"z16 at {c.fps} fps: is this mode supported, and the camera on USB 3?)")
            raise NotReady(f"{what}: could not start streaming{mode}: {exc}") from None
        try:
            device = profile.get_device()
            if c.bag_file:
                # Not real time: playback waits for us instead of dropping frames.
                device.as_playback().set_real_time(False)
            depth_scale = float(device.first_depth_sensor().get_depth_scale())
            color_profile = profile.get_stream(rs.stream.color).as_video_stream_profile()
            intr = color_profile.get_intrinsics()
            color_format = color_profile.format()
        except RuntimeError as exc:
            pipeline.stop()
            raise NotReady(f"{what}: the colour or depth stream is missing ({exc})") from None
        if color_format == rs.format.bgr8:
            self._bgr = True
        elif color_format == rs.format.rgb8:
            self._bgr = False
        else:
            pipeline.stop()
            raise NotReady(f"{what}: colour format {color_format} is not supported (use rgb8 or bgr8)")
        if not depth_scale > 0:
            pipeline.stop()
            raise NotReady(f"{what}: the depth sensor reports a depth scale of {depth_scale}")
        self._pipeline = pipeline
        self._align = rs.align(rs.stream.color)
        self._filters = build_filters(rs, c.filters)
        coeffs = [float(x) for x in getattr(intr, "coeffs", [])]
        if any(abs(x) > 1e-6 for x in coeffs):
            log.warning("%s: colour distortion %s %s is ignored (pinhole CameraModel)", what, intr.model, coeffs)
        if calib is None:
            log.warning("%s: no calibration file; T_base_cam is the identity", what)
        elif (calib.width, calib.height) != (int(intr.width), int(intr.height)):
            log.warning("%s: calibration file is for %dx%d, the stream is %dx%d", what,
                        calib.width, calib.height, int(intr.width), int(intr.height))
        self._model = CameraModel(
            K=intrinsics_to_K(intr), width=int(intr.width), height=int(intr.height),
            T_base_cam=calib.T_base_cam if calib is not None else np.eye(4),
            depth_scale_m=depth_scale, serial=serial or None)
        self._info = {
            "source": what, "device": device_info, "depth_scale_m": depth_scale,
            "color_format": "bgr8" if self._bgr else "rgb8", "fps": c.fps,
            "distortion_model": str(intr.model), "distortion_coeffs": coeffs,
            "filters": list(c.filters), "calibration_file": c.calibration_file,
        }
        if not c.bag_file:
            for _ in range(c.warmup_frames):
                self._wait_for_frames()

    # -- frames ---------------------------------------------------------------------------
    def _wait_for_frames(self) -> Any:
        """``wait_for_frames`` with ``retries`` extra tries on a timeout, then ``NotReady``."""
        c = self.config
        last = ""
        for _ in range(c.retries + 1):
            try:
                return self._pipeline.wait_for_frames(c.timeout_ms)
            except RuntimeError as exc:
                last = str(exc)
                log.warning("%s: %s", self._info.get("source", "RealSense"), last)
        src = self._info.get("source", "RealSense")
        if c.bag_file:
            raise NotReady(f"{src}: no more frames after {self._frames_read} (end of recording)")
        raise NotReady(f"{src}: no frame within {c.timeout_ms} ms, {c.retries + 1} tries ({last}); "
                       "check the USB cable/bandwidth and that no other process uses the camera")

    def capture(self) -> RGBD:
        """Next aligned frame: RGB uint8 and depth float32 metres (0 = invalid)."""
        if self._pipeline is None:
            raise NotReady("RealSense camera is closed")
        model = self.model()
        for _ in range(self.config.retries + 1):
            frames = self._wait_for_frames()
            for f in self._filters:
                frames = f.process(frames).as_frameset()
            aligned = self._align.process(frames)
            color = aligned.get_color_frame()
            depth = aligned.get_depth_frame()
            if not color or not depth:
                log.warning("%s: incomplete frameset (colour %s, depth %s); waiting for the next",
                            self._info.get("source"), bool(color), bool(depth))
                continue
            rgb = np.array(np.asanyarray(color.get_data()), dtype=np.uint8, copy=True)
            if self._bgr:
                rgb = np.ascontiguousarray(rgb[:, :, ::-1])
            raw = np.asanyarray(depth.get_data())
            if raw.dtype != np.uint16:
                raise NotReady(f"{self._info.get('source')}: depth frame is {raw.dtype}, expected z16")
            depth_m = raw.astype(np.float32) * np.float32(model.depth_scale_m)
            if self.config.max_depth_m is not None:
                depth_m[depth_m > self.config.max_depth_m] = 0.0
            if rgb.shape[:2] != (model.height, model.width) or depth_m.shape != rgb.shape[:2]:
                raise NotReady(f"{self._info.get('source')}: frame size {list(rgb.shape)} / depth "
                               f"{list(depth_m.shape)} does not match the stream's {model.width}x{model.height}")
            self._frames_read += 1
            return RGBD(rgb=rgb, depth_m=depth_m, camera=model)
        raise NotReady(f"{self._info.get('source')}: only incomplete framesets (colour or depth missing)")

    def model(self) -> CameraModel:
        if self._model is None:
            raise NotReady("RealSense camera is not started")
        return self._model

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError as exc:  # already stopped / device unplugged
                log.warning("RealSense stop: %s", exc)
            self._pipeline = None

    def __enter__(self) -> "RealSenseCamera":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
