"""The FR3's limits and the 1 kHz stream the libfranka backend sends, without a robot: the path
it prepares, the checks libfranka would make, smooth stops, gaps in the stream, the loop's FR3
envelope, the vendored FR3 model, and the backend's refusals that need no connection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dream2flow.config import load_robot_limits
from dream2flow.control.franka_stream import (DT_S, SmoothStop, StreamPlayer, check_1khz, interpolate_stream,
                                              stop_limits)
from dream2flow.control.interpolation import build_trajectory, sample_stream
from dream2flow.control.settings import LoopConfig
from dream2flow.types import Plan

FR3 = load_robot_limits(model="fr3")
PANDA = load_robot_limits(model="panda")
ROOT = Path(__file__).resolve().parents[1]
Q_SIM = np.array([0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785])   # franka-sim's initial pose


def _plan(q: np.ndarray, dt: float, gripper: np.ndarray | None = None) -> Plan:
    return Plan(q=q, dt_s=dt, gripper=np.zeros(len(q), np.float32) if gripper is None else gripper,
                predicted_points=np.zeros((len(q), 0, 3), np.float32), meta={})


def _cosine_plan(amp: np.ndarray, T: float = 3.0, dt: float = 0.1) -> Plan:
    t = np.arange(0.0, T + 1e-9, dt)
    s = (1 - np.cos(2 * np.pi * t / T)) / 2
    return _plan(Q_SIM + s[:, None] * amp, dt)


def _stream(plan: Plan, q_measured: np.ndarray, rate: float = 100.0):
    return sample_stream(build_trajectory(plan, q_measured, FR3, LoopConfig()), rate)


# -- the limits ------------------------------------------------------------------------------
def test_fr3_limits_are_franka_published_values_and_differ_from_the_panda() -> None:
    # Franka "Robot and interface specifications", Limits for Franka Research 3 (joint space)
    assert FR3.model == "fr3" and PANDA.model == "panda"
    np.testing.assert_array_equal(FR3.q_max, [2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159])
    np.testing.assert_array_equal(FR3.q_min, [-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159])
    np.testing.assert_array_equal(FR3.dq_max, [2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26])
    np.testing.assert_array_equal(FR3.ddq_max, [10.0] * 7)
    np.testing.assert_array_equal(FR3.dddq_max, [5000.0] * 7)
    np.testing.assert_array_equal(FR3.tau_max, [87, 87, 87, 87, 12, 12, 12])
    for key in ("q_min", "q_max", "dq_max", "ddq_max", "dddq_max"):
        assert not np.array_equal(getattr(FR3, key), getattr(PANDA, key)), key
    assert PANDA.velocity_envelope is None and FR3.velocity_envelope is not None
    assert not FR3.check_q(FR3.q_ready) and not FR3.check_q(Q_SIM)


def test_fr3_position_based_velocity_envelope_matches_libfranka() -> None:
    # libfranka >= 0.10 computeUpperLimitsJointVelocity / computeLowerLimitsJointVelocity (tolerance aside)
    def upper(q):
        return np.array([min(2.62, max(0.0, -0.30 + np.sqrt(max(0.0, 12.0 * (2.75010 - q[0]))))),
                         min(2.62, max(0.0, -0.20 + np.sqrt(max(0.0, 5.17 * (1.79180 - q[1]))))),
                         min(2.62, max(0.0, -0.20 + np.sqrt(max(0.0, 7.00 * (2.90650 - q[2]))))),
                         min(2.62, max(0.0, -0.30 + np.sqrt(max(0.0, 8.00 * (-0.1458 - q[3]))))),
                         min(5.26, max(0.0, -0.35 + np.sqrt(max(0.0, 34.0 * (2.81010 - q[4]))))),
                         min(4.18, max(0.0, -0.35 + np.sqrt(max(0.0, 11.0 * (4.52050 - q[5]))))),
                         min(5.26, max(0.0, -0.35 + np.sqrt(max(0.0, 34.0 * (3.01960 - q[6])))))])

    def lower(q):
        return np.array([max(-2.62, min(0.0, 0.30 - np.sqrt(max(0.0, 12.0 * (2.75010 + q[0]))))),
                         max(-2.62, min(0.0, 0.20 - np.sqrt(max(0.0, 5.17 * (1.79180 + q[1]))))),
                         max(-2.62, min(0.0, 0.20 - np.sqrt(max(0.0, 7.00 * (2.90650 + q[2]))))),
                         max(-2.62, min(0.0, 0.30 - np.sqrt(max(0.0, 8.00 * (3.04810 + q[3]))))),
                         max(-5.26, min(0.0, 0.35 - np.sqrt(max(0.0, 34.0 * (2.81010 + q[4]))))),
                         max(-4.18, min(0.0, 0.35 - np.sqrt(max(0.0, 11.0 * (-0.54092 + q[5]))))),
                         max(-5.26, min(0.0, 0.35 - np.sqrt(max(0.0, 34.0 * (3.01960 + q[6])))))])

    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.uniform(FR3.q_min, FR3.q_max)
        lo, hi = FR3.velocity_bounds(q)
        np.testing.assert_allclose(hi, upper(q), atol=1e-12)
        np.testing.assert_allclose(lo, lower(q), atol=1e-12)
    lo, hi = PANDA.velocity_bounds(PANDA.q_ready)
    np.testing.assert_array_equal(hi, PANDA.dq_max)


def test_loop_refuses_an_fr3_stream_that_outruns_the_envelope_near_a_stop() -> None:
    """Joint 4 cruises at 1.2 rad/s (under the constant 2.62 rad/s) and brakes at 8.5 rad/s^2 to stop
    at -0.30 rad, inside the FR3's range and the loop's margin: too fast for the position-based
    envelope near the stop (it allows braking at 4 rad/s^2 only). The Panda's limits accept it."""
    from dream2flow.control.safety import SafetyLayer

    v_top, dec, q0, q_stop = 1.2, 8.5, -1.57, -0.30
    t_a = v_top / dec                                               # accelerate, cruise, brake
    t_c = (q_stop - q0 - v_top * t_a) / v_top
    t = np.arange(0.0, 2 * t_a + t_c + 0.3, 0.01)                   # the loop's 100 Hz stream

    def pos(tt: float) -> float:
        if tt < t_a:
            return q0 + 0.5 * dec * tt * tt
        if tt < t_a + t_c:
            return q0 + 0.5 * v_top * t_a + v_top * (tt - t_a)
        r = max(0.0, 2 * t_a + t_c - tt)
        return q_stop - 0.5 * dec * r * r

    q = np.repeat(Q_SIM[None], len(t), axis=0)
    q[:, 3] = [pos(x) for x in t]
    cfg = LoopConfig()
    reason = SafetyLayer(FR3, cfg).check_stream(t, q, q[0], cfg.start_tolerance_rad, 0.01)
    assert reason is not None and "position-based" in reason and "joint 4" in reason
    assert SafetyLayer(PANDA, cfg).check_stream(t, q, q[0], cfg.start_tolerance_rad, 0.01) is None
    slow = q.copy()
    slow[:, 3] = q[0, 3] + (q[:, 3] - q[0, 3]) * 0.5                # half the swing: far from the stop
    assert SafetyLayer(FR3, cfg).check_stream(t, slow, slow[0], cfg.start_tolerance_rad, 0.01) is None


