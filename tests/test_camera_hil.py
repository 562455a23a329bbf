"""Hardware-in-the-loop: a real RealSense on this machine (opt-in: D2F_REALSENSE=1; pick one
with D2F_REALSENSE_SERIAL). Skipped otherwise (tests/conftest.py and the check below)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = [pytest.mark.hil,
              pytest.mark.skipif(not os.environ.get("D2F_REALSENSE"), reason="set D2F_REALSENSE=1 with a RealSense attached")]


def _config(**kw):
    from dream2flow.camera.configs import RealSenseConfig

    return RealSenseConfig(serial=os.environ.get("D2F_REALSENSE_SERIAL") or None, **kw)


def test_device_is_listed() -> None:
    from dream2flow.camera.realsense import list_devices

    devices = list_devices()
    assert devices, "no RealSense device found"
    assert all("serial_number" in d for d in devices)


@pytest.mark.parametrize("fmt", ["rgb8", "bgr8"])
def test_capture_aligned_rgbd(fmt) -> None:
    from dream2flow.camera.realsense import RealSenseCamera

    with RealSenseCamera(_config(color_format=fmt)) as cam:
        m = cam.model()
        assert (m.width, m.height) == (640, 480)
        assert 300 < m.K[0, 0] < 1500 and 0 < m.K[0, 2] < m.width and 0 < m.K[1, 2] < m.height
        assert m.depth_scale_m is not None and 0 < m.depth_scale_m <= 0.001
        for _ in range(3):
            f = cam.capture()
            assert f.rgb.shape == (480, 640, 3) and f.rgb.dtype == np.uint8
            assert f.depth_m.shape == (480, 640) and f.depth_m.dtype == np.float32
            valid = f.depth_m > 0
            assert valid.mean() > 0.3, "less than 30% valid depth: is the camera facing a scene 0.3-3 m away?"
            assert 0.1 < float(np.median(f.depth_m[valid])) < 6.0
            assert f.rgb.std() > 3.0, "flat colour image"


def test_filters_and_record_replay_roundtrip(tmp_path) -> None:
    from dream2flow.camera.realsense import RealSenseCamera
    from dream2flow.camera.recorded import RecordedCamera, RecordingWriter

    with RealSenseCamera(_config(filters=("spatial", "temporal", "hole_filling"))) as cam:
        frames = [cam.capture() for _ in range(3)]
        w = RecordingWriter(tmp_path / "rec", cam.model(), depth_format="png16", source="hil")
        for f in frames:
            w.add(f)
        w.finish()
    rec = RecordedCamera(tmp_path / "rec")
    for f in frames:
        g = rec.capture()
        np.testing.assert_array_equal(g.rgb, f.rgb)
        np.testing.assert_array_equal(g.depth_m, f.depth_m)


def test_unknown_serial_is_refused() -> None:
    from dream2flow.camera.realsense import RealSenseCamera
    from dream2flow.errors import NotReady

    with pytest.raises(NotReady, match="not found; connected"):
        RealSenseCamera(_config().__class__(serial="000000000000"))
