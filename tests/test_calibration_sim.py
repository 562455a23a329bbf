"""Simulated eye-to-hand calibration against ground truth (issue 7, acceptance 3).

The cell: a known camera, a Panda holding a ChArUco board at a known mount; images are
rendered honestly (printed board warped by the exact homography, supersampled, blurred,
noisy, over a textured background) and go through the real detector, PnP, hand-eye solver
and refinement. Accuracy bound: 2 mm / 0.2 deg on T_base_cam.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dream2flow.camera import handeye
from dream2flow.camera.calibration import (CalibrationConfig, CalibrationFailed, calibrate, collect_samples,
                                           load_samples, save_samples, write_calibration)
from dream2flow.camera.charuco import BoardSpec
from dream2flow.camera.sim_calibration import (Q_READY, BoardViewCamera, TeleportRobot, default_cell, plan_poses,
                                               run_simulated_calibration)
from dream2flow.cli import main
from dream2flow.config import load_camera
from dream2flow.errors import ExecutionFailed, InvalidInput


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulated_calibration_recovers_the_true_extrinsic(seed) -> None:
    """12 poses, 2 of them with the board out of view (set aside), pixel noise and blur, and
    5e-5 rad encoder noise on the joints the FK sees."""
    out = run_simulated_calibration(seed=seed, num_poses=12, num_hidden=2, noise_std=2.0, blur_sigma_px=0.6,
                                    joint_noise_rad=5e-5)
    rep = out.result.report
    assert out.translation_error_mm < 2.0, rep
    assert out.rotation_error_deg < 0.2, rep
    assert rep["passed"] and rep["num_poses"] == 12 and rep["num_used"] <= 10
    assert sum(r["reason"] == "board not found" for r in rep["rejected"]) >= 2
    assert rep["reprojection_rms_px"] < 0.5
    # The board's mount is a by-product; it is recovered too.
    Z, Z_true = out.result.T_gripper_board, out.cell.T_gripper_board
    assert np.linalg.norm(Z[:3, 3] - Z_true[:3, 3]) < 0.003
    assert handeye.rotation_angle_deg(Z[:3, :3].T @ Z_true[:3, :3]) < 0.3


def test_refinement_beats_the_closed_form() -> None:
    cfg = CalibrationConfig(refine=False)
    raw = run_simulated_calibration(seed=3, num_poses=10, config=cfg, accept_poor=True)
    ref = run_simulated_calibration(seed=3, num_poses=10)
    assert ref.translation_error_mm < 2.0 and ref.rotation_error_deg < 0.2
    assert ref.translation_error_mm < raw.translation_error_mm


def test_too_few_board_views_is_refused() -> None:
    with pytest.raises(CalibrationFailed, match=r"seen in only 3 of 12 poses \(need at least 5\)"):
        run_simulated_calibration(seed=0, num_poses=12, num_hidden=9)


def test_rotation_about_one_axis_only_is_refused() -> None:
    """Poses that differ only in joint 1 rotate the board about the base z axis alone."""
    cell = default_cell(0)
    base = plan_poses(cell, 1, seed=0)[0]
    poses = np.repeat(base[None], 8, axis=0)
    poses[:, 0] += np.linspace(-0.25, 0.25, 8)
    assert all(cell.board_view(q) for q in poses)
    with pytest.raises(CalibrationFailed, match="lack rotation diversity.*axis spread 0.0 deg"):
        run_simulated_calibration(seed=0, poses=poses)


def test_wrong_board_size_is_caught_by_the_residuals() -> None:
    """A board measured wrong (square 4.4 cm typed for a printed 4 cm) cannot close the loop."""
    cell = default_cell(0)
    poses = plan_poses(cell, 12, seed=0)
    robot = TeleportRobot()
    samples = collect_samples(poses, robot, BoardViewCamera(cell, robot), move_to=robot.command_joint_positions,
                              fresh_frames=1)
    wrong = BoardSpec(square_m=0.044, marker_m=0.033)
    with pytest.raises(CalibrationFailed, match="residuals too large"):
        calibrate(samples, wrong, cell.camera.K)
    poor = calibrate(samples, wrong, cell.camera.K, accept_poor=True)
    assert not poor.passed and poor.report["problems"]
    good = calibrate(samples, cell.spec, cell.camera.K)
    assert good.passed


def test_a_bad_pose_is_dropped_as_an_outlier() -> None:
    """One sample's robot pose is wrong by 3 deg on joint 4 (say, a stale reading): dropped."""
    cell = default_cell(1)
    poses = plan_poses(cell, 12, seed=1)
    robot = TeleportRobot()
    samples = collect_samples(poses, robot, BoardViewCamera(cell, robot), move_to=robot.command_joint_positions,
                              fresh_frames=1)
    from dream2flow.camera.calibration import panda_fk

    q_bad = samples[5].q.copy()
    q_bad[3] += np.radians(3.0)
    samples[5].T_base_gripper = panda_fk(q_bad)
    res = calibrate(samples, cell.spec, cell.camera.K)
    assert any(r["index"] == 5 and r["reason"].startswith("outlier") for r in res.report["rejected"])
    X, X_true = res.T_base_cam, cell.camera.T_base_cam
    assert np.linalg.norm(X[:3, 3] - X_true[:3, 3]) < 0.002
    assert handeye.rotation_angle_deg(X[:3, :3].T @ X_true[:3, :3]) < 0.2