# -- the 1 kHz path and libfranka's checks ---------------------------------------------------
def test_interpolated_path_is_exact_at_the_loops_samples_and_at_rest_at_both_ends() -> None:
    plan = _cosine_plan(np.array([0.3, 0.2, -0.2, 0.3, 0.3, -0.2, 0.4]))
    s = _stream(plan, Q_SIM)
    path = interpolate_stream(s.t_s, s.q)
    assert path.shape == (int(round(s.t_s[-1] * 1000)) + 1, 7)
    np.testing.assert_array_equal(path[::10], s.q)               # 100 Hz samples land on 1 kHz ones
    assert check_1khz(path, FR3) is None
    v = np.diff(path, axis=0) / DT_S
    a = np.diff(v, axis=0) / DT_S
    assert np.abs(v[0]).max() < 1e-3 and np.abs(a[0]).max() < 1.0       # leaves rest smoothly
    assert np.abs(v[-3:]).max() < 1e-9 and np.abs(a[-3:]).max() < 1e-6   # and ends at rest
    s1k = _stream(plan, Q_SIM, rate=1000.0)
    np.testing.assert_array_equal(interpolate_stream(s1k.t_s, s1k.q), s1k.q)   # 1 kHz: used as it is


def test_check_1khz_names_what_libfranka_would_reject() -> None:
    path = np.repeat(Q_SIM[None], 200, axis=0)
    jump = path.copy()
    jump[100:, 0] += np.arange(100) * DT_S * 0.2              # a 0.2 rad/s velocity step: 200 rad/s^2 at 1 kHz
    jump[150:, 0] = jump[149, 0]
    bad = check_1khz(jump, FR3)
    assert bad.kind == "acceleration" and bad.joint == 0 and bad.index == 101   # the first moving sample
    assert "joint_motion_generator_velocity_discontinuity" in bad.describe()
    kink = path.copy()                                       # an acceleration step: 4000 rad/s^3 ... at 1 kHz
    t = np.arange(100) * DT_S
    kink[100:, 1] += 6.0 * t * t                              # FD acceleration 6 then 12: 6000 rad/s^3 first
    bad = check_1khz(kink, FR3, require_rest=False)
    assert bad.kind == "jerk" and "joint_motion_generator_acceleration_discontinuity" in bad.describe()
    out = path.copy()
    out[:, 3] = FR3.q_max[3] + 0.01
    assert check_1khz(out, FR3, q_start=out[0]).kind == "position"
    moving = path + np.arange(200)[:, None] * 1e-5             # still moving at the end
    assert check_1khz(moving, FR3, q_start=moving[0]).kind in ("rest", "acceleration")


