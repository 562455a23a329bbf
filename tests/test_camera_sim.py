"""The simulator's camera through the ``Camera`` protocol (needs ``dream2flow.sim``, issue 3)."""

from __future__ import annotations

import numpy as np
import pytest

from dream2flow.camera.protocol import Camera


def _make_env_or_skip():
    from dream2flow import sim
    if not hasattr(sim, "make_env") or not getattr(sim, "TASKS", ()):
        pytest.skip("dream2flow.sim.make_env / TASKS not built yet")
    return sim


@pytest.mark.sim
def test_sim_camera_wraps_the_env() -> None:
    sim = _make_env_or_skip()
    from dream2flow.camera.sim_camera import SimCamera

    task = sim.TASKS[0]
    cam = SimCamera.from_task(task, 0)
    assert isinstance(cam, Camera)
    model = cam.model()
    env_model = cam.env.camera_model()
    np.testing.assert_array_equal(model.K, env_model.K)
    np.testing.assert_array_equal(model.T_base_cam, env_model.T_base_cam)
    frame = cam.capture()
    assert frame.rgb.shape == (model.height, model.width, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth_m.shape == (model.height, model.width) and frame.depth_m.dtype == np.float32
    valid = frame.depth_m > 0
    assert valid.mean() > 0.5
    # The table/robot are within a few metres of the camera.
    assert 0.1 < float(np.median(frame.depth_m[valid])) < 5.0
    # Same state, same picture.
    np.testing.assert_array_equal(cam.capture().rgb, frame.rgb)
    cam.close()


@pytest.mark.sim
def test_cli_info_and_record_from_the_simulation(tmp_path, capsys) -> None:
    sim = _make_env_or_skip()
    from dream2flow.camera.recorded import RecordedCamera
    from dream2flow.camera.sim_camera import SimCamera
    from dream2flow.cli import main

    task = sim.TASKS[0]
    assert main(["camera", "info", "--sim", task]) == 0
    assert f"simulation task {task}" in capsys.readouterr().out
    assert main(["camera", "record", "--sim", task, "-n", "1", "--out", str(tmp_path / "rec")]) == 0
    rec = RecordedCamera(tmp_path / "rec").capture()
    live = SimCamera.from_task(task, 0).capture()
    np.testing.assert_array_equal(rec.rgb, live.rgb)
    np.testing.assert_array_equal(rec.depth_m, live.depth_m)


def test_missing_simulation_is_not_ready(monkeypatch) -> None:
    """No MuJoCo needed: the wrapper must say clearly when the simulation is absent."""
    import sys

    from dream2flow.camera.sim_camera import SimCamera
    from dream2flow.errors import NotReady

    monkeypatch.setitem(sys.modules, "dream2flow.sim", None)
    with pytest.raises(NotReady, match="simulation"):
        SimCamera.from_task("bread_in_bowl", 0)