def test_collect_samples_checks_inputs_and_settling() -> None:
    cell = default_cell(0)
    robot = TeleportRobot()
    cam = BoardViewCamera(cell, robot)
    with pytest.raises(InvalidInput, match=r"\[N,7\]"):
        collect_samples(np.zeros((3, 6)), robot, cam, move_to=robot.command_joint_positions)
    # A robot that does not reach its target (blocked) is an error, not a silent bad sample.
    with pytest.raises(ExecutionFailed, match="settled"):
        collect_samples([Q_READY + 0.1], robot, cam, move_to=lambda q: None)


def test_collect_through_the_control_loop_with_the_kinematic_backend() -> None:
    """The default mover: slow min-jerk plans executed by control.loop on the kinematic backend."""
    from dream2flow.control import loop
    from dream2flow.control import backends
    if not hasattr(loop, "execute_plan"):
        pytest.skip("control.loop.execute_plan not built yet")
    cell = default_cell(2)
    poses = plan_poses(cell, 6, seed=2)
    robot = backends.make_backend("kinematic", q0=Q_READY)
    samples = collect_samples(poses, robot, BoardViewCamera(cell, robot), settle_s=0.2, fresh_frames=1)
    assert len(samples) == 6
    if hasattr(robot, "call_names"):  # the held board is never released: no gripper command was sent
        assert "gripper" not in robot.call_names()
    for s, q in zip(samples, poses):
        np.testing.assert_allclose(s.q, q, atol=1e-3)
    res = calibrate(samples, cell.spec, cell.camera.K)
    X, X_true = res.T_base_cam, cell.camera.T_base_cam
    assert np.linalg.norm(X[:3, 3] - X_true[:3, 3]) < 0.002


def test_write_calibration_and_offline_samples(tmp_path) -> None:
    cell = default_cell(4)
    poses = plan_poses(cell, 10, seed=4)
    robot = TeleportRobot()
    samples = collect_samples(poses, robot, BoardViewCamera(cell, robot), move_to=robot.command_joint_positions,
                              fresh_frames=1)
    res = calibrate(samples, cell.spec, cell.camera.K)
    toml, report = write_calibration(res, cell.camera, tmp_path / "cams" / "cal.toml")
    cam = load_camera(toml)
    np.testing.assert_allclose(cam.T_base_cam, res.T_base_cam, atol=1e-12)
    np.testing.assert_array_equal(cam.K, cell.camera.K)
    assert cam.serial == cell.camera.serial
    rep = json.loads(report.read_text())
    assert rep["num_used"] == res.report["num_used"] and len(rep["per_pose"]) == rep["num_used"]
    # Keep the samples, recompute offline through the CLI: the same answer.
    save_samples(tmp_path / "samples", samples, cell.spec, cell.camera)
    s2, spec2, model2 = load_samples(tmp_path / "samples")
    assert spec2 == cell.spec and len(s2) == len(samples)
    np.testing.assert_array_equal(s2[0].rgb, samples[0].rgb)
    assert main(["camera", "calibrate", "--samples", str(tmp_path / "samples"), "--out", str(tmp_path / "off.toml")]) == 0
    np.testing.assert_allclose(load_camera(tmp_path / "off.toml").T_base_cam, res.T_base_cam, atol=1e-9)


def test_cli_calibrate_sim(tmp_path, capsys) -> None:
    out = tmp_path / "sim.toml"
    assert main(["camera", "calibrate", "--sim", "--seed", "1", "--hidden", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "simulated calibration (seed 1)" in text and "set aside (board not found)" in text
    rep = json.loads((tmp_path / "sim.report.json").read_text())
    assert rep["truth"]["translation_error_mm"] < 2.0 and rep["truth"]["rotation_error_deg"] < 0.2
    np.testing.assert_allclose(load_camera(out).T_base_cam, rep["T_base_cam"], atol=1e-9)
    # Refusal: exit code of a perception failure, one line, nothing written.
    bad = tmp_path / "bad.toml"
    assert main(["camera", "calibrate", "--sim", "--hidden", "9", "--out", str(bad)]) == CalibrationFailed.exit_code
    err = capsys.readouterr().err
    assert "seen in only 3 of 12 poses" in err and "Traceback" not in err
    assert not bad.exists() and not (tmp_path / "bad.report.json").exists()


def test_cli_calibrate_real_cell_needs_confirmation(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("D2F_HW_DIR", str(tmp_path))  # no robot.toml there
    assert main(["camera", "calibrate"]) == 2
    assert "copy hw/robot/robot.example.toml" in capsys.readouterr().err
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "hw" / "robot" / "robot.example.toml"
    assert main(["camera", "calibrate", "--cell", str(example)]) == 2
    assert "re-run with --yes" in capsys.readouterr().err