def test_backend_refuses_a_stream_with_a_velocity_jump_before_connecting(tmp_path, monkeypatch) -> None:
    from dream2flow.control.backends.libfranka import LibfrankaBackend

    monkeypatch.setenv("D2F_STATE_DIR", str(tmp_path))
    b = LibfrankaBackend(robot_ip="127.0.0.250", limits=FR3)
    t = np.arange(101) / 100.0
    q = np.repeat(Q_SIM[None], 101, axis=0)
    q[50:, 0] += (t[50:] - t[50]) * 0.5                       # jumps to 0.5 rad/s at t = 0.5 s
    q[90:, 0] = q[89, 0]
    reason = b.prepare_stream(t, q, Q_SIM)
    assert reason is not None and "libfranka" in reason and "discontinuity" in reason
    with pytest.raises(Exception, match="no prepared stream|not connected"):
        b.command_joint_positions(q[0])
    smooth = _stream(_cosine_plan(np.full(7, 0.1)), Q_SIM)
    assert b.prepare_stream(smooth.t_s, smooth.q, Q_SIM) is None


def test_start_offset_is_blended_out_and_checked() -> None:
    plan = _cosine_plan(np.full(7, 0.2))
    q_robot = Q_SIM + 0.0015                                 # inside the loop's 2 mrad start tolerance
    s = _stream(plan, q_robot)
    path = interpolate_stream(s.t_s, s.q)
    player = StreamPlayer(path, q_robot, FR3)
    cmds = [player.next(1, 1e9, True, False)[0]]
    np.testing.assert_array_equal(cmds[0], q_robot)           # the first command is where the robot is
    fin = False
    while not fin:
        c, fin = player.next(1, 1e9, True, False)
        cmds.append(c)
    assert check_1khz(np.array(cmds), FR3, q_start=q_robot) is None
    np.testing.assert_allclose(cmds[-1], path[-1], atol=1e-12)


def test_a_motion_that_starts_elsewhere_than_primed_fades_from_there() -> None:
    """The fade is primed from the q_d read before the motion; when the robot's first cycle
    reports another q_d (seen after a reflex and its recovery: the idle q_d was stale), the
    stream starts there and fades onto the path within the limits — no velocity jump."""
    plan = _cosine_plan(np.full(7, 0.2))
    s = _stream(plan, Q_SIM)
    path = interpolate_stream(s.t_s, s.q)
    player = StreamPlayer(path, Q_SIM, FR3)
    player.prime()                                           # before the motion, from the idle q_d
    assert not player.start_at(Q_SIM)                        # same q_d: nothing to redo
    moved = Q_SIM + np.array([0.0015, -0.001, 0.0, 0.0005, 0.0, 0.0, -0.0015])
    player = StreamPlayer(path, Q_SIM, FR3)
    player.prime()
    assert player.start_at(moved)
    cmds = [player.next(1, 1e9, True, False)[0]]
    np.testing.assert_array_equal(cmds[0], moved)             # the first command is where the robot is
    fin = False
    while not fin:
        c, fin = player.next(1, 1e9, True, False)
        cmds.append(c)
    assert not player.stopping
    assert check_1khz(np.array(cmds), FR3, q_start=moved) is None
    np.testing.assert_allclose(cmds[-1], path[-1], atol=1e-12)


