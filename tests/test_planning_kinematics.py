"""Planning building blocks: Panda FK against the URDF chain (and MuJoCo's Panda model), IK,
rigid fits, time alignment, grasp proposals, limit checks, config."""

from __future__ import annotations

import numpy as np
import pytest

from dream2flow.config import hw_dir, load_robot_limits
from dream2flow.errors import InvalidInput, PlanningFailed
from dream2flow.planning import kinematics as K
from dream2flow.planning import urdf

LIM = load_robot_limits()
URDF = hw_dir() / "robot" / "panda.urdf"


def _random_q(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(LIM.q_min, LIM.q_max, size=(n, 7))


def test_fk_matches_urdf_chain_link_by_link() -> None:
    import jax.numpy as jnp

    joints = urdf.load_urdf_joints(URDF)
    ch = urdf.chain(joints, "panda_link0", "panda_hand_tcp")
    assert [j.name for j in ch if j.type == "revolute"] == [f"panda_joint{i}" for i in range(1, 8)]
    for q in _random_q(12):
        ref = urdf.chain_fk(ch, q)
        links_np = K.fk_links_np(q)
        links_jax = np.asarray(K.fk_links(jnp.asarray(q, dtype=jnp.float32)).as_matrix())
        for i in range(7):
            np.testing.assert_allclose(links_np[i], ref[f"panda_link{i + 1}"], atol=1e-12)
            np.testing.assert_allclose(links_jax[i], ref[f"panda_link{i + 1}"], atol=2e-5)
        np.testing.assert_allclose(K.fk_flange_np(q), ref["panda_link8"], atol=1e-12)
        np.testing.assert_allclose(K.fk_tcp_np(q), ref["panda_hand_tcp"], atol=1e-12)
        np.testing.assert_allclose(np.asarray(K.fk_tcp(jnp.asarray(q, dtype=jnp.float32)).as_matrix()),
                                   ref["panda_hand_tcp"], atol=2e-5)


def test_ready_pose_flange_and_tcp() -> None:
    T = K.fk_flange_np(LIM.q_ready)
    np.testing.assert_allclose(T[:3, 3], [0.307, 0.0, 0.590], atol=1e-3)
    tcp = K.fk_tcp_np(LIM.q_ready)
    np.testing.assert_allclose(tcp[:3, 2], [0, 0, -1], atol=1e-9)   # fingers point down
    np.testing.assert_allclose(tcp[:3, 3], T[:3, 3] + [0, 0, -0.1034], atol=1e-9)


def test_urdf_limits_match_the_published_table() -> None:
    ch = urdf.chain(urdf.load_urdf_joints(URDF), "panda_link0", "panda_link8")
    rev = [j for j in ch if j.type == "revolute"]
    np.testing.assert_allclose([j.lower for j in rev], LIM.q_min)
    np.testing.assert_allclose([j.upper for j in rev], LIM.q_max)
    np.testing.assert_allclose([j.velocity for j in rev], LIM.dq_max)


def test_fk_matches_mujoco_panda_model() -> None:
    """A third, independent source: dm_robotics' Panda MJCF (skipped where it is not installed)."""
    mujoco = pytest.importorskip("mujoco")
    try:
        import dm_robotics.panda as dmp
    except ImportError:
        pytest.skip("dm-robotics-panda not installed")
    from pathlib import Path

    xml = Path(dmp.__file__).parent / "assets" / "panda" / "panda.xml"
    if not xml.is_file():
        pytest.skip("dm-robotics-panda assets missing")
    model = mujoco.MjModel.from_xml_path(str(xml))
    data = mujoco.MjData(model)
    for q in _random_q(5, seed=1):
        data.qpos[:7] = q
        mujoco.mj_kinematics(model, data)
        b = model.body("panda_link8").id
        T = K.fk_flange_np(q)
        np.testing.assert_allclose(data.xpos[b], T[:3, 3], atol=1e-4)
        np.testing.assert_allclose(data.xmat[b].reshape(3, 3), T[:3, :3], atol=1e-3)


def test_ik_reaches_poses_of_random_configurations() -> None:
    from dream2flow.planning.solver import ik_batch

    qs = _random_q(16, seed=3) * 0.6 + LIM.q_ready * 0.4  # away from the joint limits
    T = K.fk_tcp_np(qs)
    seeds = qs + np.random.default_rng(4).normal(0, 0.15, qs.shape)
    q, pe, re = ik_batch(T, seeds)
    assert (pe < 1e-3).all() and (re < 5e-3).all(), (pe.max(), re.max())
    np.testing.assert_allclose(K.fk_tcp_np(q)[:, :3, 3], T[:, :3, 3], atol=1e-3)
    q1, pe1, re1 = K.ik(T[0], seeds[0])
    assert pe1 < 1e-3 and np.allclose(q1, q[0])


def test_kabsch_and_rigid_track_recover_a_known_motion() -> None:
    from dream2flow.planning import rigid

    rng = np.random.default_rng(0)
    X = rng.uniform(-0.05, 0.05, (80, 3)) + [0.5, 0, 0.2]
    Ts = []
    for t in range(10):
        a = 0.05 * t
        T = np.eye(4)
        T[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
        T[:3, 3] = [0.01 * t, 0.02 * t, 0.0]
        Ts.append(T)
    Ts = np.array(Ts)
    P = rigid.apply(Ts, X)
    np.testing.assert_allclose(rigid.kabsch(X, P[5]), Ts[5], atol=1e-9)
    V = rng.random(P.shape[:2]) > 0.5
    V[0, :10] = True
    noisy = P + rng.normal(0, 0.003, P.shape)
    T_fit, X0, res = rigid.rigid_track(noisy, V)
    err_raw = np.linalg.norm(noisy[0] - X, axis=1)[V[0]].mean()
    err_fit = np.linalg.norm(X0 - X, axis=1).mean()
    assert err_fit < 0.6 * err_raw          # denoised by averaging over frames
    assert np.isfinite(X0).all()            # points hidden at t = 0 are filled in
    assert np.linalg.norm(rigid.apply(T_fit, X) - P, axis=-1).mean() < 0.003  # the motion, 3 mm noise


def test_time_warp_and_motion_window() -> None:
    from dream2flow.planning import flowprep, rigid

    T = 20
    X = np.array([[0.5, 0.0, 0.2], [0.52, 0.0, 0.2], [0.5, 0.03, 0.2], [0.5, 0.0, 0.25]])
    s = np.clip((np.arange(T) - 5) / 10.0, 0, 1)  # static 0..5, moves 5..15, static after
    Ts = np.repeat(np.eye(4)[None], T, axis=0)
    Ts[:, 0, 3] = 0.2 * s
    P = rigid.apply(Ts, X)
    V = np.ones((T, 4), dtype=bool)
    t_star, t_end = flowprep.motion_window(Ts, X, 0.003)
    assert t_star == 5 and t_end == 15
    PH, VH, times = flowprep.time_warp(P, V, t_star, t_end, 11)
    np.testing.assert_allclose(times, np.arange(5, 16))
    np.testing.assert_allclose(PH[:, 0, 0], 0.5 + 0.2 * s[5:16])
    V[7, 1] = False
    PH, VH, times = flowprep.time_warp(P, V, 5, 15, 21)  # half steps: hidden when a neighbour is
    assert not VH[4, 1] and not VH[5, 1] and VH[6, 1] and VH[4, 0]


def test_grasp_proposals_on_a_block_are_antipodal_and_collision_free() -> None:
    from dream2flow.planning import synthetic
    from dream2flow.planning.grasps import AntipodalGraspProposer

    task = synthetic.make_task("block")
    grasps = AntipodalGraspProposer()(task.rgbd, task.object_mask)
    assert len(grasps) > 5
    assert [g.score for g in grasps] == sorted((g.score for g in grasps), reverse=True)
    for g in grasps[:10]:
        T = g.T_base_grasp
        np.testing.assert_allclose(T[:3, :3].T @ T[:3, :3], np.eye(3), atol=1e-9)
        assert np.linalg.det(T[:3, :3]) > 0.99
        assert g.width_m <= 0.08
        assert T[2, 2] <= 0.5                       # never from below
        assert np.linalg.norm(T[:3, 3] - task.handle_center) < 0.05  # on the block
        assert T[2, 3] > 0.0


def test_limit_check_names_joint_and_limit() -> None:
    from dream2flow.planning import assemble

    q = np.repeat(LIM.q_ready[None], 10, axis=0)
    q[5:, 2] += 0.5  # a 0.5 rad jump in one 0.1 s step: 5 rad/s on joint 3
    with pytest.raises(PlanningFailed, match="joint 3 velocity limit"):
        assemble.check_limits(q, 0.1, LIM)
    q = np.repeat(LIM.q_ready[None], 10, axis=0)
    q[:, 3] = LIM.q_max[3] + 0.01
    with pytest.raises(PlanningFailed, match="joint 4 above max"):
        assemble.check_limits(q, 0.1, LIM)
    smooth = assemble.joint_segment(LIM.q_ready, LIM.q_ready + 0.8, 0.1, LIM, __import__(
        "dream2flow.planning.config", fromlist=["PlannerConfig"]).PlannerConfig())
    assemble.check_limits(smooth, 0.1, LIM)  # a timed segment passes


def test_planner_config_overrides_and_rejects_unknown_keys(tmp_path) -> None:
    from dream2flow.planning.config import PlannerConfig, load_planner_config, planner_config_from_dict

    cfg = planner_config_from_dict({"horizon": 60, "w_task": 5000, "release_at_end": False})
    assert cfg.horizon == 60 and cfg.w_task == 5000.0 and cfg.release_at_end is False
    with pytest.raises(InvalidInput, match="unknown key"):
        planner_config_from_dict({"horizn": 60})
    with pytest.raises(InvalidInput, match="horizon"):
        planner_config_from_dict({"horizon": "sixty"})
    with pytest.raises(InvalidInput, match="dwell_s"):
        PlannerConfig(dwell_s=0.3)
    f = tmp_path / "planner.toml"
    f.write_text("horizon = 45\nw_acc = 3.0\n")
    assert load_planner_config(f).horizon == 45
