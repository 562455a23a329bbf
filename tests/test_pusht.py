"""Push-T (issue 19): scene, camera observation, push primitive (floating and Panda), dynamics
models, quick training, a short evaluation and the CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from dream2flow.pusht import geometry as G  # noqa: E402
from dream2flow.pusht.models import DYNAMICS, DynamicsModel, init_params, load_model  # noqa: E402
from dream2flow.pusht.primitive import Pushes, contact_travel, sample_pushes  # noqa: E402

pytestmark = pytest.mark.sim


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def env():
    from dream2flow.pusht.env import make_initial

    e = make_initial(3, 7)
    yield e
    e.close()


def test_success_rule_and_initial_states():
    assert G.is_success(G.GOAL)
    assert G.is_success(G.GOAL + [0.019, 0.0, np.radians(14)])
    assert not G.is_success(G.GOAL + [0.021, 0.0, 0.0])
    assert not G.is_success(G.GOAL + [0.0, 0.0, np.radians(16)])
    assert G.NUM_INITIAL_STATES == 10
    assert not any(G.is_success(G.initial_state(i)) for i in range(10))
    assert all(G.in_workspace(G.initial_state(i)) for i in range(10))


def test_camera_observation_matches_the_block(env):
    env.set_block_pose(G.initial_state(3))
    cam = env.observe(128, 0)
    priv = env.observe(128, 0, source="privileged")
    iou = (cam.mask & priv.mask).sum() / (cam.mask | priv.mask).sum()
    assert iou > 0.85 and cam.mask_source == "camera" and priv.mask_source == "privileged"
    assert cam.points.shape == (128, 3) and cam.rgb.shape == (128, 3) and cam.normals.shape == (128, 3)
    np.testing.assert_allclose(np.linalg.norm(cam.normals, axis=1), 1.0, atol=1e-4)
    top = cam.points[:, 2] > G.HEIGHT_M - 0.004
    assert top.mean() > 0.3 and np.median(cam.normals[top, 2]) > 0.9  # the top face looks up
    from dream2flow.pusht.observe import fit_pose

    pose = fit_pose(cam.points, cam.normals)
    dp, dyaw = G.pose_error(pose, env.block_pose())
    assert dp < 0.01 and dyaw < np.radians(6), (pose, env.block_pose())


def test_sampled_pushes_touch_the_block(env):
    rng = np.random.default_rng(0)
    env.set_block_pose(G.initial_state(3))
    for k in range(4):
        ob = env.observe(128, k, robot=False)
        p = sample_pushes(ob.points[:, :2], 1, rng)
        assert 0.0 < contact_travel(ob.points[:, :2], p)[0] < p.d[0]
        before = env.block_pose()
        env.floating_push(p)
        moved = np.linalg.norm(env.block_pose()[:2] - before[:2]) + 0.05 * abs(G.wrap(env.block_pose()[2] - before[2]))
        assert moved > 0.001, f"push {k} did not move the block"


def test_panda_push_goes_through_the_control_loop():
    from dream2flow.pusht.env import make_initial
    from dream2flow.pusht.execute import PandaPusher, push_plan

    a, b = make_initial(0, 3), make_initial(0, 3)
    ob = a.observe(128, 0)
    p = sample_pushes(ob.points[:, :2], 1, np.random.default_rng(5))
    pusher = PandaPusher(a)
    plan = push_plan(p, pusher.backend.state().q)
    assert plan.gripper.min() == 1.0 and plan.q.shape[1] == 7
    rec = pusher.push(p)
    assert rec.ok and rec.commands > 100 and len(pusher.log[-1]) == rec.commands
    b.floating_push(p)
    # near the base (where a cold IK start from the ready pose failed) the fingers still reach the table
    near = Pushes(np.array([[0.33, -0.15]]), np.array([[1.0, 0.0]]), np.array([0.05]))
    assert push_plan(near, pusher.backend.state().q).horizon > 10
    pa, pb = a.block_pose(), b.block_pose()
    assert np.linalg.norm(pa[:2] - G.initial_state(0)[:2]) > 0.002  # the arm moved the block
    assert np.linalg.norm(pa[:2] - pb[:2]) < 0.015  # ... as the floating pusher does
    a.close(), b.close()


def test_model_inference_shapes_and_determinism():
    rng = np.random.default_rng(1)
    obs = np.concatenate([rng.uniform(-0.05, 0.05, (48, 3)) + [0.5, 0, 0.015], rng.uniform(0, 1, (48, 3)),
                          np.tile([0.0, 0.0, 1.0], (48, 1))], axis=1).astype(np.float32)
    pushes = sample_pushes(obs[:, :2], 16, rng)
    for kind in ("particle", "pose"):
        m = DynamicsModel(kind, init_params(kind, 0))
        a = m.predict(obs, pushes.params(), pose=np.array([0.5, 0.0, 0.3]))
        b = m.predict(obs, pushes.params(), pose=np.array([0.5, 0.0, 0.3]))
        assert a.shape == (16, 48, 3) and a.dtype == np.float32 and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
    h = load_model("heuristic")
    out = h.predict(obs, pushes.params())
    move = out[..., :2] - obs[None, :, :2]
    np.testing.assert_allclose(move - move[:, :1], 0, atol=1e-6)  # pure translation
    free = contact_travel(obs[:, :2], pushes)
    np.testing.assert_allclose(np.linalg.norm(move[:, 0], axis=1), np.clip(pushes.d - free, 0, None), atol=1e-5)
    none = Pushes(pushes.c[:1], pushes.u[:1], np.zeros(1))
    np.testing.assert_array_equal(h.predict(obs, none.params())[0], obs[:, :3])


def test_particle_rigid_output_is_a_planar_rigid_motion():
    """The rigid head's per-point displacements are projected onto one planar rigid motion: the
    predicted points keep their pairwise xy distances; the free head's need not."""
    from dream2flow.pusht.models import rigid_projection

    rng = np.random.default_rng(2)
    obs = np.concatenate([rng.uniform(-0.05, 0.05, (40, 3)) + [0.5, 0, 0.015], rng.uniform(0, 1, (40, 3)),
                          np.tile([0.0, 0.0, 1.0], (40, 1))], axis=1).astype(np.float32)
    pushes = sample_pushes(obs[:, :2], 8, rng)
    dist = lambda p: np.linalg.norm(p[:, None, :2] - p[None, :, :2], axis=-1)  # noqa: E731
    for output, rigid in (("rigid", True), ("free", False)):
        pred = DynamicsModel("particle", init_params("particle", 3, output)).predict(obs, pushes.params())
        err = max(np.abs(dist(p) - dist(obs)).max() for p in pred)
        assert (err < 2e-6) if rigid else (err > 1e-4), (output, err)
    # an exact rigid displacement field is left as it is; noise is averaged out
    xy = rng.normal(size=(60, 2)) * 0.05
    R = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]])
    true = xy @ R.T + [0.01, -0.02] - xy
    np.testing.assert_allclose(np.asarray(rigid_projection(xy, true, np.ones(60))), true, atol=1e-7)
    noisy = true + rng.normal(size=true.shape) * 0.003
    assert np.abs(np.asarray(rigid_projection(xy, noisy, np.ones(60))) - true).mean() < 0.4 * np.abs(noisy - true).mean()