# -- stops, gaps, a stalled loop -------------------------------------------------------------
def _fci_extrapolate(applied: list[np.ndarray]) -> np.ndarray:
    """The robot's next reference when it has no command for a cycle: constant acceleration from the
    last three it applied (v += a·dt, q += v·dt)."""
    h = np.array(applied[-3:])
    return h[2] + ((h[2] - h[1]) / DT_S + (h[2] - 2 * h[1] + h[0]) / DT_S) * DT_S


def _robot_side(player: StreamPlayer, gaps: np.ndarray, *, released=lambda k: 1e9, stop_at: int | None = None,
                drops: np.ndarray | None = None, tell_q_d: bool = False,
                max_cycles: int = 20000) -> tuple[np.ndarray, bool]:
    """Run the player like the 1 kHz process; the robot extrapolates the cycles a gap skips at constant
    acceleration (FCI's packet-loss rule), and also the cycle of a command in a ``drops`` cycle (it
    arrived after its 1 ms window: the FCI drops it). Each state carries (q_d, dq_d, ddq_d), the
    reference the robot applied last (float32 on the wire), handed to the player when ``tell_q_d``.
    Returns the commands the robot applied, and finished."""
    applied: list[np.ndarray] = []
    fin = False
    k = 0
    while k < max_cycles and not fin:
        n = int(gaps[k % len(gaps)]) if k else 1
        for _ in range(n - 1 if applied else 0):
            applied.append(_fci_extrapolate(applied))
        ref = None
        if tell_q_d and applied:
            h = np.array(([applied[0]] * 2 + applied)[-3:])
            ref = tuple(x.astype(np.float32).astype(np.float64) for x in
                        (h[2], (h[2] - h[1]) / DT_S, (h[2] - 2 * h[1] + h[0]) / DT_S ** 2))
        cmd, fin = player.next(n, released(k), released(k) >= 1e9, stop_at is not None and k >= stop_at, ref)
        dropped = drops is not None and len(applied) >= 3 and bool(drops[k % len(drops)])
        applied.append(_fci_extrapolate(applied) if dropped else cmd)
        k += 1
    return np.array(applied), fin


def test_gaps_in_the_stream_are_rejoined_without_a_discontinuity() -> None:
    plan = _cosine_plan(np.array([0.4, 0.3, -0.3, 0.4, 0.5, -0.3, 0.6]))
    s = _stream(plan, Q_SIM)
    path = interpolate_stream(s.t_s, s.q)
    rng = np.random.default_rng(3)
    gaps = np.where(rng.random(5000) < 0.01, rng.integers(2, 16, 5000), 1)   # 1 % of cycles late by 1..15 ms
    player = StreamPlayer(path, Q_SIM, FR3)
    applied, fin = _robot_side(player, gaps)
    assert fin and player.gaps > 10 and player.max_gap >= 10 and not player.stopping
    assert check_1khz(applied, FR3, q_start=Q_SIM) is None
    np.testing.assert_allclose(applied[-1], path[-1], atol=1e-12)


def test_commands_the_robot_dropped_are_read_from_q_d_and_rejoined() -> None:
    """A command that reaches the robot after its 1 ms window is dropped and the cycle extrapolated
    (FCI's rule); right after a gap that happens easily (the process was just descheduled). The
    player reads which commands were taken from the state's q_d and continues from the robot's own
    reference; assuming every command was taken instead gives libfranka's discontinuity reflex."""
    plan = _cosine_plan(np.array([0.4, 0.3, -0.3, 0.4, 0.5, -0.3, 0.6]))
    s = _stream(plan, Q_SIM)
    path = interpolate_stream(s.t_s, s.q)
    rng = np.random.default_rng(5)
    gaps = np.where(rng.random(5000) < 0.01, rng.integers(8, 16, 5000), 1)
    drops = (gaps > 1) | (rng.random(5000) < 0.003)     # the first answer after every gap, and a few others
    drops = np.roll(drops, -1)                           # ...i.e. the answer just before a gap is the late one
    player = StreamPlayer(path, Q_SIM, FR3)
    applied, fin = _robot_side(player, gaps, drops=drops, tell_q_d=True)
    assert fin and player.gaps > 10 and player.dropped > 0 and not player.stopping and player.unexplained == 0
    assert check_1khz(applied, FR3, q_start=Q_SIM) is None
    np.testing.assert_allclose(applied[-1], path[-1], atol=1e-6)
    blind = StreamPlayer(path, Q_SIM, FR3)
    applied, _ = _robot_side(blind, gaps, drops=drops)
    bad = check_1khz(applied, FR3, q_start=Q_SIM)
    assert bad is not None and bad.kind in ("acceleration", "jerk"), bad


