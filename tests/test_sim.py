"""Simulation scenes, camera, success checks, kinematics and determinism (issue 3)."""

from __future__ import annotations

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from dream2flow.config import load_robot_limits  # noqa: E402
from dream2flow.errors import InvalidInput  # noqa: E402
from dream2flow.sim import TASKS, make_env  # noqa: E402
from dream2flow.sim.camera import (  # noqa: E402
    builtin_camera, camera_from_mujoco, default_camera, fovy_deg, intrinsics, look_at)
from dream2flow.types import CameraModel  # noqa: E402

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def envs():
    out = {t: make_env(t, 1) for t in TASKS}
    yield out
    for e in out.values():
        e.close()


def _box_surface_dist(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.abs(np.minimum(q.max(axis=-1), 0))


def _flex_surface_dist(P: np.ndarray, model, data) -> np.ndarray:  # noqa: ANN001
    """[k] distance (m) of points ``P`` [k,3] to the rendered surface of every 2D flex (a cloth):
    its mid-surface triangles thickened by the flex radius (clamped barycentric: exact inside a
    triangle, an upper bound past its edges)."""
    best = np.full(len(P), np.inf)
    for f in range(model.nflex):
        adr, num = int(model.flex_vertadr[f]), int(model.flex_vertnum[f])
        e0, en = int(model.flex_elemdataadr[f]), int(model.flex_elemnum[f]) * 3
        tri = np.asarray(data.flexvert_xpos[adr:adr + num])[np.asarray(model.flex_elem[e0:e0 + en]).reshape(-1, 3)]
        for a, b, c in tri:
            v0, v1, v2 = b - a, c - a, P - a
            d00, d01, d11 = v0 @ v0, v0 @ v1, v1 @ v1
            den = d00 * d11 - d01 * d01
            w1 = (d11 * (v2 @ v0) - d01 * (v2 @ v1)) / den
            w2 = (d00 * (v2 @ v1) - d01 * (v2 @ v0)) / den
            w = np.clip(np.stack([1 - w1 - w2, w1, w2], 1), 0, None)
            w /= w.sum(1, keepdims=True)
            q = w @ np.stack([a, b, c])
            best = np.minimum(best, np.abs(np.linalg.norm(P - q, axis=1) - float(model.flex_radius[f])))
    return best


def _dh_fk(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flange and TCP poses from the team's modified-DH table (DESIGN.md)."""
    a = (0, 0, 0, 0.0825, -0.0825, 0, 0.088)
    d = (0.333, 0, 0.316, 0, 0.384, 0, 0)
    al = (0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2)
    T = np.eye(4)
    for i in range(7):
        ca, sa, ct, st = np.cos(al[i]), np.sin(al[i]), np.cos(q[i]), np.sin(q[i])
        T = T @ np.array([[ct, -st, 0, a[i]], [st * ca, ct * ca, -sa, -sa * d[i]],
                          [st * sa, ct * sa, ca, ca * d[i]], [0, 0, 0, 1]])
    flange = T @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.107], [0, 0, 0, 1.0]])
    c, s = np.cos(-np.pi / 4), np.sin(-np.pi / 4)
    tcp = flange @ np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0.1034], [0, 0, 0, 1.0]])
    return flange, tcp


def test_unknown_task_and_bad_seed_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        make_env("fold_laundry", 0)
    with pytest.raises(InvalidInput):
        make_env("open_drawer", -1)


@pytest.mark.parametrize("task", TASKS)
def test_task_loads_and_renders_rgbd(envs, task: str) -> None:
    env = envs[task]
    assert env.instruction and env.object_prompt
    rgbd = env.render_rgbd()
    assert rgbd.rgb.shape == (480, 640, 3) and rgbd.rgb.dtype == np.uint8
    assert rgbd.depth_m.shape == (480, 640) and rgbd.depth_m.dtype == np.float32
    assert (rgbd.depth_m > 0).mean() > 0.95 and rgbd.depth_m.max() < 10
    assert rgbd.rgb.std() > 10  # not a blank frame
    seg = env.render_segmentation()
    assert seg.shape == (480, 640) and seg.dtype == np.int32
    obj = np.isin(seg, env.object_body_ids)
    assert obj.sum() > 500, "the task object must be well in view"
    x0, y0, x1, y1 = env.object_box()
    ys, xs = np.nonzero(obj)
    assert x0 <= xs.min() and xs.max() <= x1 and y0 <= ys.min() and ys.max() <= y1
    assert 0 <= x0 < x1 < 640 and 0 <= y0 < y1 < 480
    # the robot at its home pose hides none of the object
    assert (obj & ~env.object_mask(robot=True)).sum() == 0
    assert np.array_equal(obj, env.object_mask(robot=False))
    # the object's pixels differ from the furniture/table around them (segmentation needs contrast)
    assert rgbd.rgb[obj].std() > 15


