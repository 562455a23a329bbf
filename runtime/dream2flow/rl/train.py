"""Training: SAC (Stable-Baselines3) on ``DoorEnv``, then the ONNX export the runtime runs.

Needs the ``rl`` extra (``pip install -e .[rl]``: stable-baselines3, torch, onnx); the runtime
itself never imports it (``dream2flow rl eval`` runs the exported ONNX through the engine).
Everything is seeded: the SAC seed, the environments' episode draws (seed + rank), torch on one
thread. Observation normalisation: ``VecNormalize`` (running mean/variance, clip 10), frozen
into the ONNX file.

Outputs in ``OUT``: ``policy.onnx`` + ``policy.spec.json`` (manifest entry), ``sb3_model.zip`` and
``vecnormalize.pkl`` (the training framework's policy, for the parity test), ``train.json``
(configuration, command, seed, wall time, learning curve), ``learning_curve.png``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dream2flow.errors import NotReady
from dream2flow.rl.door_env import DoorEnv, DoorEnvConfig
from dream2flow.rl.policy import MlpWeights, export_onnx, file_sha256, policy_spec, spec_path, write_spec
from dream2flow.rl.rewards import FlowReward, make_reward


@dataclass(frozen=True)
class SacConfig:
    """SAC hyper-parameters (Stable-Baselines3 names)."""

    learning_rate: float = 3e-4
    buffer_size: int = 300_000
    learning_starts: int = 2_000
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.97
    train_freq: int = 2
    gradient_steps: int = 1
    net_arch: tuple[int, ...] = (128, 128)
    n_envs: int = 1
    demo_episodes: int = 0  # scripted opener episodes added to the replay buffer first (rl.scripted)


QUICK = SacConfig(learning_starts=300, batch_size=64, net_arch=(64, 64))


def _require_sb3() -> None:
    try:
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise NotReady(f"training needs the 'rl' extra (pip install -e '.[rl]': stable-baselines3, torch): {exc}") from None


class _Recorder:
    """Episode returns/successes as they finish, and a progress line every ``every`` steps."""

    def __init__(self, total: int, progress: Callable[[str], None], every: int) -> None:
        self.total, self.progress, self.every = total, progress, every
        self.episodes: list[dict[str, float]] = []
        self.t0 = time.perf_counter()
        self.next_report = every

    def on_step(self, num_timesteps: int, infos: list[dict[str, Any]], dones: np.ndarray, returns: np.ndarray) -> None:
        for i, done in enumerate(dones):
            if done:
                info = infos[i]
                self.episodes.append({"step": int(num_timesteps), "return": float(returns[i]),
                                      "success": float(bool(info.get("success"))),
                                      "door_angle_deg": float(info.get("door_angle_deg", 0.0)),
                                      "violation": float(info.get("violation") is not None)})
        if num_timesteps >= self.next_report or num_timesteps >= self.total:
            self.next_report += self.every
            last = self.episodes[-20:]
            el = time.perf_counter() - self.t0
            rate = num_timesteps / max(el, 1e-9)
            if last:
                ret = np.mean([e["return"] for e in last])
                suc = np.mean([e["success"] for e in last])
                ang = np.mean([e["door_angle_deg"] for e in last])
                tail = f"last 20 episodes: return {ret:.1f}, success {100 * suc:.0f}%, door {ang:.0f} deg"
            else:
                tail = "no episode finished yet"
            self.progress(f"  step {num_timesteps}/{self.total} ({rate:.0f} steps/s, {el:.0f} s, eta "
                          f"{(self.total - num_timesteps) / max(rate, 1e-9):.0f} s): {tail}")


def actor_weights(model: Any, vecnorm: Any) -> MlpWeights:
    """The SB3 SAC actor's deterministic path (latent MLP -> mu -> tanh) and VecNormalize's stats."""
    import torch

    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for mod in list(model.actor.latent_pi) + [model.actor.mu]:
        if isinstance(mod, torch.nn.Linear):
            layers.append((mod.weight.detach().cpu().numpy().astype(np.float64),
                           mod.bias.detach().cpu().numpy().astype(np.float64)))
    rms = vecnorm.obs_rms
    return MlpWeights(layers=layers, obs_mean=np.asarray(rms.mean, np.float64), obs_var=np.asarray(rms.var, np.float64),
                      obs_clip=float(vecnorm.clip_obs), obs_eps=float(vecnorm.epsilon))


def train(env_cfg: DoorEnvConfig, sac: SacConfig, *, steps: int, seed: int, out_dir: str | Path,
          flow_path: str | Path | None, progress: Callable[[str], None], command: str = "",
          policy_name: str = "policy") -> dict[str, Any]:
    """Train, export and describe one policy (module docstring); returns ``train.json``'s content."""
    _require_sb3()
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reward = make_reward(env_cfg.reward, flow_path) if env_cfg.reward == "flow" else None
    flow_meta = reward.meta if isinstance(reward, FlowReward) else None

    def make(rank: int) -> Callable[[], DoorEnv]:
        return lambda: DoorEnv(env_cfg, reward_fn=reward)

    venv = VecNormalize(DummyVecEnv([make(r) for r in range(sac.n_envs)]), norm_obs=True, norm_reward=False,
                        clip_obs=10.0, gamma=sac.gamma)
    venv.seed(seed)
    model = SAC("MlpPolicy", venv, learning_rate=sac.learning_rate, buffer_size=min(sac.buffer_size, steps),
                learning_starts=sac.learning_starts, batch_size=sac.batch_size, tau=sac.tau, gamma=sac.gamma,
                train_freq=sac.train_freq, gradient_steps=sac.gradient_steps,
                policy_kwargs={"net_arch": list(sac.net_arch)}, seed=seed, device="cpu", verbose=0)
    demos = add_demonstrations(model, venv, env_cfg, reward, sac.demo_episodes, seed) if sac.demo_episodes else None
    if demos:
        progress(f"replay buffer seeded with {demos['episodes']} scripted demonstration episodes "
                 f"({demos['transitions']} transitions, {demos['successes']} opened the door; rewards: {env_cfg.reward})")
    rec = _Recorder(steps, progress, every=max(500, steps // 40))
    from stable_baselines3.common.callbacks import BaseCallback

    class _Cb(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.returns = np.zeros(sac.n_envs)

        def _on_step(self) -> bool:
            self.returns += np.asarray(self.locals["rewards"], dtype=np.float64)
            dones = np.asarray(self.locals["dones"])
            rec.on_step(self.num_timesteps, self.locals["infos"], dones, self.returns)
            self.returns[dones] = 0.0
            return True

    progress(f"training SAC on door/{env_cfg.embodiment}/{env_cfg.reward}: {steps} steps, seed {seed}, "
             f"{sac.n_envs} env(s), net {list(sac.net_arch)}")
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=_Cb(), progress_bar=False)
    wall = time.perf_counter() - t0
    model.save(out / "sb3_model.zip")
    venv.save(str(out / "vecnormalize.pkl"))

    weights = actor_weights(model, venv)
    onnx_path = export_onnx(weights, out / f"{policy_name}.onnx")
    probe = np.asarray(venv.get_original_obs() if hasattr(venv, "get_original_obs") else venv.reset(), np.float64)
    parity = parity_check(model, venv, weights, onnx_path, probe, seed=seed)
    env_desc = {**{k: v for k, v in env_cfg.to_dict().items() if k != "controller"},
                **{f"controller_{k}": v for k, v in asdict(env_cfg.controller).items()},
                "ticks_per_action": env_cfg.ticks_per_action, "success_deg": 35.0,
                "inputs": (flow_meta or {}).get("inputs", "n/a (object-state reward)")}
    spec = policy_spec(policy_name, onnx_path.name, file_sha256(onnx_path), env=env_desc,
                       source=f"SAC (stable-baselines3) trained by: {command or 'dream2flow rl train'}",
                       parity=parity, export_command=command,
                       notes=f"{env_cfg.reward} reward, {env_cfg.embodiment}, {steps} steps, seed {seed}"
                             + (f", replay buffer seeded with {sac.demo_episodes} scripted demonstration episodes"
                                if sac.demo_episodes else ""))
    write_spec(spec, spec_path(onnx_path))
    summary = {"command": command, "seed": seed, "steps": steps, "wall_s": wall, "env": env_cfg.to_dict(),
               "demonstrations": demos,
               "sac": asdict(sac), "flow": flow_meta, "parity": parity, "episodes": rec.episodes,
               "steps_per_s": steps / wall, "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                                                         "argv": sys.argv},
               "policy": onnx_path.name, "sha256": spec.sha256}
    (out / "train.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot_curve(rec.episodes, out / "learning_curve.png",
               title=f"SAC door/{env_cfg.embodiment}, {env_cfg.reward} reward, seed {seed}")
    progress(f"trained in {wall:.0f} s ({steps / wall:.0f} steps/s); policy {onnx_path} (parity max |Δ| "
             f"{parity['max_abs']:.2e})")
    return summary


def add_demonstrations(model: Any, venv: Any, env_cfg: DoorEnvConfig, reward: Any, episodes: int,
                       seed: int) -> dict[str, Any]:
    """Run ``episodes`` of the scripted opener in a separate env (its own seeds, disjoint from
    evaluation's) and add the transitions -- raw observations, the trained reward -- to the SAC
    replay buffer; VecNormalize's running statistics see the observations too."""
    from dream2flow.rl.scripted import ScriptedOpener

    env = DoorEnv(env_cfg, reward_fn=reward)
    opener = ScriptedOpener()
    n, ok = 0, 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=10_000_000 + 1000 * seed + ep)
        opener.reset()
        while True:
            action = opener.act(obs).astype(np.float32)
            nxt, r, term, trunc, info = env.step(action)
            venv.obs_rms.update(obs[None].astype(np.float64))
            model.replay_buffer.add(obs[None], nxt[None], action[None], np.array([r], np.float32),
                                    np.array([term or trunc]), [{"TimeLimit.truncated": bool(trunc and not term)}])
            n += 1
            obs = nxt
            if term or trunc:
                ok += int(info["success"])
                break
    return {"episodes": episodes, "transitions": n, "successes": ok, "policy": "rl.scripted.ScriptedOpener",
            "seeds": f"10000000 + 1000*seed + 0..{episodes - 1}"}


def parity_check(model: Any, venv: Any, weights: MlpWeights, onnx_path: Path, obs: np.ndarray, *, seed: int,
                 n: int = 256) -> dict[str, float]:
    """ONNX Runtime vs the SB3 policy's deterministic ``predict`` on ``n`` observations around
    ``obs`` (normalised by the SB3 VecNormalize, as SB3 itself would)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    base = np.atleast_2d(obs)[0]
    scale = np.sqrt(np.asarray(venv.obs_rms.var)) + 1e-3
    raw = (base[None] + rng.normal(0, 1, (n, base.size)) * scale[None]).astype(np.float32)
    ref, _ = model.predict(venv.normalize_obs(raw), deterministic=True)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"obs": raw})[0]
    d = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "bound": 1e-4, "samples": n}


def plot_curve(episodes: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    if episodes:
        s = np.array([e["step"] for e in episodes])
        r = np.array([e["return"] for e in episodes])
        ok = np.array([e["success"] for e in episodes])
        k = max(1, min(20, len(episodes) // 5))
        kern = np.ones(k) / k
        ax[0].plot(s, r, ".", ms=2, alpha=0.3)
        ax[1].plot(s, ok, ".", ms=2, alpha=0.3)
        if len(episodes) >= k:
            ax[0].plot(s[k - 1:], np.convolve(r, kern, "valid"), lw=2)
            ax[1].plot(s[k - 1:], np.convolve(ok, kern, "valid"), lw=2)
    ax[0].set(xlabel="environment steps", ylabel="episode return", title="return (training episodes)")
    ax[1].set(xlabel="environment steps", ylabel="success", ylim=(-0.05, 1.05),
              title="door >= 35 deg, no safety stop")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