def test_shipped_models_load_and_are_documented():
    for kind in DYNAMICS:
        m = load_model(kind)
        if kind != "heuristic":
            h = m.meta["heldout"]
            assert h["mean_point_error_mm"] > 0 and h["rotation_error_deg"] > 0
            assert m.meta["seed"] >= 1000 and "pusht train" in m.meta["command"]
    # the shipped particle model is the rigid head (8000 pushes); the previous free head (4000 pushes)
    # still loads from its folder (old 3-output weights) and is documented the same way
    from dream2flow.pusht.models import WEIGHTS_DIR

    p = load_model("particle")
    assert p.meta["training"]["output"] == "rigid" and p.params["head"][-1][0].shape[1] == 4
    assert load_model("pose").meta["heldout"]["pushes"] == p.meta["heldout"]["pushes"] > 0
    old = load_model("particle", WEIGHTS_DIR / "free4000")
    assert old.params["head"][-1][0].shape[1] == 3 and old.meta["heldout"]["mean_point_error_mm"] > 0


@pytest.mark.slow
def test_quick_training_recipe(tmp_path):
    r = _cli("pusht", "train", "--quick", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "train_report.json").read_text())
    assert set(rep["models"]) == {"particle", "pose", "heuristic"}
    for v in rep["models"].values():
        assert np.isfinite(v["heldout"]["mean_point_error_mm"])
    for kind in ("particle", "pose"):
        m = load_model(kind, tmp_path)
        assert m.meta["training"]["steps"] == 300
        curve = np.array(m.meta["training"]["loss_curve"])
        assert curve[-1, 1] < curve[0, 1]  # it learned something


@pytest.mark.slow
def test_short_eval_json_schema(tmp_path):
    out = tmp_path / "eval.json"
    r = _cli("pusht", "eval", "--episodes", "2", "--seed", "0", "--dynamics", "particle,pose,heuristic",
             "--push-budget", "2", "--candidates", "64", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "particle" in r.stdout and "inputs: privileged" in r.stdout
    res = json.loads(out.read_text())
    assert res["inputs"] == "privileged" and res["observation"] == "camera" and res["run"]["inputs"] == "privileged"
    assert len(res["episodes"]) == 6
    for e in res["episodes"]:
        assert e["dynamics"] in DYNAMICS and isinstance(e["success"], bool) and isinstance(e["pushes"], int)
        assert e["initial_state"] in (0, 1) and e["seed"] == 0 and 0 <= e["pushes"] <= 2
    assert set(res["table"]) == {"particle", "pose", "heuristic"}


@pytest.mark.parametrize("args,needle", [
    (["pusht", "eval", "--episodes", "0"], "--episodes"),
    (["pusht", "eval", "--dynamics", "magic"], "magic"),
    (["pusht", "eval", "--candidates", "-3"], "--candidates"),
    (["pusht", "train", "--out", "x", "--seed", "3"], "--seed"),
])
def test_cli_bad_input_is_one_line(args, needle):
    r = _cli(*args, timeout=60)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
