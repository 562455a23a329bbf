"""One config dataclass per camera kind, and ``make_camera(config)``.

Why this shape (as in LeRobot): a robot cell's TOML names its camera by ``type`` and the
remaining keys fill that kind's dataclass, so a real RealSense, a recording and the
simulator are interchangeable choices of config, validated in one place before any
device is touched. Every problem is an ``InvalidInput`` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Union

from dream2flow.errors import InvalidInput

REALSENSE_FILTERS: tuple[str, ...] = ("spatial", "temporal", "hole_filling")
COLOR_FORMATS: tuple[str, ...] = ("rgb8", "bgr8")


def _check_positive_int(value: Any, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(f"camera config: '{name}' must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class RealSenseConfig:
    """An Intel RealSense D400 (D415/D435/D455...), or a ``.bag`` recording of one.

    ``width``/``height``/``fps``: the colour stream; depth uses the same size unless
    ``depth_width``/``depth_height`` are given (depth is always aligned to colour, so the
    frame's pixel grid and ``K`` are the colour camera's). ``color_format`` ``rgb8`` or
    ``bgr8`` (converted to RGB). ``warmup_frames`` are dropped after start (auto-exposure
    settles). A frame wait longer than ``timeout_ms`` is retried ``retries`` times, then
    ``NotReady``. ``filters``: any of ``spatial``, ``temporal``, ``hole_filling`` (applied
    in Intel's recommended order, spatial/temporal in the disparity domain, before
    alignment). ``max_depth_m`` zeroes farther depth. ``calibration_file``: a camera TOML
    whose ``T_base_cam`` places the camera (its ``serial`` must match when both are set).
    ``bag_file``: replay a RealSense ``.bag`` instead of opening a device."""

    serial: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    color_format: str = "rgb8"
    depth_width: int | None = None
    depth_height: int | None = None
    warmup_frames: int = 30
    timeout_ms: int = 2000
    retries: int = 3
    filters: tuple[str, ...] = ()
    max_depth_m: float | None = None
    calibration_file: str | None = None
    bag_file: str | None = None
    repeat_playback: bool = False

    type: ClassVar[str] = "realsense"

    def __post_init__(self) -> None:
        for name in ("width", "height", "fps", "timeout_ms"):
            _check_positive_int(getattr(self, name), name)
        for name in ("depth_width", "depth_height"):
            if getattr(self, name) is not None:
                _check_positive_int(getattr(self, name), name)
        for name in ("warmup_frames", "retries"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidInput(f"camera config: '{name}' must be an integer >= 0, got {v!r}")
        if self.color_format not in COLOR_FORMATS:
            raise InvalidInput(f"camera config: 'color_format' must be one of {', '.join(COLOR_FORMATS)}, "
                               f"got {self.color_format!r}")
        object.__setattr__(self, "filters", tuple(self.filters))
        bad = [f for f in self.filters if f not in REALSENSE_FILTERS]
        if bad:
            raise InvalidInput(f"camera config: unknown filter(s) {', '.join(map(repr, bad))}; "
                               f"choose from {', '.join(REALSENSE_FILTERS)}")
        if self.max_depth_m is not None and not (isinstance(self.max_depth_m, (int, float)) and self.max_depth_m > 0):
            raise InvalidInput(f"camera config: 'max_depth_m' must be a positive number, got {self.max_depth_m!r}")
        if self.serial is not None:
            object.__setattr__(self, "serial", str(self.serial))

    @property
    def depth_size(self) -> tuple[int, int]:
        return (self.depth_width or self.width, self.depth_height or self.height)


@dataclass(frozen=True)
class RecordedConfig:
    """Replay a folder written by ``dream2flow camera record`` (or a RealSense ``.bag``).
    ``loop`` restarts at the end instead of raising ``NotReady``; ``calibration_file``
    overrides the recording's ``T_base_cam`` (e.g. after a new calibration)."""

    path: str
    loop: bool = False
    calibration_file: str | None = None

    type: ClassVar[str] = "recorded"


@dataclass(frozen=True)
class SimCameraConfig:
    """The simulator's camera (``dream2flow.sim``): task scene and seed."""

    task: str = "bread_in_bowl"
    seed: int = 0

    type: ClassVar[str] = "sim"


@dataclass(frozen=True)
class MockCameraConfig:
    """A synthetic test camera (a textured tilted plane with a box on it, changing per frame):
    no device, no simulator; for tests and for trying the CLI on a laptop. Never real data."""

    width: int = 640
    height: int = 480
    fx: float | None = None   # None: a D435's field of view at this width (615 px at 640)
    fy: float | None = None
    seed: int = 0

    type: ClassVar[str] = "mock"

    def __post_init__(self) -> None:
        _check_positive_int(self.width, "width")
        _check_positive_int(self.height, "height")


CameraConfig = Union[RealSenseConfig, RecordedConfig, SimCameraConfig, MockCameraConfig]
CONFIG_TYPES: dict[str, type] = {c.type: c for c in (RealSenseConfig, RecordedConfig, SimCameraConfig, MockCameraConfig)}


def camera_config_from_dict(d: dict[str, Any], base_dir: str | Path | None = None,
                            where: str = "camera") -> CameraConfig:
    """A ``[camera]`` table (``type = "realsense"|"recorded"|"sim"|"mock"`` + that kind's keys)
    -> its config. Relative paths (``calibration_file``, ``bag_file``, ``path``) are resolved
    against ``base_dir`` (the TOML file's folder)."""
    d = dict(d)
    kind = d.pop("type", "realsense")
    cls = CONFIG_TYPES.get(kind)
    if cls is None:
        raise InvalidInput(f"{where}: unknown camera type {kind!r}; choose from {', '.join(CONFIG_TYPES)}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) for a {kind} camera: {', '.join(unknown)}")
    for key in ("calibration_file", "bag_file", "path"):
        if key in d and d[key] is not None and base_dir is not None and not Path(d[key]).is_absolute():
            d[key] = str(Path(base_dir) / d[key])
    if "filters" in d:
        d["filters"] = tuple(d["filters"])
    try:
        return cls(**d)
    except TypeError as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None


def make_camera(config: CameraConfig):
    """Open the camera a config describes (imports its backend lazily)."""
    if isinstance(config, RealSenseConfig):
        from dream2flow.camera.realsense import RealSenseCamera

        return RealSenseCamera(config)
    if isinstance(config, RecordedConfig):
        from dream2flow.camera.recorded import open_recording

        return open_recording(config)
    if isinstance(config, SimCameraConfig):
        from dream2flow.camera.sim_camera import SimCamera

        return SimCamera.from_task(config.task, config.seed)
    if isinstance(config, MockCameraConfig):
        from dream2flow.camera.mock import MockCamera

        return MockCamera(config)
    raise InvalidInput(f"not a camera config: {type(config).__name__}")
