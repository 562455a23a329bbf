"""Issue 20: 3D object flow as a reward -- the door environment, the rewards, the ONNX policy
export and the shipped policy through the runtime engine and the safety-checked loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[1]
SHIPPED = "door_panda_flow_reward"
RESULTS = REPO / "bench" / "rl_door"
FLOW = RESULTS / "flow" / "flow.npz"

from dream2flow.control.safety import SafetyLayer  # noqa: E402
from dream2flow.control.settings import load_loop_config  # noqa: E402
from dream2flow.config import load_robot_limits  # noqa: E402
from dream2flow.rl.controller import PandaVelocityController, R_BASE_TCP_DES, solve_ik, tcp_jacobian  # noqa: E402


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


# --- controller ----------------------------------------------------------------------------------

def test_jacobian_matches_finite_differences() -> None:
    from dream2flow.control.kinematics import fk_links

    q = np.array(load_robot_limits().q_ready) + 0.1
    _, J = tcp_jacobian(q)
    e = 1e-6
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = e
        num = (fk_links(q + dq)[8, :3, 3] - fk_links(q - dq)[8, :3, 3]) / (2 * e)
        assert np.allclose(J[:3, i], num, atol=1e-7)


def test_controller_stream_passes_the_safety_layer_and_holds_orientation() -> None:
    """Abrupt full-speed velocity changes still give a command stream inside every limit of the
    safety layer (checked as a whole, as the loop's pre-flight does), and the TCP stays top-down."""
    lim = load_robot_limits()
    q0 = np.array(lim.q_ready)
    q0[6] = -np.pi / 4
    q = solve_ik(np.array([0.4, 0.0, 0.4]), q0)
    c = PandaVelocityController()
    c.reset(q)
    rng = np.random.default_rng(0)
    stream = [q]
    worst = 0.0
    for k in range(600):
        if k % 10 == 0:  # a new full-speed direction every 0.1 s, towards a random point of the door's workspace
            goal = rng.uniform([0.3, -0.25, 0.15], [0.65, 0.25, 0.5])
            v = np.sign(goal - c.tcp_pose()[:3, 3]) * 0.25
        stream.append(c.tick(v))
        R = c.tcp_pose()[:3, :3]
        worst = max(worst, np.degrees(np.arccos(np.clip((np.trace(R_BASE_TCP_DES.T @ R) - 1) / 2, -1, 1))))
    stream = np.array(stream)
    t = np.arange(len(stream)) * 0.01
    assert SafetyLayer(lim, load_loop_config()).check_stream(t, stream, q, 0.002, 0.01) is None
    assert worst < 5.0, worst


# --- environment -----------------------------------------------------------------------------------

@pytest.mark.sim
@pytest.mark.parametrize("embodiment", ["panda", "floating"])
def test_scripted_opener_opens_the_door(embodiment: str) -> None:
    """The env's mechanics allow the task: a scripted opener gets the door past 35 degrees with no
    safety stop, for random door placements, in both embodiments."""
    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig
    from dream2flow.rl.scripted import ScriptedOpener

    env = DoorEnv(DoorEnvConfig(embodiment=embodiment, reward="object_state"))
    opener = ScriptedOpener()
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        opener.reset()
        for _ in range(env.cfg.horizon):
            obs, r, term, trunc, info = env.step(opener.act(obs))
            assert 0.0 <= r <= 2.0
            if term or trunc:
                break
        assert info["violation"] is None, info["violation"]
        assert info["success"] and info["door_angle_deg"] >= 35.0, info


@pytest.mark.sim
def test_gymnasium_api_and_seeded_determinism() -> None:
    from gymnasium.utils.env_checker import check_env

    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig

    env = DoorEnv(DoorEnvConfig(reward="object_state"))
    check_env(env, skip_render_check=True)
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=7)
        traj = [obs]
        for k in range(8):
            obs, *_ = env.step(np.array([0.5, -0.3, -0.4, 1.0 if k > 4 else -1.0]))
            traj.append(obs)
        runs.append((info["door_pose"], np.array(traj)))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    other, _ = env.reset(seed=8)
    assert not np.array_equal(other, runs[0][1][0])