@pytest.mark.parametrize("task", TASKS)
def test_success_check_on_scripted_success_and_failure(task: str) -> None:
    with make_env(task, 2) as env:
        r0 = env.success()
        assert not r0.success and r0.reason
        env.set_task_progress(1.0)
        r1 = env.success()
        assert r1.success, r1.reason
        env.set_task_progress(0.3)
        assert not env.success().success  # a third of the way is not done (success thresholds are real)
        env.reset()
        env.set_failure_state()
        r2 = env.success()
        assert not r2.success, r2.reason
        if task == "bread_in_bowl":
            assert r1.value < r2.value  # distance to the bowl's centre
        else:
            assert r1.value > r2.value > r0.value  # opening (m) / door angle (rad)


@pytest.mark.parametrize("task", TASKS)
def test_depth_backprojects_onto_object_surface_within_2mm(envs, task: str) -> None:
    env = envs[task]
    m, d = env.model, env.data
    depth = env.render_depth()
    seg = env.render_segmentation()
    cam = env.camera_model()
    v, u = np.nonzero(np.isin(seg, env.object_body_ids) & (depth > 0))
    P = cam.backproject(np.stack([u, v], 1).astype(float), depth[v, u])
    best = np.full(len(P), np.inf)
    for g in range(m.ngeom):
        if m.geom_bodyid[g] in env.object_body_ids and m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
            R = d.geom_xmat[g].reshape(3, 3)
            best = np.minimum(best, _box_surface_dist((P - d.geom_xpos[g]) @ R, m.geom_size[g]))
    if m.nflex:  # a cloth's pixels lie on its flex's surface
        best = np.minimum(best, _flex_surface_dist(P, m, d))
    assert len(P) > 500
    assert np.percentile(best, 99) < 0.002 and np.median(best) < 0.0005
    # and the table top (z = 0 plane by convention)
    tv, tu = np.nonzero((seg == m.body("table").id) & (depth > 0))
    Pt = cam.backproject(np.stack([tu, tv], 1).astype(float), depth[tv, tu])
    assert np.percentile(np.abs(Pt[:, 2]), 99) < 0.002


def test_camera_model_is_what_mujoco_renders(envs) -> None:
    env = envs["open_drawer"]
    cam = env.camera_model()
    assert cam.width == 640 and cam.height == 480
    assert cam.K[0, 0] == pytest.approx(615.0) and cam.K[1, 1] == pytest.approx(615.0)
    assert cam.K[0, 2] == pytest.approx(319.5) and cam.K[1, 2] == pytest.approx(239.5)
    mj = camera_from_mujoco(env.model, env.data, 640, 480)
    np.testing.assert_allclose(mj.K, cam.K, atol=1e-6)
    np.testing.assert_allclose(mj.T_base_cam, cam.T_base_cam, atol=1e-6)
    assert default_camera().T_base_cam[2, 3] > 0.3  # above the table, looking down at the workspace
    np.testing.assert_allclose(default_camera().T_base_cam, builtin_camera().T_base_cam, atol=1e-12)
    np.testing.assert_allclose(default_camera().K, builtin_camera().K)
    # each finger pad projects onto that finger's pixels (OpenCV <-> MuJoCo axes conversion)
    seg = env.render_segmentation()
    for side in ("left", "right"):
        (u, v), z = cam.project(env.data.geom_xpos[env.model.geom(f"panda_{side}finger_pad").id])
        assert z > 0 and 0 <= u < 640 and 0 <= v < 480
        win = seg[int(v) - 3:int(v) + 4, int(u) - 3:int(u) + 4]
        assert (win == env.model.body(f"panda_{side}finger").id).mean() > 0.5


def test_custom_camera_and_unsupported_intrinsics() -> None:
    T = look_at(np.array([0.2, -0.6, 0.6]), np.array([0.5, 0.0, 0.1]))
    cam = CameraModel(K=intrinsics(320, 240, 300.0), width=320, height=240, T_base_cam=T)
    with make_env("bread_in_bowl", 0, camera=cam) as env:
        rgbd = env.render_rgbd()
        assert rgbd.rgb.shape == (240, 320, 3)
        mj = camera_from_mujoco(env.model, env.data, 320, 240)
        np.testing.assert_allclose(mj.T_base_cam, T, atol=1e-6)
    skewed = CameraModel(K=np.array([[600.0, 0, 300], [0, 615, 240], [0, 0, 1]]), width=640, height=480)
    with pytest.raises(InvalidInput):
        fovy_deg(skewed)