def test_stop_and_a_stalled_loop_end_the_motion_smoothly() -> None:
    plan = _cosine_plan(np.array([0.6, 0.5, -0.5, 0.6, 0.8, -0.5, 0.9]), T=2.0)
    s = _stream(plan, Q_SIM)
    path = interpolate_stream(s.t_s, s.q)
    player = StreamPlayer(path, Q_SIM, FR3)
    applied, fin = _robot_side(player, np.ones(1, int), stop_at=700)            # mid-motion, near top speed
    assert fin and player.stopping and "stop" in player.reason
    assert check_1khz(applied, FR3, q_start=Q_SIM) is None                       # at rest, within limits
    assert len(applied) < 700 + 600                                               # it brakes, it does not coast
    stalled = StreamPlayer(path, Q_SIM, FR3, max_lead_s=0.1)
    applied, fin = _robot_side(stalled, np.ones(1, int), released=lambda k: 0.5)  # loop stops releasing at 0.5 s
    assert fin and "stopped releasing" in stalled.reason
    assert check_1khz(applied, FR3, q_start=Q_SIM) is None
    assert (len(applied) - 1) * DT_S < 0.5 + 0.1 + 0.5


def test_smooth_stop_bounds_acceleration_and_jerk_from_any_state() -> None:
    acc, jerk = stop_limits(FR3)
    rng = np.random.default_rng(7)
    for _ in range(200):
        v = rng.uniform(-2.5, 2.5, 7) * rng.choice([0.0, 0.01, 1.0], 7)
        a = rng.uniform(-9, 9, 7) * rng.choice([0.0, 0.001, 1.0], 7)
        q = np.zeros(7)
        hist = [q - v * DT_S - (v - a * DT_S) * DT_S, q - v * DT_S, q]
        stop = SmoothStop(q, v, a, acc, jerk)
        cmds = list(hist)
        while not stop.done:
            cmds.append(stop.step())
            assert stop.steps < 2000
        c = np.array(cmds + [cmds[-1]] * 3)
        fv = np.diff(c, axis=0) / DT_S
        fa = np.diff(fv, axis=0) / DT_S
        fj = np.diff(fa, axis=0) / DT_S
        assert np.abs(fa).max() <= acc.max() + 1e-6 and np.abs(fj).max() <= jerk.max() + 1e-3
        assert np.abs(fv[-1]).max() == 0.0


# -- the vendored FR3 model for franka-sim ---------------------------------------------------
def test_vendored_fr3_mjcf_is_generated_and_matches_the_kinematics() -> None:
    import mujoco

    from dream2flow.control.kinematics import fk_links

    gen = ROOT / "tests" / "fr3_sim" / "make_fr3_mjcf.py"
    out = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    m = mujoco.MjModel.from_xml_path(str(ROOT / "tests" / "fr3_sim" / "fr3.xml"))
    d = mujoco.MjData(m)
    names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, i) for i in range(m.njnt)]
    assert names == [f"fr3_joint{i}" for i in range(1, 8)]                        # what franka-sim looks up
    np.testing.assert_array_equal(m.jnt_range[:, 0], FR3.q_min)
    np.testing.assert_array_equal(m.jnt_range[:, 1], FR3.q_max)
    assert abs(m.body_subtreemass[0] - 17.89) < 0.01                              # franka_description's FR3 links
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(FR3.q_min, FR3.q_max)
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        T = fk_links(q)
        for i, body in enumerate([f"fr3_link{k}" for k in range(1, 9)]):
            b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, body)
            np.testing.assert_allclose(d.xpos[b], T[i, :3, 3], atol=1e-12)
            np.testing.assert_allclose(d.xmat[b].reshape(3, 3), T[i, :3, :3], atol=1e-12)


# -- the backend's refusals that need no robot -----------------------------------------------
def test_a_latched_fault_refuses_connect_until_recovered(tmp_path, monkeypatch) -> None:
    from dream2flow.control.backends.libfranka import LibfrankaBackend
    from dream2flow.errors import NotReady

    monkeypatch.setenv("D2F_STATE_DIR", str(tmp_path))
    b = LibfrankaBackend(robot_ip="127.0.0.251")
    b._write_latch("libfranka stopped the motion: communication_constraints_violation", {"robot_mode": "Reflex"})
    with pytest.raises(NotReady, match="fault is latched.*communication_constraints_violation.*robot recover"):
        b.connect()
    assert b.latched_fault()["message"].startswith("libfranka stopped")
    b.clear_fault()
    assert b.latched_fault() is None