@pytest.mark.sim
def test_bad_action_is_refused_not_clipped() -> None:
    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig

    env = DoorEnv(DoorEnvConfig(reward="object_state"))
    env.reset(seed=0)
    q_before = env.backend.target()
    _, _, term, _, info = env.step(np.array([2.0, 0.0, 0.0, 0.0]))
    assert term and "leaves [-1, 1]" in info["violation"]
    assert np.allclose(env.backend.target(), env.backend.state().q, atol=1e-9)  # stopped where it was
    assert np.abs(env.backend.target() - q_before).max() < 1e-3


# --- rewards -----------------------------------------------------------------------------------------

@pytest.mark.sim
def test_flow_reward_follows_the_door() -> None:
    """t*/t_end grows with the door's angle and saturates near the video's opening; the flow is the
    committed one (privileged inputs, as its meta says) and is re-anchored to each placement."""
    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig
    from dream2flow.rl.door import DoorPose
    from dream2flow.rl.rewards import make_reward
    from dream2flow.types import ObjectFlow

    flow = ObjectFlow.load(FLOW)
    assert flow.meta["inputs"] == "privileged" and flow.meta["stage"] == "flow"
    reward = make_reward("flow", FLOW)
    env = DoorEnv(DoorEnvConfig(reward="flow"), reward_fn=reward)
    video_deg = np.rad2deg(flow.meta["video"]["opening_angle_rad"])
    for pose in (DoorPose(0.58, -0.1, -0.2), DoorPose(0.66, 0.1, 0.2)):
        prog = []
        for deg in (0, 10, 20, 30, 40, 50, video_deg, 90):
            st = env.door.state_at(pose, np.deg2rad(deg))
            prog.append(reward(np.zeros(3), st)[1]["progress"])
        assert prog[0] == 0.0 and np.all(np.diff(prog) >= 0) and prog[-2] == 1.0, prog
        st = env.door.state_at(pose, 0.0)
        near = reward(st.handle_m, st)[1]["reach"]
        far = reward(st.handle_m + [-0.3, 0, 0.2], st)[1]["reach"]
        assert near > far


# --- export and deployment -------------------------------------------------------------------------

def test_onnx_export_matches_the_numpy_reference(tmp_path: Path) -> None:
    import onnxruntime as ort

    from dream2flow.rl.observation import OBS_DIM
    from dream2flow.rl.policy import MlpWeights, export_onnx

    rng = np.random.default_rng(0)
    sizes = [OBS_DIM, 32, 32, 4]
    layers = [(rng.normal(0, 0.5, (o, i)), rng.normal(0, 0.1, o)) for i, o in zip(sizes[:-1], sizes[1:])]
    w = MlpWeights(layers=layers, obs_mean=rng.normal(size=OBS_DIM), obs_var=rng.uniform(0.1, 2, OBS_DIM), obs_clip=5.0)
    path = export_onnx(w, tmp_path / "p.onnx")
    obs = rng.normal(0, 3, (64, OBS_DIM)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"obs": obs})[0]
    assert np.abs(got - w.forward(obs)).max() < 1e-5


def test_shipped_policy_is_in_the_manifest_and_checks() -> None:
    from dream2flow.perception.manifest import load_manifest, sha256_file

    spec = load_manifest(REPO / "exported_models" / "manifest.toml").get(SHIPPED)
    assert spec.role == "policy" and spec.sha256 == sha256_file(REPO / "exported_models" / spec.file)
    assert spec.preprocess["embodiment"] == "panda" and spec.preprocess["reward"] == "flow"
    assert spec.preprocess["inputs"] == "privileged"
    r = _cli("models", "check", "--model", SHIPPED, "--providers", "cpu")
    assert r.returncode == 0, r.stderr
    assert "models check: 1 models ok" in r.stdout + r.stderr


def test_shipped_policy_parity_with_the_training_framework() -> None:
    """ONNX Runtime (through the runtime's engine) gives the actions of the SB3 policy it was
    exported from, on observations from real episodes."""
    pytest.importorskip("stable_baselines3", reason="the 'rl' extra (stable-baselines3) is not installed")
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig
    from dream2flow.rl.policy import load_policy

    policy = load_policy(SHIPPED)
    run = RESULTS / "shipped"  # the training run the shipped file was exported from (SB3 model + VecNormalize)
    model = SAC.load(run / "sb3_model.zip", device="cpu")
    env = DoorEnv(DoorEnvConfig(reward="object_state"))
    vn = VecNormalize.load(str(run / "vecnormalize.pkl"), DummyVecEnv([lambda: env]))
    vn.training = False
    obs_all = []
    for seed in (3, 4):
        obs, _ = env.reset(seed=seed)
        for _ in range(20):
            obs_all.append(obs)
            obs, *_ = env.step(policy.act(obs))
    obs_all = np.array(obs_all, np.float32)
    ref, _ = model.predict(vn.normalize_obs(obs_all), deterministic=True)
    got = np.array([policy.act(o) for o in obs_all])
    assert np.abs(got - ref).max() < 1e-4


