"""The MuJoCo RobotBackend: protocol, joint tracking, stepping, gripper, and grasping by contact
(pick the bread into the bowl, open the drawer and the oven door with top-down handle grasps)."""

from __future__ import annotations

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from dream2flow.config import load_robot_limits  # noqa: E402
from dream2flow.control.backend import RobotBackend  # noqa: E402
from dream2flow.errors import InvalidInput, NotReady, SafetyViolation  # noqa: E402
from dream2flow.sim import make_env  # noqa: E402
from dream2flow.sim.robot import MujocoRobotBackend  # noqa: E402
from dream2flow.sim.tasks.base import min_jerk  # noqa: E402

pytestmark = pytest.mark.sim
LIM = load_robot_limits()


def _ik(env, q_seed: np.ndarray, pos: np.ndarray, R: np.ndarray, iters: int = 400) -> np.ndarray:
    """Damped least-squares IK of the TCP site (test helper; the planner has its own)."""
    m = env.model
    d = mujoco.MjData(m)
    b = env.robot_backend()
    q = np.array(q_seed, float)
    sid = m.site("panda_tcp").id
    for _ in range(iters):
        d.qpos[b._qadr] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        Rc = d.site_xmat[sid].reshape(3, 3)
        ep = pos - d.site_xpos[sid]
        er = 0.5 * sum(np.cross(Rc[:, i], R[:, i]) for i in range(3))
        if np.linalg.norm(ep) < 1e-5 and np.linalg.norm(er) < 1e-4:
            break
        jp, jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jacSite(m, d, jp, jr, sid)
        J = np.vstack([jp[:, b._dadr], 0.5 * jr[:, b._dadr]])
        e = np.concatenate([ep, 0.5 * er])
        dq = J.T @ np.linalg.solve(J @ J.T + 1e-3 * np.eye(6), e)
        if np.linalg.norm(e) < 0.02:  # near the target: drift towards the seed in the null space
            dq += (np.eye(7) - np.linalg.pinv(J) @ J) @ (0.05 * (np.asarray(q_seed) - q))
        q = np.clip(q + np.clip(dq, -0.1, 0.1), LIM.q_min + 0.02, LIM.q_max - 0.02)
    assert np.linalg.norm(ep) < 1e-3 and np.linalg.norm(er) < 1e-2, "test IK did not converge"
    return q


def _move(b: MujocoRobotBackend, q_to: np.ndarray, dur: float, rate: float = 100.0) -> float:
    """Stream a min-jerk joint path at ``rate`` Hz; returns the max tracking error (rad)."""
    q_from = b.target()
    n = int(dur * rate)
    err = 0.0
    for k in range(1, n + 1):
        qd = q_from + (q_to - q_from) * min_jerk(k / n)
        b.command_joint_positions(qd)
        b.step(1.0 / rate)
        err = max(err, float(np.abs(b.state().q - qd).max()))
    return err


def _wait(b: MujocoRobotBackend, s: float) -> None:
    for _ in range(int(s * 100)):
        b.step(0.01)


def _top_down(closing_axis: np.ndarray) -> np.ndarray:
    z = np.array([0.0, 0.0, -1.0])
    y = np.asarray(closing_axis, float) / np.linalg.norm(closing_axis)
    return np.stack([np.cross(y, z), y, z], axis=1)


def test_backend_follows_the_protocol() -> None:
    with make_env("open_drawer", 0) as env:
        b = env.robot_backend()
        assert isinstance(b, RobotBackend) and b.name == "mujoco" and b.simulated
        assert env.robot_backend() is b
        with pytest.raises(NotReady):
            b.command_joint_positions(env.q_home)
        b.connect()
        b.connect()  # idempotent
        s = b.state()
        np.testing.assert_allclose(s.q, env.q_home, atol=2e-3)
        assert s.t_s == 0.0 and s.gripper_width_m == pytest.approx(0.08, abs=1e-3)
        with pytest.raises(InvalidInput):
            b.command_joint_positions(np.zeros(6))
        with pytest.raises(InvalidInput):
            b.command_joint_positions(np.full(7, np.nan))
        bad = env.q_home.copy()
        bad[3] = 0.5  # joint 4 max is -0.0698
        with pytest.raises(SafetyViolation):
            b.command_joint_positions(bad)
        with pytest.raises(InvalidInput):
            b.gripper(width_m=0.2)
        with pytest.raises(InvalidInput):
            b.step(0.0)
        b.close()
        with pytest.raises(NotReady):
            b.connect()


def test_step_advances_physics_by_rounded_timesteps() -> None:
    with make_env("bread_in_bowl", 0) as env:
        b = env.robot_backend()
        b.connect()
        ts = env.model.opt.timestep
        b.step(0.01)
        assert env.data.time == pytest.approx(0.01)
        b.step(ts * 2.4)
        assert env.data.time == pytest.approx(0.01 + 2 * ts)
        b.step(ts * 0.1)  # at least one step
        assert env.data.time == pytest.approx(0.01 + 3 * ts)
        assert b.state().t_s == pytest.approx(env.data.time)


