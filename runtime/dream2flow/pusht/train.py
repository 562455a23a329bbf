"""Train the particle and pose dynamics models (JAX + optax) on collected pushes and measure the
one-push prediction error of all three models on held-out pushes.

Recipe (``train_all``): collect ``pushes`` samples (``data.collect``), hold out every episode
whose index is a multiple of 10 (~10 %), train each model with Adam (cosine-decayed learning
rate) on random batches — ``batch`` pushes x ``n_points`` observed points drawn afresh every
step — and report on the held-out pushes: mean per-point error (mm) of the predicted point
positions, and the rotation error (deg) between the block's true yaw change and the one the
model predicts (particle: 2D Kabsch fit to its predicted points; pose: its output; heuristic:
none, so its error is the true rotation). ``--quick`` is the same recipe, small.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dream2flow.pusht import geometry as G
from dream2flow.pusht.models import DynamicsModel, init_params, particle_displacement, pose_delta, save_params

POINT_LOSS_M = 0.01  # losses are in units of 1 cm (and 0.1 rad for yaw)
YAW_LOSS_RAD = 0.1


@dataclass(frozen=True)
class TrainConfig:
    pushes: int = 8000
    steps: int = 4000
    batch: int = 32
    n_points: int = 96
    lr: float = 2e-3
    seed: int = 1000
    particle_output: str = "rigid"   # models.PARTICLE_OUTPUTS
    raw_loss: float = 0.1            # rigid output: weight of the loss on the displacements before projection

    @classmethod
    def quick(cls, seed: int = 1000) -> "TrainConfig":
        return cls(pushes=150, steps=300, batch=16, n_points=64, seed=seed)


def split(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): episodes whose index is a multiple of 10 are held out."""
    held = (data["episode"] % 10) == 0
    return np.nonzero(~held)[0], np.nonzero(held)[0]


def _yaw_delta(pose0: np.ndarray, pose1: np.ndarray) -> np.ndarray:
    return G.wrap(pose1[..., 2] - pose0[..., 2])


def train_model(kind: str, data: dict[str, np.ndarray], idx: np.ndarray, cfg: TrainConfig,
                progress: Callable[[str], None] | None = None) -> tuple[dict, dict[str, Any]]:
    """Train ``kind`` ("particle" | "pose") on samples ``idx`` -> (params, info)."""
    import jax
    import jax.numpy as jnp
    import optax

    from dream2flow.pusht.data import point_targets
    from dream2flow.planning.jax_setup import enable_compilation_cache

    enable_compilation_cache()
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, {"particle": 1, "pose": 2}[kind]]))
    params = init_params(kind, cfg.seed, cfg.particle_output) if kind == "particle" else init_params(kind, cfg.seed)
    sched = optax.cosine_decay_schedule(cfg.lr, cfg.steps, alpha=0.02)
    opt = optax.adam(sched)
    state = opt.init(params)
    obs_all = data["obs"][idx]
    push_all = data["push"][idx]
    p0_all = data["pose0"][idx].astype(np.float32)
    p1_all = data["pose1"][idx].astype(np.float32)
    if kind == "particle":
        tgt_all = point_targets(obs_all, data["pose0"][idx], data["pose1"][idx]) - obs_all[..., :3]

        raw_w = cfg.raw_loss if cfg.particle_output == "rigid" else 0.0

        def loss_fn(prm, obs, push, tgt):  # noqa: ANN001, ANN202
            pred = jax.vmap(lambda o, p: particle_displacement(prm, o, p))(obs, push)
            loss = jnp.mean(jnp.sum(((pred - tgt) / POINT_LOSS_M) ** 2, axis=-1))
            if raw_w > 0:
                raw = jax.vmap(lambda o, p: particle_displacement(prm, o, p, raw=True))(obs, push)
                loss = loss + raw_w * jnp.mean(jnp.sum(((raw - tgt) / POINT_LOSS_M) ** 2, axis=-1))
            return loss
    else:
        dyaw_all = _yaw_delta(p0_all, p1_all).astype(np.float32)

        def loss_fn(prm, pose0, push, tgt):  # noqa: ANN001, ANN202
            pred = jax.vmap(lambda a, p: pose_delta(prm, a, p))(pose0, push)
            exy = (pred[:, :2] - tgt[:, :2]) / POINT_LOSS_M
            eyaw = jnp.arctan2(jnp.sin(pred[:, 2] - tgt[:, 2]), jnp.cos(pred[:, 2] - tgt[:, 2])) / YAW_LOSS_RAD
            return jnp.mean(jnp.sum(exy ** 2, axis=-1) + eyaw ** 2)

    @jax.jit
    def step(prm, st, a, b, c):  # noqa: ANN001, ANN202
        loss, g = jax.value_and_grad(loss_fn)(prm, a, b, c)
        upd, st = opt.update(g, st, prm)
        return optax.apply_updates(prm, upd), st, loss

    S, M = obs_all.shape[:2]
    t0 = time.perf_counter()
    curve = []
    ema = None
    for k in range(cfg.steps):
        bi = rng.integers(0, S, size=cfg.batch)
        if kind == "particle":
            pi = np.argsort(rng.random((cfg.batch, M)), axis=1)[:, :cfg.n_points]
            obs = np.take_along_axis(obs_all[bi], pi[..., None], axis=1)
            tgt = np.take_along_axis(tgt_all[bi], pi[..., None], axis=1)
            params, state, loss = step(params, state, obs, push_all[bi], tgt)
        else:
            tgt = np.concatenate([p1_all[bi, :2] - p0_all[bi, :2], dyaw_all[bi, None]], axis=1)
            params, state, loss = step(params, state, p0_all[bi], push_all[bi], tgt)
        loss = float(loss)
        ema = loss if ema is None else 0.98 * ema + 0.02 * loss
        if k % 100 == 0 or k == cfg.steps - 1:
            curve.append([k, round(ema, 5)])
        if progress is not None and (k % 1000 == 0 or k == cfg.steps - 1):
            progress(f"[pusht train] {kind} step {k + 1}/{cfg.steps} loss {ema:.4f} ({time.perf_counter() - t0:.0f} s)")
    info = {"steps": cfg.steps, "batch": cfg.batch, "n_points": cfg.n_points, "lr": cfg.lr, "train_samples": int(S),
            **({"output": cfg.particle_output, "raw_loss": cfg.raw_loss} if kind == "particle" else {}),
            "final_loss_ema": round(float(ema), 5), "loss_curve": curve, "wall_s": round(time.perf_counter() - t0, 2)}
    return params, info


