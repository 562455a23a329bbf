"""Pieces of the control path on their own: NumPy forward kinematics, the move-to-start timing,
the interpolated stream, the safety layer's checks, the command log file and the loop config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dream2flow.config import load_robot_limits
from dream2flow.control.command_log import LOG_DTYPE, CommandLogBuilder, load_command_log, make_log, save_command_log
from dream2flow.control.interpolation import (MINJERK_PEAK_ACC, MINJERK_PEAK_VEL, build_trajectory, dense_trajectory,
                                              min_jerk, min_jerk_duration, sample_stream)
from dream2flow.control.kinematics import fk_flange, fk_tcp
from dream2flow.control.safety import SafetyLayer
from dream2flow.control.settings import LoopConfig, load_loop_config
from dream2flow.errors import InvalidInput
from dream2flow.types import Plan

LIM = load_robot_limits()
CFG = LoopConfig()


def test_fk_ready_pose_matches_the_team_convention() -> None:
    T_f = fk_flange(LIM.q_ready)
    assert np.allclose(T_f[:3, 3], [0.307, 0.0, 0.590], atol=1e-3)
    T = fk_tcp(LIM.q_ready)
    assert np.allclose(T[:3, 3], T_f[:3, 3] + T_f[:3, 2] * 0.1034, atol=1e-12)
    assert np.allclose(T[:3, 2], [0, 0, -1], atol=1e-9)          # approach axis points down at the ready pose
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
    batch = np.stack([LIM.q_ready, LIM.q_ready + 0.1])
    assert np.allclose(fk_tcp(batch)[0], T) and fk_tcp(batch).shape == (2, 4, 4)


def test_fk_agrees_with_a_finite_rotation_about_joint_1() -> None:
    q = LIM.q_ready.copy()
    q[0] = 0.7
    p0, p1 = fk_tcp(LIM.q_ready)[:3, 3], fk_tcp(q)[:3, 3]
    c, s = np.cos(0.7), np.sin(0.7)
    assert np.allclose(p1, np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ p0, atol=1e-12)


def test_min_jerk_duration_respects_each_limit() -> None:
    delta = np.array([1.0, 0.2, 0, 0, 0, 0, 0])
    T = min_jerk_duration(delta, LIM, velocity_fraction=0.25, acceleration_fraction=0.25, jerk_fraction=0.25,
                          min_duration_s=0.1)
    t = np.linspace(0, T, 20001)
    q, dq = min_jerk(np.zeros(7), delta, T, t)
    assert np.allclose(q[-1], delta) and np.allclose(dq[[0, -1]], 0)
    assert np.abs(dq).max(axis=0)[0] <= 0.25 * LIM.dq_max[0] + 1e-9
    ddq = np.gradient(dq, t, axis=0)
    assert np.abs(ddq).max(axis=0)[0] <= 0.25 * LIM.ddq_max[0] * 1.001
    # one of the three bounds is tight (the duration is the smallest allowed)
    tight = max(MINJERK_PEAK_VEL * 1.0 / (0.25 * LIM.dq_max[0]), np.sqrt(MINJERK_PEAK_ACC * 1.0 / (0.25 * LIM.ddq_max[0])))
    assert T == pytest.approx(tight)
    assert min_jerk_duration(np.zeros(7), LIM, velocity_fraction=1, acceleration_fraction=1, jerk_fraction=1,
                             min_duration_s=0.5) == 0.5


def _plan(H: int = 21, dt: float = 0.1) -> Plan:
    t = np.arange(H) * dt
    q = LIM.q_ready + 0.2 * np.sin(t)[:, None] * np.ones(7)
    g = np.zeros(H)
    g[8:] = 1
    return Plan(q=q, dt_s=dt, gripper=g, predicted_points=np.zeros((H, 1, 3)))


def test_stream_covers_move_to_start_plan_and_settle() -> None:
    plan = _plan()
    start = plan.q[0] + 0.2
    traj = build_trajectory(plan, start, LIM, CFG)
    assert traj.start_segment_s > 0
    s = sample_stream(traj, 100.0)
    assert np.array_equal(s.tick, np.arange(len(s))) and np.allclose(s.t_s, s.tick / 100.0)
    assert s.t_s[-1] >= traj.duration_s - 1e-12
    assert np.array_equal(s.q[0], start)                                      # starts exactly at the measured joints
    assert np.array_equal(s.q[-1], plan.q[-1])                               # ends held at the last waypoint
    k = np.searchsorted(s.t_s, traj.plan_offset_s + 8 * plan.dt_s - 1e-9)
    assert s.gripper[k - 1] == 0 and s.gripper[k] == 1                        # closes when plan time reaches index 8
    again = sample_stream(build_trajectory(plan, start, LIM, CFG), 100.0)
    assert again.q.tobytes() == s.q.tobytes()                                 # pure function
    dq, dv = dense_trajectory(traj, 1000.0)
    assert dq.shape == dv.shape and dq.shape[0] == int(np.ceil(traj.duration_s * 1000 - 1e-9)) + 1


def test_safety_layer_reports_the_earliest_violation() -> None:
    safety = SafetyLayer(LIM, CFG)
    t = np.arange(200) / 100.0
    q = np.repeat(LIM.q_ready[None], 200, axis=0)
    assert safety.check_stream(t, q, LIM.q_ready, 0.002, 0.01) is None
    bad = q.copy()
    bad[150:, 4] = LIM.q_max[4] + 0.1                   # a position step at 1.5 s (also a velocity spike)
    msg = safety.check_stream(t, bad, LIM.q_ready, 0.002, 0.01)
    assert msg is not None and "t=1.500 s" in msg and "joint 5" in msg
    assert "first command is 0.3000 rad" in safety.check_stream(t, q, LIM.q_ready + 0.3, 0.002, 0.01)
    nan = q.copy()
    nan[3, 0] = np.nan
    assert "NaN" in safety.check_stream(t, nan, LIM.q_ready, 0.002, 0.01)
    # runtime check of one more command with a 3-command history: same answer as pre-flight
    hist_t, hist_q = SafetyLayer.history(0.0, LIM.q_ready, 0.01)   # at rest at t = -0.03 .. -0.01 s
    cand = LIM.q_ready + _one(2, 0.03)                    # 3 rad/s on joint 3 in one period
    msg = safety.check_next(np.append(hist_t, 0.0), np.vstack([hist_q, cand]))
    assert msg is not None and "joint 3 commanded velocity 3 rad/s" in msg
    assert safety.check_next(np.append(hist_t, 0.0), np.vstack([hist_q, LIM.q_ready + _one(2, 1e-5)])) is None


def test_deviation_check() -> None:
    safety = SafetyLayer(LIM, CFG)
    assert safety.check_deviation(LIM.q_ready + 0.05, LIM.q_ready, 1.0) is None
    msg = safety.check_deviation(LIM.q_ready + _one(5, 0.2), LIM.q_ready, 1.0)
    assert msg is not None and "joint 6 is 0.2000 rad" in msg
    assert "not 7 finite" in safety.check_deviation(np.full(7, np.nan), LIM.q_ready, 1.0)


def _one(j: int, x: float) -> np.ndarray:
    v = np.zeros(7)
    v[j] = x
    return v


def test_command_log_file_is_byte_deterministic(tmp_path: Path) -> None:
    b = CommandLogBuilder(2)
    for k in range(5):                                    # grows past its capacity
        b.append(k, k / 100, LIM.q_ready + k, float(k > 2))
    rec = b.records()
    assert rec.dtype == LOG_DTYPE and list(rec["seq"]) == [0, 1, 2, 3, 4] and rec["gripper"][4] == 1
    p1 = save_command_log(tmp_path / "x.npz", rec, rate_hz=100.0, meta={"a": 1})
    p2 = save_command_log(tmp_path / "y.npz", make_log(rec["tick"], rec["t_s"], rec["q"], rec["gripper"]), rate_hz=100.0,
                          meta={"a": 1})
    assert p1.read_bytes() == p2.read_bytes()
    back = load_command_log(p1)
    assert back.records.tobytes() == rec.tobytes() and back.meta == {"a": 1} and back.rate_hz == 100.0
    with np.load(p1) as z:                                # a plain .npz for other tools
        assert z["q"].shape == (5, 7)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InvalidInput, match="not a readable"):
        load_command_log(tmp_path / "bad.npz")


def test_loop_config_file_and_errors(tmp_path: Path) -> None:
    cfg = load_loop_config()
    assert cfg.rate_hz == 100.0 and cfg.workspace_min[2] == 0.0 and cfg.max_deviation_rad == 0.1
    p = tmp_path / "c.toml"
    p.write_text("[safety]\njoint_margin_rad = 0.1\nworkspace_max = [0.8, 0.5, 1.0]\n[polymetis]\nhost = 'x'\n")
    c2 = load_loop_config(p)
    assert c2.joint_margin_rad == 0.1 and c2.workspace_max == (0.8, 0.5, 1.0) and c2.rate_hz == cfg.rate_hz
    for text, frag in [("[safety]\njoint_margin = 0.1\n", "unknown key"), ("[safty]\n", "unknown table"),
                       ("[safety]\nvelocity_fraction = 1.5\n", "must be <= 1"),
                       ("[loop]\nrate_hz = 0\n", "positive"),
                       ("[safety]\nworkspace_min = [1, 1, 1]\n", "below 'workspace_max'")]:
        p.write_text(text)
        with pytest.raises(InvalidInput, match=frag):
            load_loop_config(p)