def test_libfranka_config_is_strict(tmp_path) -> None:
    from dream2flow.control.backends.libfranka import libfranka_config_from_dict
    from dream2flow.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown key 'robot_adress'"):
        libfranka_config_from_dict({"robot_adress": "1.2.3.4"}, "x.toml")
    with pytest.raises(InvalidInput, match="FR3"):
        libfranka_config_from_dict({"model": "panda"}, "x.toml")
    with pytest.raises(InvalidInput, match="max_lead_s"):
        libfranka_config_from_dict({"max_lead_s": 5.0}, "x.toml")
    cfg = libfranka_config_from_dict({"robot_ip": "10.0.0.2", "gripper": {"force_n": 30.0}}, "x.toml")
    assert cfg.robot_ip == "10.0.0.2" and cfg.gripper_force_n == 30.0


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_execute_libfranka_needs_yes_and_an_fr3(tmp_path) -> None:
    plan = _cosine_plan(np.full(7, 0.1))
    p = plan.save(tmp_path / "plan.npz")
    out = _cli("execute", "--plan", str(p), "--backend", "libfranka", "--robot", "127.0.0.252")
    assert out.returncode == 2 and "moves a real arm" in out.stderr and "--yes" in out.stderr
    assert "Traceback" not in out.stderr
    out = _cli("execute", "--plan", str(p), "--backend", "libfranka", "--robot", "127.0.0.252", "--yes",
               "--robot-model", "panda")
    assert out.returncode == 2 and "FR3" in out.stderr
    out = _cli("execute", "--plan", str(p), "--backend", "kinematic", "--robot", "127.0.0.252")
    assert out.returncode == 2 and "--robot applies to --backend libfranka" in out.stderr
    out = _cli("robot", "recover", "--robot", "127.0.0.252")
    assert out.returncode == 2 and "--yes" in out.stderr


def test_service_holds_on_a_robot_fault_and_reset_recovers() -> None:
    """A backend's latched fault (a libfranka reflex) puts the service in ESTOPPED like an e-stop;
    the operator's Reset is the explicit recovery."""
    import threading

    from dream2flow.service.config import ServiceConfig
    from dream2flow.service.devices import Devices
    from dream2flow.service.runner import ESTOPPED, READY, TaskRunner

    class FaultyArm:
        name, simulated, moves_real_arm = "libfranka", False, True

        def __init__(self) -> None:
            self.fault = "libfranka stopped the motion: communication_constraints_violation"
            self.recovered = 0

        def connect(self) -> None: ...

        def stop(self) -> None: ...

        def close(self) -> None: ...

        def recover(self) -> dict:
            self.recovered += 1
            self.fault = None
            return {}

    arm = FaultyArm()
    cfg = ServiceConfig()
    devices = Devices(cfg, camera=object(), backend_factory=lambda name, dev: arm)
    devices.backend("kinematic")
    runner = TaskRunner.__new__(TaskRunner)               # only the mode logic, no store or thread
    runner.devices, runner.store = devices, None
    runner._lock = threading.Lock()
    runner._wake = threading.Condition(runner._lock)
    runner.mode, runner.mode_reason, runner.current = READY, "", None
    runner.on_mode = lambda m, r: None
    runner.notify = lambda tid: None

    class NoStore:
        def queued_ids(self):
            return []

    runner.store = NoStore()
    runner._hold_on_robot_fault()
    assert runner.mode == ESTOPPED and "communication_constraints_violation" in runner.mode_reason
    assert devices.estop.is_set() and arm.recovered == 0            # never recovered by itself
    runner.reset()
    assert runner.mode == READY and arm.recovered == 1 and arm.fault is None


def test_service_config_for_an_fr3() -> None:
    from dream2flow.errors import InvalidInput
    from dream2flow.service.config import config_from_dict

    with pytest.raises(InvalidInput, match="drives an FR3"):
        config_from_dict({"robot": {"backend": "libfranka", "model": "panda", "robot_ip": "10.0.0.2"}})
    with pytest.raises(InvalidInput, match="does not go with the mujoco"):
        config_from_dict({"robot": {"backend": "mujoco", "model": "fr3"}})
    cfg = config_from_dict({"robot": {"backend": "libfranka", "robot_ip": "10.0.0.2"}})
    assert cfg.robot.arm_model == "fr3"
    assert config_from_dict({"robot": {"backend": "kinematic"}}).robot.arm_model == "panda"