def _kabsch_yaw(a: np.ndarray, b: np.ndarray) -> float:
    """Yaw (rad) of the best 2D rotation taking points ``a`` [N,2] to ``b`` [N,2]."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    H = a.T @ b
    return float(np.arctan2(H[0, 1] - H[1, 0], H[0, 0] + H[1, 1]))


def heldout_errors(model: DynamicsModel, data: dict[str, np.ndarray], idx: np.ndarray,
                   n_points: int = 128, pose_from: str = "true") -> dict[str, float]:
    """One-push prediction errors on samples ``idx``: mean per-point error (mm) and rotation error
    (deg), mean and median over pushes. The pose model gets the true pose before the push
    (``pose_from="true"``) or the one ``observe.fit_pose`` estimates from the observed points
    (``"fit"``: what it gets in the loop)."""
    from dream2flow.pusht.data import point_targets
    from dream2flow.pusht.observe import fit_pose

    per_point, rot = [], []
    for i in idx:
        obs = data["obs"][i, :n_points]
        push = data["push"][i:i + 1]
        pose0, pose1 = data["pose0"][i], data["pose1"][i]
        pose_in = fit_pose(obs[:, :3], obs[:, 6:9]) if (pose_from == "fit" and model.kind == "pose") else pose0
        pred = model.predict(obs, push, pose=pose_in)[0].astype(np.float64)
        true = point_targets(obs[None], pose0[None], pose1[None])[0].astype(np.float64)
        per_point.append(float(np.mean(np.linalg.norm(pred - true, axis=1))))
        yaw_pred = _kabsch_yaw(obs[:, :2].astype(np.float64), pred[:, :2])
        rot.append(abs(float(G.wrap(yaw_pred - _yaw_delta(pose0, pose1)))))
    pp, rr = np.array(per_point) * 1000, np.degrees(np.array(rot))
    return {"pushes": int(len(idx)), "mean_point_error_mm": round(float(pp.mean()), 2),
            "median_point_error_mm": round(float(np.median(pp)), 2), "rotation_error_deg": round(float(rr.mean()), 2),
            "median_rotation_error_deg": round(float(np.median(rr)), 2)}


def train_all(out_dir: str | Path, cfg: TrainConfig, *, data_path: str | Path | None = None, command: str = "",
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Collect (or load ``data_path``), train particle + pose, evaluate all three, write
    ``<out_dir>/{particle,pose}.npz`` and ``<out_dir>/train_report.json`` -> the report."""
    from dream2flow.pusht import data as D

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    if data_path is not None and Path(data_path).is_file():
        data = D.load(data_path)
        if progress:
            progress(f"[pusht train] loaded {len(data['push'])} pushes from {data_path}")
    else:
        data = D.collect(cfg.pushes, cfg.seed, progress=progress)
        if data_path is not None:
            D.save(data_path, data)
    tr, ho = split(data)
    report: dict[str, Any] = {"command": command, "seed": cfg.seed, "config": cfg.__dict__, "data": D.stats_dict(data),
                              "train_pushes": int(len(tr)), "heldout_pushes": int(len(ho)), "models": {}}
    from dream2flow.pusht.models import DynamicsModel as DM

    for kind in ("particle", "pose"):
        params, info = train_model(kind, data, tr, cfg, progress)
        errs = heldout_errors(DM(kind, params), data, ho)
        meta = {"training": info, "heldout": errs, "seed": cfg.seed, "command": command}
        if kind == "pose":
            meta["heldout_fitted_pose"] = heldout_errors(DM(kind, params), data, ho, pose_from="fit")
        save_params(out / f"{kind}.npz", kind, params, meta)
        report["models"][kind] = {"training": {k: v for k, v in info.items() if k != "loss_curve"}, "heldout": errs,
                                  **({"heldout_fitted_pose": meta["heldout_fitted_pose"]} if kind == "pose" else {})}
        if progress:
            progress(f"[pusht train] {kind}: held-out {errs['mean_point_error_mm']} mm, {errs['rotation_error_deg']} deg")
    errs = heldout_errors(DM("heuristic"), data, ho)
    report["models"]["heuristic"] = {"heldout": errs}
    report["wall_s"] = round(time.perf_counter() - t_all, 1)
    (out / "train_report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return report