def test_arm_tracks_a_smooth_joint_trajectory_within_0_01_rad() -> None:
    """Min-jerk path, peak 1 rad/s on joint 7, streamed at 100 Hz: measured max error ~0.003 rad."""
    with make_env("open_drawer", 0) as env:
        b = env.robot_backend()
        b.connect()
        delta = np.array([0.6, 0.4, -0.5, 0.5, 0.6, -0.5, 0.8])
        err = _move(b, env.q_home + delta, 1.5)
        assert err < 0.01
        _wait(b, 0.5)
        np.testing.assert_allclose(b.state().q, env.q_home + delta, atol=2e-3)
        # stop() holds where the arm is
        b.stop()
        q_stop = b.state().q
        _wait(b, 1.0)
        np.testing.assert_allclose(b.state().q, q_stop, atol=2e-3)


def test_gripper_opens_to_a_width_and_closes() -> None:
    with make_env("bread_in_bowl", 0) as env:
        b = env.robot_backend()
        b.connect()
        b.gripper(width_m=0.05)
        _wait(b, 0.6)
        assert b.gripper_width() == pytest.approx(0.05, abs=2e-3)
        b.gripper(grasp=True)  # nothing between the fingers: they close fully
        _wait(b, 0.6)
        assert b.gripper_width() < 0.003
        b.gripper()  # open fully
        _wait(b, 0.6)
        assert b.gripper_width() == pytest.approx(0.08, abs=2e-3)


def test_pick_bread_by_contact_and_place_it_in_the_bowl() -> None:
    """Top-down grasp across the piece's width, lift, carry, release: no welds, friction only."""
    with make_env("bread_in_bowl", 1) as env:
        m, d = env.model, env.data
        b = env.robot_backend()
        b.connect()
        bid = m.body("bread").id
        p = d.xpos[bid].copy()
        y = d.xmat[bid].reshape(3, 3)[:, 1]  # across the piece's width
        y_home = d.site_xmat[m.site("panda_tcp").id].reshape(3, 3)[:, 1]
        R = _top_down(y if y @ y_home >= 0 else -y)  # the fingers are symmetric: take the nearer yaw
        q_pre = _ik(env, env.q_home, p + [0, 0, 0.12], R)
        q_grasp = _ik(env, q_pre, p + [0, 0, 0.005], R)
        assert _move(b, q_pre, 2.0) < 0.01
        _move(b, q_grasp, 1.5)
        b.gripper(grasp=True)
        _wait(b, 0.6)
        width = b.gripper_width()
        assert 0.03 < width < 0.05  # stopped by the bread (3.6-4.4 cm wide)
        z0 = d.xpos[bid][2]
        _move(b, q_pre, 1.5)
        assert d.xpos[bid][2] > z0 + 0.09  # the bread rose with the hand
        assert b.gripper_width() == pytest.approx(width, abs=2e-3)
        bowl = np.array(env.info["bowl_center"])
        q_over = _ik(env, q_pre, bowl + [0, 0, 0.15], R)
        _move(b, q_over, 2.0)
        assert np.linalg.norm(d.xpos[bid][:2] - bowl[:2]) < 0.02  # carried, not dropped
        _move(b, _ik(env, q_over, bowl + [0, 0, 0.045], R), 1.5)
        b.gripper(width_m=0.08)
        _wait(b, 0.8)
        _move(b, q_over, 1.0)
        _wait(b, 0.5)
        r = env.success()
        assert r.success, r.reason


@pytest.mark.parametrize("task", ["open_drawer", "open_oven"])
def test_open_articulated_by_a_top_down_handle_grasp(task: str) -> None:
    """Grasp the handle from above, follow its path (drawer: straight pull; door: the arc about
    the vertical hinge, yawing the hand), release: the joint stays open past the threshold."""
    with make_env(task, 2) as env:
        b = env.robot_backend()
        b.connect()
        info = env.info
        h = np.array(info["handle_center"])
        yaw = info.get("cabinet_yaw_rad", info.get("oven_yaw_rad"))
        fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])  # into the furniture
        R = _top_down(fwd)
        q_pre = _ik(env, env.q_home, h + [0, 0, 0.10], R)
        q = _ik(env, q_pre, h, R)
        _move(b, q_pre, 2.0)
        _move(b, q, 1.5)
        b.gripper(grasp=True)
        _wait(b, 0.7)
        assert 0.015 < b.gripper_width() < 0.025  # on the 2 cm bar
        path = [q]
        for k in range(1, 21):
            if task == "open_drawer":
                pos, Rk = h - fwd * 0.18 * k / 20, R
            else:
                a = np.deg2rad(55.0) * k / 20  # hinge axis +z: rotate about it
                Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
                hp = np.array(info["hinge_point"])
                pos, Rk = hp + Rz @ (h - hp), Rz @ R
            path.append(_ik(env, path[-1], pos, Rk))
        for k in range(1, len(path)):
            err = _move(b, path[k], 0.2)
            assert err < 0.03  # tracking under load (the handle resists)
        b.gripper(width_m=0.08)
        _wait(b, 0.8)
        r = env.success()
        assert r.success, r.reason
        if task == "open_drawer":
            assert r.value > 0.15
        else:
            assert r.value > np.deg2rad(45)


def test_sim_bench_quick_runs() -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    out = subprocess.run([sys.executable, str(root / "bench" / "sim_bench.py"), "--quick"], capture_output=True,
                         text=True, timeout=300, env=env, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    measures = {r["measure"] for r in rows}
    assert {"render_rgb_ms", "render_depth_ms", "physics_steps_per_s", "generate_video_s"} <= measures
    assert all(r["value"] > 0 for r in rows)