def _committed_eval() -> dict:
    return json.loads((RESULTS / "shipped" / "eval.json").read_text())


@pytest.mark.sim
def test_rl_eval_reproduces_the_committed_evaluation(tmp_path: Path) -> None:
    """The shipped policy by name, through the engine and the safety-checked loop, twice: the same
    command streams both times, and the same outcomes as the committed 100-episode evaluation."""
    ref = {e["seed"]: e for e in _committed_eval()["episodes"]}
    outs = []
    for k in range(2):
        r = _cli("rl", "eval", "--policy", SHIPPED, "--episodes", "4", "--seed", "1000", "--json", str(tmp_path / f"{k}.json"))
        assert r.returncode == 0, r.stderr
        outs.append(json.loads((tmp_path / f"{k}.json").read_text()))
    a, b = outs
    assert a["flow_inputs"] == "privileged" and len(a["episodes"]) == 4
    for e in a["episodes"]:
        assert set(e) >= {"seed", "success", "door_angle_deg"} and isinstance(e["success"], bool)
        assert e["success"] == ref[e["seed"]]["success"]
        assert abs(e["door_angle_deg"] - ref[e["seed"]]["door_angle_deg"]) < 0.5
    assert [e["command_sha256_16"] for e in a["episodes"]] == [e["command_sha256_16"] for e in b["episodes"]]


@pytest.mark.sim
def test_execute_runs_the_policy_on_the_backends(tmp_path: Path) -> None:
    seed = next(e["seed"] for e in _committed_eval()["episodes"] if e["success"])
    r = _cli("execute", "--policy", SHIPPED, "--backend", "mujoco", "--seed", str(seed), "--log",
             str(tmp_path / "log.npz"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["success"] and out["commands"] > 0 and (tmp_path / "log.npz").is_file()
    r = _cli("execute", "--policy", SHIPPED, "--backend", "kinematic", "--seed", str(seed), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["violation"] is None
    r = _cli("execute", "--policy", SHIPPED, "--backend", "polymetis")
    assert r.returncode == 3 and "door-state estimator" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    for args in (["rl", "eval", "--policy", SHIPPED, "--episodes", "0"],
                 ["rl", "eval", "--policy", str(tmp_path / "none.onnx")],
                 ["rl", "eval", "--policy", "no_such_policy"],
                 ["rl", "train", "--reward", "flow", "--flow", str(tmp_path / "none.npz"), "--out", str(tmp_path / "o")]):
        r = _cli(*args)
        if args[1] == "train" and r.returncode == 3:  # the 'rl' extra is missing: also one line
            assert "'rl' extra" in r.stderr
            continue
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.sim
def test_train_quick_proves_the_recipe(tmp_path: Path) -> None:
    """``rl train --quick`` (about a minute): SAC on the flow reward from the committed flow (two
    scripted demonstrations in the replay buffer), the ONNX export with its description and parity
    figure, the learning curve; then ``rl eval`` runs the produced file through the engine."""
    pytest.importorskip("stable_baselines3", reason="the 'rl' extra (stable-baselines3) is not installed")
    out = tmp_path / "run"
    r = _cli("rl", "train", "--env", "door", "--embodiment", "panda", "--reward", "flow", "--quick", "--seed", "3",
             "--demos", "2", "--flow", str(FLOW), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "train.json").read_text())
    assert summary["parity"]["max_abs"] < 1e-4 and summary["steps"] == 1500 and summary["episodes"]
    assert summary["flow"]["inputs"] == "privileged" and summary["demonstrations"]["episodes"] == 2
    assert (out / "learning_curve.png").stat().st_size > 1000
    r = _cli("rl", "eval", "--policy", str(out / "policy.onnx"), "--episodes", "2", "--json", str(out / "eval.json"))
    assert r.returncode == 0, r.stderr
    assert len(json.loads((out / "eval.json").read_text())["episodes"]) == 2
