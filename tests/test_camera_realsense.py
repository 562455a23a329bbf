"""RealSense adapter against a test double of the pyrealsense2 API surface it uses.

The double (``FakeRS``) mirrors pyrealsense2's names and call shapes (rs.context().query_devices(),
rs.config().enable_device/enable_stream/enable_device_from_file, rs.pipeline().start/
wait_for_frames/stop, profile.get_device().first_depth_sensor().get_depth_scale(),
profile.get_stream(...).as_video_stream_profile().get_intrinsics()/format(), rs.align, the
post-processing filters, frames' get_data()) and records every call, so the tests check what
the adapter asks of the SDK, not only what it returns. Its depth stream has a different size
from colour, so only a real alignment call gives depth on the colour grid.
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from dream2flow.camera.configs import RealSenseConfig, RecordedConfig, camera_config_from_dict, make_camera
from dream2flow.camera.protocol import Camera
from dream2flow.errors import InvalidInput, NotReady


# --------------------------------------------------------------------------- the test double
class _Frame:
    def __init__(self, data: np.ndarray | None) -> None:
        self._data = data

    def get_data(self) -> np.ndarray:
        assert self._data is not None, "get_data() on a null frame"
        return self._data

    def __bool__(self) -> bool:
        return self._data is not None


class _Frameset:
    def __init__(self, color: np.ndarray | None, depth: np.ndarray | None, *, index: int,
                 history: tuple[str, ...] = ()) -> None:
        self.color, self.depth, self.index, self.history = color, depth, index, history

    def get_color_frame(self) -> _Frame:
        return _Frame(self.color)

    def get_depth_frame(self) -> _Frame:
        return _Frame(self.depth)

    def as_frameset(self) -> "_Frameset":
        return self


def make_fake_rs(*, devices: list[dict[str, str]] | None = None, depth_scale: float = 0.001,
                 color_size: tuple[int, int] = (64, 48), depth_size: tuple[int, int] = (80, 60),
                 intr: dict | None = None, script: list[str] | None = None, bgr_data: bool = False,
                 supported: set[tuple[int, int]] | None = None, bag_frames: int | None = None) -> types.ModuleType:
    """A pyrealsense2 stand-in. ``script``: per wait_for_frames call, "ok", "timeout" or
    "no_depth" (default: always ok). ``supported``: colour sizes the device can stream."""
    rs = types.ModuleType("pyrealsense2")
    st = SimpleNamespace(calls=[], devices=devices if devices is not None else
                         [{"name": "Intel RealSense D435", "serial_number": "111", "firmware_version": "5.16.0.1",
                           "usb_type_descriptor": "3.2"}],
                         script=list(script or []), n_frames=0, color_format=None, stopped=0, real_time=None)
    rs.state = st
    rs.camera_info = SimpleNamespace(name="name", serial_number="serial_number", firmware_version="firmware_version",
                                     usb_type_descriptor="usb_type_descriptor", product_line="product_line")
    rs.stream = SimpleNamespace(color="stream.color", depth="stream.depth")
    rs.format = SimpleNamespace(rgb8="format.rgb8", bgr8="format.bgr8", z16="format.z16", yuyv="format.yuyv")
    rs.distortion = SimpleNamespace(inverse_brown_conrady="distortion.inverse_brown_conrady")
    W, H = color_size
    intr_ns = SimpleNamespace(**{"width": W, "height": H, "fx": 61.25, "fy": 61.5, "ppx": 32.2, "ppy": 23.7,
                                 "model": rs.distortion.inverse_brown_conrady, "coeffs": [0.0] * 5, **(intr or {})})

    class device:
        def __init__(self, info: dict[str, str]) -> None:
            self.info = info

        def supports(self, key: str) -> bool:
            return key in self.info

        def get_info(self, key: str) -> str:
            return self.info[key]

        def first_depth_sensor(self):
            return SimpleNamespace(get_depth_scale=lambda: depth_scale)

        def as_playback(self):
            def set_real_time(flag: bool) -> None:
                st.real_time = flag
            return SimpleNamespace(set_real_time=set_real_time)

    class context:
        def query_devices(self):
            st.calls.append(("query_devices",))
            return [device(d) for d in st.devices]

    class config:
        def __init__(self) -> None:
            self.streams: list[tuple] = []
            self.serial = None
            self.bag = None

        def enable_device(self, serial: str) -> None:
            st.calls.append(("enable_device", serial))
            self.serial = serial

        def enable_stream(self, stream, w, h, fmt, fps) -> None:
            st.calls.append(("enable_stream", stream, w, h, fmt, fps))
            self.streams.append((stream, w, h, fmt, fps))

        def enable_device_from_file(self, path: str, repeat_playback: bool = True) -> None:
            st.calls.append(("enable_device_from_file", path, repeat_playback))
            self.bag = path

    class _StreamProfile:
        def __init__(self, fmt) -> None:
            self._fmt = fmt

        def as_video_stream_profile(self):
            return self

        def get_intrinsics(self):
            return intr_ns

        def format(self):
            return self._fmt

    class _Profile:
        def __init__(self, cfg: config) -> None:
            self.cfg = cfg

        def get_device(self):
            if self.cfg.bag:
                return device({"name": "playback", "serial_number": "bagserial"})
            return device(next(d for d in st.devices if d["serial_number"] == self.cfg.serial))

        def get_stream(self, stream):
            assert stream == rs.stream.color
            return _StreamProfile(st.color_format)

    class pipeline:
        def start(self, cfg: config):
            st.calls.append(("start",))
            if cfg.bag:
                st.color_format = rs.format.bgr8 if bgr_data else rs.format.rgb8
            else:
                color = [s for s in cfg.streams if s[0] == rs.stream.color]
                if not color or (supported is not None and (color[0][1], color[0][2]) not in supported):
                    raise RuntimeError("Couldn't resolve requests")
                st.color_format = color[0][3]
            return _Profile(cfg)

        def wait_for_frames(self, timeout_ms: int = 5000):
            st.calls.append(("wait_for_frames", timeout_ms))
            what = st.script.pop(0) if st.script else "ok"
            if bag_frames is not None and st.n_frames >= bag_frames:
                raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
            if what == "timeout":
                raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
            k = st.n_frames
            st.n_frames += 1
            color = np.zeros((H, W, 3), np.uint8)
            color[..., 0] = k % 256          # frame index in the first byte channel
            color[..., 1] = 100
            color[..., 2] = 200
            dw, dh = depth_size
            depth = (np.arange(dh)[:, None] * 7 + np.arange(dw)[None, :] + 300 + k).astype(np.uint16)
            return _Frameset(color, None if what == "no_depth" else depth, index=k)

        def stop(self) -> None:
            st.calls.append(("stop",))
            st.stopped += 1

    class align:
        def __init__(self, to) -> None:
            st.calls.append(("align", to))
            self.to = to

        def process(self, fs: _Frameset) -> _Frameset:
            st.calls.append(("align.process", fs.history))
            assert self.to == rs.stream.color
            depth = None
            if fs.depth is not None:  # nearest-neighbour re-projection onto the colour grid
                yi = (np.arange(H) * fs.depth.shape[0]) // H
                xi = (np.arange(W) * fs.depth.shape[1]) // W
                depth = fs.depth[yi][:, xi]
            return _Frameset(fs.color, depth, index=fs.index, history=fs.history + ("aligned",))

    def _filter(name: str):
        class _F:
            def __init__(self, *args) -> None:
                self.label = name if not args else f"{name}({args[0]})"
                st.calls.append(("filter", self.label))

            def process(self, fs: _Frameset) -> _Frameset:
                return _Frameset(fs.color, fs.depth, index=fs.index, history=fs.history + (self.label,))
        return _F

    rs.context, rs.config, rs.pipeline, rs.align = context, config, pipeline, align
    rs.spatial_filter = _filter("spatial")
    rs.temporal_filter = _filter("temporal")
    rs.hole_filling_filter = _filter("hole_filling")
    rs.disparity_transform = _filter("disparity")
    return rs


@pytest.fixture
def fake_rs(monkeypatch):
    def install(**kw) -> types.ModuleType:
        rs = make_fake_rs(**kw)
        monkeypatch.setitem(sys.modules, "pyrealsense2", rs)
        return rs
    return install


def _cfg(**kw) -> RealSenseConfig:
    base = dict(width=64, height=48, warmup_frames=0, timeout_ms=50, retries=2)
    base.update(kw)
    return RealSenseConfig(**base)


def _open(**kw):
    from dream2flow.camera.realsense import RealSenseCamera

    return RealSenseCamera(_cfg(**kw))


# --------------------------------------------------------------------------- tests
def test_missing_pyrealsense2_is_a_clear_not_ready(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # makes `import pyrealsense2` raise ImportError
    with pytest.raises(NotReady, match="pyrealsense2 is not installed"):
        _open()


def test_no_device_is_not_ready(fake_rs) -> None:
    fake_rs(devices=[])
    with pytest.raises(NotReady, match="no RealSense device found"):
        _open()


def test_serial_selects_the_device_and_unknown_serial_lists_connected(fake_rs) -> None:
    rs = fake_rs(devices=[{"name": "D435", "serial_number": "111"}, {"name": "D455", "serial_number": "222"}])
    cam = _open(serial="222")
    assert ("enable_device", "222") in rs.state.calls
    assert cam.model().serial == "222"
    assert cam.info()["device"]["name"] == "D455"
    cam.close()
    with pytest.raises(NotReady, match="serial 999 not found; connected: 111, 222"):
        _open(serial="999")


def test_first_device_is_used_without_serial(fake_rs) -> None:
    rs = fake_rs(devices=[{"name": "D435", "serial_number": "111"}, {"name": "D455", "serial_number": "222"}])
    cam = _open()
    assert ("enable_device", "111") in rs.state.calls
    cam.close()


@pytest.mark.parametrize("fmt", ["rgb8", "bgr8"])
def test_stream_formats_and_rgb_output(fake_rs, fmt) -> None:
    rs = fake_rs()
    cam = _open(color_format=fmt, fps=15, depth_width=80, depth_height=60)
    color_call = [c for c in rs.state.calls if c[0] == "enable_stream" and c[1] == rs.stream.color]
    depth_call = [c for c in rs.state.calls if c[0] == "enable_stream" and c[1] == rs.stream.depth]
    assert color_call == [("enable_stream", rs.stream.color, 64, 48, getattr(rs.format, fmt), 15)]
    assert depth_call == [("enable_stream", rs.stream.depth, 80, 60, rs.format.z16, 15)]
    frame = cam.capture()
    # The device sends (k, 100, 200) in its own channel order; the camera returns RGB.
    expected = [0, 100, 200] if fmt == "rgb8" else [200, 100, 0]
    assert frame.rgb[0, 0].tolist() == expected
    assert frame.rgb.dtype == np.uint8 and frame.rgb.flags.c_contiguous
    cam.close()


def test_depth_is_aligned_to_colour_and_scaled_to_metres(fake_rs) -> None:
    rs = fake_rs(depth_scale=0.0001, color_size=(64, 48), depth_size=(80, 60))
    cam = _open()
    assert ("align", rs.stream.color) in rs.state.calls
    f = cam.capture()
    assert f.depth_m.shape == (48, 64) and f.depth_m.dtype == np.float32
    # What an aligned z16 frame holds, times the device's (not an assumed) depth scale.
    raw = (np.arange(60)[:, None] * 7 + np.arange(80)[None, :] + 300).astype(np.uint16)
    aligned = raw[(np.arange(48) * 60) // 48][:, (np.arange(64) * 80) // 64]
    np.testing.assert_array_equal(f.depth_m, aligned.astype(np.float32) * np.float32(0.0001))
    assert f.camera.depth_scale_m == pytest.approx(0.0001)
    cam.close()


def test_max_depth_zeroes_far_depth(fake_rs) -> None:
    fake_rs(depth_scale=0.001)
    cam = _open(max_depth_m=0.5)
    d = cam.capture().depth_m
    assert d.max() <= 0.5 and (d == 0).any() and (d > 0).any()
    cam.close()


def test_intrinsics_become_K_and_size(fake_rs) -> None:
    fake_rs(intr={"fx": 612.5, "fy": 611.9, "ppx": 321.2, "ppy": 238.7})
    cam = _open()
    np.testing.assert_allclose(cam.model().K, [[612.5, 0, 321.2], [0, 611.9, 238.7], [0, 0, 1]])
    assert (cam.model().width, cam.model().height) == (64, 48)
    assert isinstance(cam, Camera)
    cam.close()


def test_warmup_frames_are_dropped(fake_rs) -> None:
    fake_rs()
    cam = _open(warmup_frames=5)
    assert cam.capture().rgb[0, 0, 0] == 5  # frames 0..4 were the warm-up
    cam.close()


def test_frame_timeouts_are_retried(fake_rs) -> None:
    rs = fake_rs(script=["timeout", "timeout", "ok"])
    cam = _open(timeout_ms=123, retries=2)
    f = cam.capture()
    assert f.rgb[0, 0, 0] == 0
    waits = [c for c in rs.state.calls if c[0] == "wait_for_frames"]
    assert waits == [("wait_for_frames", 123)] * 3
    cam.close()


def test_frame_timeouts_exhausted_give_not_ready(fake_rs) -> None:
    fake_rs(script=["timeout"] * 10)
    cam = _open(timeout_ms=50, retries=2)
    with pytest.raises(NotReady, match=r"no frame within 50 ms, 3 tries"):
        cam.capture()
    cam.close()


def test_incomplete_frameset_is_skipped(fake_rs) -> None:
    fake_rs(script=["no_depth", "ok"])
    cam = _open()
    f = cam.capture()
    assert f.rgb[0, 0, 0] == 1  # frame 0 had no depth
    cam.close()


def test_filters_run_in_recommended_order_before_alignment(fake_rs) -> None:
    rs = fake_rs()
    cam = _open(filters=("hole_filling", "temporal", "spatial"))
    cam.capture()
    history = [c[1] for c in rs.state.calls if c[0] == "align.process"][-1]
    assert history == ("disparity(True)", "spatial", "temporal", "disparity(False)", "hole_filling")
    cam.close()


def test_no_filters_means_raw_frameset_is_aligned(fake_rs) -> None:
    rs = fake_rs()
    cam = _open()
    cam.capture()
    assert [c[1] for c in rs.state.calls if c[0] == "align.process"] == [()]
    cam.close()


def test_unsupported_mode_is_a_clear_error(fake_rs) -> None:
    fake_rs(supported={(640, 480)})
    with pytest.raises(NotReady, match=r"could not start streaming \(colour 64x48 rgb8"):
        _open()


def test_calibration_file_gives_T_base_cam_and_serial_must_match(fake_rs, tmp_path) -> None:
    from dream2flow.config import save_camera
    from dream2flow.types import CameraModel

    T = np.eye(4)
    T[:3, 3] = [1.0, 0.2, 0.8]
    calib = CameraModel(K=np.diag([600.0, 600.0, 1.0]) + np.array([[0, 0, 32], [0, 0, 24], [0, 0, 0]]), width=64,
                        height=48, T_base_cam=T, serial="111")
    path = save_camera(calib, tmp_path / "cam.toml")
    fake_rs(devices=[{"name": "D435", "serial_number": "111"}, {"name": "D435", "serial_number": "222"}])
    cam = _open(calibration_file=str(path))  # no serial: the calibration's serial picks the device
    np.testing.assert_array_equal(cam.model().T_base_cam, T)
    assert cam.model().serial == "111"
    cam.close()
    with pytest.raises(InvalidInput, match="is for camera 111"):
        _open(serial="222", calibration_file=str(path))


def test_close_stops_once(fake_rs) -> None:
    rs = fake_rs()
    cam = _open()
    cam.close()
    cam.close()
    assert rs.state.stopped == 1
    with pytest.raises(NotReady):
        cam.capture()


def test_bag_playback(fake_rs, tmp_path) -> None:
    bag = tmp_path / "take.bag"
    bag.write_bytes(b"not a real bag; the double does not read it")
    rs = fake_rs(bag_frames=2, bgr_data=True)
    cam = make_camera(RecordedConfig(path=str(bag)))
    assert ("enable_device_from_file", str(bag), False) in rs.state.calls
    assert not [c for c in rs.state.calls if c[0] in ("enable_stream", "enable_device", "query_devices")]
    assert rs.state.real_time is False
    assert cam.capture().rgb[0, 0].tolist() == [200, 100, 0]  # bag recorded bgr8 -> RGB
    cam.capture()
    with pytest.raises(NotReady, match="end of recording"):
        cam.capture()
    cam.close()


def test_missing_bag_is_invalid_input(fake_rs, tmp_path) -> None:
    fake_rs()
    with pytest.raises(InvalidInput, match="not found"):
        make_camera(RecordedConfig(path=str(tmp_path / "none.bag")))


def test_realsense_config_validation() -> None:
    with pytest.raises(InvalidInput, match="unknown filter"):
        RealSenseConfig(filters=("median",))
    with pytest.raises(InvalidInput, match="color_format"):
        RealSenseConfig(color_format="yuyv")
    with pytest.raises(InvalidInput, match="'width' must be a positive integer"):
        RealSenseConfig(width=0)
    with pytest.raises(InvalidInput, match="unknown key"):
        camera_config_from_dict({"type": "realsense", "widht": 640})
    with pytest.raises(InvalidInput, match="unknown camera type"):
        camera_config_from_dict({"type": "kinect"})
    cfg = camera_config_from_dict({"type": "realsense", "serial": 123, "filters": ["spatial"],
                                   "calibration_file": "cam.toml"}, base_dir="/cell")
    assert cfg.serial == "123" and cfg.filters == ("spatial",) and cfg.calibration_file == "/cell/cam.toml"


def test_cli_info_and_record_replay_through_the_adapter(fake_rs, tmp_path, capsys) -> None:
    """`camera info`, `camera info --list`, then record from the RealSense path with 16-bit PNG
    depth and replay: the device's z16 × scale frames come back bit-exact."""
    from dream2flow.camera.recorded import RecordedCamera
    from dream2flow.cli import main

    fake_rs(depth_scale=0.001)
    assert main(["camera", "info", "--width", "64", "--height", "48"]) == 0
    out = capsys.readouterr().out
    assert "size: 64x48  fx=61.250 fy=61.500 cx=32.200 cy=23.700" in out
    assert "serial_number=111" in out and "depth scale 0.001" in out
    assert main(["camera", "info", "--list"]) == 0
    assert "1 RealSense device(s)" in capsys.readouterr().out

    rs = fake_rs(depth_scale=0.001)
    assert main(["camera", "record", "--width", "64", "--height", "48", "-n", "3", "--depth-format", "png16",
                 "--out", str(tmp_path / "rec")]) == 0
    from dream2flow.camera.realsense import RealSenseCamera

    rs.state.n_frames = 0
    live = RealSenseCamera(RealSenseConfig(width=64, height=48))  # 30 warm-up frames, like the CLI's
    expected = [live.capture() for _ in range(3)]
    rec = RecordedCamera(tmp_path / "rec")
    assert len(rec) == 3
    for e in expected:
        got = rec.capture()
        np.testing.assert_array_equal(got.rgb, e.rgb)
        np.testing.assert_array_equal(got.depth_m, e.depth_m)
    m, lm = rec.model(), live.model()
    np.testing.assert_array_equal(m.K, lm.K)
    np.testing.assert_array_equal(m.T_base_cam, lm.T_base_cam)
    assert (m.width, m.height, m.depth_scale_m, m.serial) == (lm.width, lm.height, lm.depth_scale_m, "111")


def test_cli_without_pyrealsense2_exits_not_ready(monkeypatch, capsys) -> None:
    from dream2flow.cli import main

    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    assert main(["camera", "info"]) == NotReady.exit_code
    err = capsys.readouterr().err
    assert "pyrealsense2 is not installed" in err and "Traceback" not in err