def test_mjcf_kinematics_match_dh_within_1mm(envs) -> None:
    env = envs["bread_in_bowl"]
    m = env.model
    d = mujoco.MjData(m)
    lim = load_robot_limits()
    rng = np.random.default_rng(0)
    qadr = [m.jnt_qposadr[m.joint(f"panda_joint{i}").id] for i in range(1, 8)]
    for k in range(8):
        q = lim.q_ready if k == 0 else rng.uniform(lim.q_min, lim.q_max)
        d.qpos[qadr] = q
        mujoco.mj_kinematics(m, d)
        flange, tcp = _dh_fk(np.asarray(q))
        fb, ts = m.body("panda_link8").id, m.site("panda_tcp").id
        assert np.abs(d.xpos[fb] - flange[:3, 3]).max() < 1e-3
        assert np.abs(d.site_xpos[ts] - tcp[:3, 3]).max() < 1e-3
        assert np.abs(d.site_xmat[ts].reshape(3, 3) - tcp[:3, :3]).max() < 1e-3
        if k == 0:
            np.testing.assert_allclose(d.xpos[fb], [0.307, 0.0, 0.590], atol=1e-3)
    # TCP y is the finger closing axis: opening the fingers moves the pads along ±TCP y
    d.qpos[qadr] = lim.q_ready
    for j, w in (("panda_finger_joint1", 0.0), ("panda_finger_joint2", 0.0)):
        d.qpos[m.jnt_qposadr[m.joint(j).id]] = w
    mujoco.mj_kinematics(m, d)
    p0 = d.geom_xpos[m.geom("panda_rightfinger_pad").id].copy()
    d.qpos[m.jnt_qposadr[m.joint("panda_finger_joint2").id]] = 0.03
    mujoco.mj_kinematics(m, d)
    step = d.geom_xpos[m.geom("panda_rightfinger_pad").id] - p0
    y_tcp = d.site_xmat[m.site("panda_tcp").id].reshape(3, 3)[:, 1]
    assert abs(abs(step @ y_tcp) - 0.03) < 1e-6


def test_joint_and_actuator_limits_match_hw(envs) -> None:
    m = envs["open_oven"].model
    lim = load_robot_limits()
    for i in range(7):
        j = m.joint(f"panda_joint{i + 1}")
        np.testing.assert_allclose(m.jnt_range[j.id], [lim.q_min[i], lim.q_max[i]])
        a = m.actuator(f"panda_act{i + 1}")
        np.testing.assert_allclose(m.actuator_forcerange[a.id], [-lim.tau_max[i], lim.tau_max[i]])
    assert m.opt.timestep in (0.001, 0.002)
    fr = m.jnt_range[m.joint("panda_finger_joint1").id]
    assert 2 * fr[1] == pytest.approx(lim.gripper_max_width_m)


def test_same_seed_same_pictures_and_rollout_different_seed_differs() -> None:
    def run(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with make_env("bread_in_bowl", seed) as env:
            rgb, depth = env.render_rgb(), env.render_depth()
            b = env.robot_backend()
            b.connect()
            q = env.q_home.copy()
            for k in range(60):
                q = q + 0.004 * np.array([1, 0.5, -1, 0.5, 1, -0.5, 1])
                b.command_joint_positions(q)
                b.step(0.01)
            b.gripper(grasp=True)
            for _ in range(20):
                b.step(0.01)
            return rgb, depth, np.array(env.data.qpos)

    a, b_, c = run(3), run(3), run(4)
    assert np.array_equal(a[0], b_[0]) and np.array_equal(a[1], b_[1]) and np.array_equal(a[2], b_[2])
    assert not np.array_equal(a[0], c[0])


def test_reset_restores_the_initial_state() -> None:
    with make_env("open_drawer", 5) as env:
        q0, img0 = np.array(env.data.qpos), env.render_rgb()
        env.set_task_progress(1.0)
        assert not np.array_equal(env.data.qpos, q0)
        env.reset()
        assert np.array_equal(env.data.qpos, q0) and np.array_equal(env.render_rgb(), img0)
