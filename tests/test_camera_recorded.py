"""Recordings: record -> replay round-trips frames and the camera model exactly; the CLI's
record/info; configs, the cell file and the example camera files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dream2flow.camera.configs import (MockCameraConfig, RecordedConfig, SimCameraConfig, camera_config_from_dict,
                                       make_camera)
from dream2flow.camera.mock import MockCamera
from dream2flow.camera.protocol import Camera
from dream2flow.camera.recorded import RecordedCamera, record, write_recording
from dream2flow.cli import main
from dream2flow.errors import DataLoss, InvalidInput, NotReady
from dream2flow.types import RGBD, CameraModel

REPO = Path(__file__).resolve().parents[1]


def assert_same_model(a: CameraModel, b: CameraModel) -> None:
    np.testing.assert_array_equal(a.K, b.K)
    np.testing.assert_array_equal(a.T_base_cam, b.T_base_cam)
    assert (a.width, a.height, a.depth_scale_m, a.serial) == (b.width, b.height, b.depth_scale_m, b.serial)


def _odd_camera() -> CameraModel:
    """Intrinsics/extrinsics with digits that a lossy writer would round."""
    T = np.eye(4)
    c, s = np.cos(0.3), np.sin(0.3)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[:3, 3] = [1.0 / 3.0, -0.123456789012345, 0.7071067811865476]
    K = np.array([[61.23456789, 0, 31.987654321], [0, 61.11111111, 24.100000001], [0, 0, 1]])
    return CameraModel(K=K, width=64, height=48, T_base_cam=T, depth_scale_m=None, serial="cam-7")


def test_record_replay_roundtrip_npy_is_exact(tmp_path) -> None:
    cam = _odd_camera()
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(4):
        depth = rng.uniform(0.2, 3.0, (48, 64)).astype(np.float32)  # arbitrary float32 metres
        depth[rng.random((48, 64)) < 0.1] = 0.0                       # invalid pixels
        frames.append(RGBD(rgb=rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), depth_m=depth, camera=cam))
    write_recording(tmp_path / "rec", frames, cam, source="unit test")
    rec = RecordedCamera(tmp_path / "rec")
    assert isinstance(rec, Camera) and len(rec) == 4
    assert_same_model(rec.model(), cam)
    for f in frames:
        g = rec.capture()
        assert g.rgb.dtype == np.uint8 and g.depth_m.dtype == np.float32
        np.testing.assert_array_equal(g.rgb, f.rgb)
        np.testing.assert_array_equal(g.depth_m, f.depth_m)
        assert_same_model(g.camera, cam)
    with pytest.raises(NotReady, match="no more frames"):
        rec.capture()


def test_record_replay_png16_is_exact_for_sensor_depth(tmp_path) -> None:
    """Sensor depth (z16 units × scale, in float32) survives 16-bit PNG storage bit-exactly."""
    mock = MockCamera(MockCameraConfig(width=80, height=60, seed=3))
    record(mock, tmp_path / "rec", 3, depth_format="png16")
    index = json.loads((tmp_path / "rec" / "index.json").read_text())
    assert index["depth_format"] == "png16" and index["frames"][0]["depth"].endswith(".png")
    again = MockCamera(MockCameraConfig(width=80, height=60, seed=3))
    rec = RecordedCamera(tmp_path / "rec")
    assert_same_model(rec.model(), again.model())
    for _ in range(3):
        e, g = again.capture(), rec.capture()
        np.testing.assert_array_equal(g.rgb, e.rgb)
        np.testing.assert_array_equal(g.depth_m, e.depth_m)
    assert not np.array_equal(rec.frame(0).rgb, rec.frame(2).rgb)  # the frames differ (the box moves)


def test_png16_depth_that_does_not_fit_is_refused(tmp_path) -> None:
    cam = CameraModel(K=np.diag([50.0, 50.0, 1.0]), width=8, height=6, depth_scale_m=0.001)
    f = RGBD(rgb=np.zeros((6, 8, 3), np.uint8), depth_m=np.full((6, 8), 70.0, np.float32), camera=cam)
    with pytest.raises(InvalidInput, match="does not fit a 16-bit PNG"):
        write_recording(tmp_path / "rec", [f], cam, depth_format="png16")


def test_loop_reset_and_calibration_override(tmp_path) -> None:
    record(MockCamera(MockCameraConfig(width=32, height=24)), tmp_path / "rec", 2)
    rec = RecordedCamera(tmp_path / "rec", loop=True)
    a, _, c = rec.capture(), rec.capture(), rec.capture()
    np.testing.assert_array_equal(a.rgb, c.rgb)
    from dream2flow.config import save_camera

    T = np.eye(4)
    T[:3, 3] = [0.5, 0.5, 1.0]
    other = CameraModel(K=np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]]), width=32, height=24, T_base_cam=T)
    save_camera(other, tmp_path / "calib.toml")
    rec2 = make_camera(RecordedConfig(path=str(tmp_path / "rec"), calibration_file=str(tmp_path / "calib.toml")))
    np.testing.assert_array_equal(rec2.model().T_base_cam, T)
    np.testing.assert_array_equal(rec2.model().K, rec.model().K)  # intrinsics stay the recording's


def test_broken_recordings_are_named(tmp_path) -> None:
    with pytest.raises(InvalidInput, match="not a recording"):
        RecordedCamera(tmp_path)
    record(MockCamera(MockCameraConfig(width=32, height=24)), tmp_path / "rec", 2)
    (tmp_path / "rec" / "frames" / "000001_depth.npy").write_bytes(b"garbage")
    rec = RecordedCamera(tmp_path / "rec")
    rec.capture()
    with pytest.raises(DataLoss, match="frame 1"):
        rec.capture()
    index = json.loads((tmp_path / "rec" / "index.json").read_text())
    index["count"] = 5
    (tmp_path / "rec" / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataLoss, match="count=5"):
        RecordedCamera(tmp_path / "rec")
    (tmp_path / "rec" / "index.json").write_text("{not json")
    with pytest.raises(DataLoss, match="not valid JSON"):
        RecordedCamera(tmp_path / "rec")


def test_cli_record_info_and_replay(tmp_path, capsys) -> None:
    out = tmp_path / "rec"
    assert main(["camera", "record", "--mock", "--seed", "2", "-n", "2", "--out", str(out)]) == 0
    assert "recorded 2 frame(s) 640x480" in capsys.readouterr().out
    assert main(["camera", "info", "--recorded", str(out)]) == 0
    text = capsys.readouterr().out
    assert "size: 640x480" in text and "2 frames" in text and "T_base_cam: camera at (1.0000, 0.0000, 0.7000)" in text
    assert main(["camera", "info", "--recorded", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 2 and info["serial"] == "mock-2"
    # Re-record the recording: the copy is identical.
    assert main(["camera", "record", "--recorded", str(out), "-n", "2", "--out", str(tmp_path / "copy")]) == 0
    a, b = RecordedCamera(out), RecordedCamera(tmp_path / "copy")
    for _ in range(2):
        x, y = a.capture(), b.capture()
        np.testing.assert_array_equal(x.rgb, y.rgb)
        np.testing.assert_array_equal(x.depth_m, y.depth_m)


def test_cli_record_failure_leaves_no_output(tmp_path, capsys) -> None:
    record(MockCamera(MockCameraConfig(width=32, height=24)), tmp_path / "rec", 2)
    out = tmp_path / "copy"
    code = main(["camera", "record", "--recorded", str(tmp_path / "rec"), "-n", "5", "--out", str(out)])
    assert code == NotReady.exit_code
    assert "no more frames" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".copy.partial-*"))
    with pytest.raises(SystemExit) as ei:   # argparse refuses the value itself: one line, exit 2
        main(["camera", "record", "--mock", "-n", "0", "--out", str(out)])
    assert ei.value.code == 2 and "-n/--frames: expected an integer in [1, 100000], got 0" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["info", "record", "calibrate", "board"])
def test_cli_help(action, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["camera", action, "--help"])
    assert e.value.code == 0
    assert "usage: dream2flow camera " + action in capsys.readouterr().out


def test_cli_board_png(tmp_path, capsys) -> None:
    import cv2

    from dream2flow.camera.charuco import BoardSpec, detect_board

    assert main(["camera", "board", "--out", str(tmp_path / "b.png"), "--dpi", "100"]) == 0
    assert "28.0 x 20.0 cm at 100 dpi" in capsys.readouterr().out
    img = cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_GRAYSCALE)
    # 40 mm squares at 100 dpi are 157 px; a 10 mm white margin is 39 px.
    assert img.shape == (5 * 157 + 2 * 39, 7 * 157 + 2 * 39)
    det = detect_board(img, BoardSpec(), np.array([[1000.0, 0, img.shape[1] / 2], [0, 1000.0, img.shape[0] / 2],
                                                   [0, 0, 1]]))
    assert len(det.ids) == BoardSpec().num_corners


def test_camera_configs_and_make_camera(tmp_path) -> None:
    cfg = camera_config_from_dict({"type": "mock", "width": 32, "height": 24, "seed": 1})
    assert isinstance(cfg, MockCameraConfig)
    cam = make_camera(cfg)
    assert isinstance(cam, Camera) and cam.capture().rgb.shape == (24, 32, 3)
    cfg = camera_config_from_dict({"type": "recorded", "path": "rec"}, base_dir=tmp_path)
    assert cfg == RecordedConfig(path=str(tmp_path / "rec"))
    assert camera_config_from_dict({"type": "sim", "task": "open_drawer", "seed": 3}) == SimCameraConfig("open_drawer", 3)
    with pytest.raises(InvalidInput, match="recording not found"):
        make_camera(cfg)
    with pytest.raises(InvalidInput, match="'width' must be a positive integer"):
        camera_config_from_dict({"type": "mock", "width": -1})


def test_example_camera_files_load() -> None:
    from dream2flow.config import load_camera

    files = sorted((REPO / "hw" / "cameras").glob("*_example.toml"))
    assert len(files) >= 2
    for f in files:
        cam = load_camera(f)
        assert 0 < cam.K[0, 2] < cam.width and 0 < cam.K[1, 2] < cam.height
        # The camera looks at the workspace in front of the robot (its optical axis points down and back).
        z_axis = cam.T_base_cam[:3, 2]
        assert z_axis[2] < 0 and z_axis[0] < 0, f.name


def test_example_cell_file_loads() -> None:
    from dream2flow.camera.cell import load_cell
    from dream2flow.config import load_robot_limits

    cell = load_cell(REPO / "hw" / "robot" / "robot.example.toml")
    assert cell.backend == "polymetis" and cell.polymetis_file.name == "polymetis.toml"
    assert cell.limits_file.is_file() and Path(cell.camera.calibration_file).is_file()
    assert cell.poses is not None and cell.poses.shape[1] == 7 and len(cell.poses) >= cell.calibration.min_poses
    lim = load_robot_limits(cell.limits_file)
    for q in cell.poses:
        assert not lim.check_q(q, margin_rad=0.05)


def test_cell_file_rejects_unknown_keys(tmp_path) -> None:
    from dream2flow.camera.cell import load_cell

    (tmp_path / "c.toml").write_text('[robot]\nbackend = "polymetis"\nspeed = 3\n[camera]\ntype = "mock"\n')
    with pytest.raises(InvalidInput, match=r"\[robot\]: unknown key\(s\) speed"):
        load_cell(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text('[camera]\ntype = "mock"\n[calibration]\nmin_pose = 3\n')
    with pytest.raises(InvalidInput, match="unknown key"):
        load_cell(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text('[camera]\ntype = "mock"\n[calibration]\nposes = [[1, 2, 3]]\n')
    with pytest.raises(InvalidInput, match="7-number lists"):
        load_cell(tmp_path / "c.toml")
