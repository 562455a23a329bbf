"""Training data: random contact-making pushes of the T-block by the floating pusher.

One sample = what the loop camera saw before the push (``points`` observed block points with
colour and normal, [M,9]), the push (cx, cy, ux, uy, d), and the block pose before and after
(from the simulator: the *labels*; the ground-truth displacement of every observed point is
the rigid motion between the two poses). The block starts at random poses (x 0.38-0.62 m,
y -0.14-0.14 m, any yaw) and is pushed ``pushes_per_reset`` times in a row (so it is also seen
where pushing leaves it), re-drawn when it leaves the work area or tips.

Seeds: everything is drawn from ``SeedSequence([DATA_TAG, seed])``; scene seeds (table,
lighting) are ``SCENE_SEED0 + seed * 1000 + k``, far from the evaluation's scene seeds
(0..999); evaluation never uses the random initial poses drawn here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from dream2flow.pusht import geometry as G

DATA_TAG = 0x5055_5348  # "PUSH"
SCENE_SEED0 = 1_000_000
POINTS_PER_SAMPLE = 256
KEYS = ("obs", "push", "pose0", "pose1")


def _random_pose(rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.uniform(0.38, 0.62), rng.uniform(-0.14, 0.14), rng.uniform(-np.pi, np.pi)])


def _flat(env) -> bool:  # noqa: ANN001
    """Block resting flat on the table (not tipped or lifted)."""
    from dream2flow.pusht.task import PushT

    a = PushT.qadr(env.model)
    w, x, y, _ = env.data.qpos[a + 3:a + 7]
    tilt = 2 * np.arcsin(min(1.0, float(np.hypot(x, y)) / max(float(np.linalg.norm(env.data.qpos[a + 3:a + 7])), 1e-9)))
    del w
    return abs(float(env.data.qpos[a + 2]) - G.BAR_HALF[2]) < 0.004 and tilt < np.radians(5)


def collect(n_pushes: int, seed: int, *, points: int = POINTS_PER_SAMPLE, pushes_per_reset: int = 6,
            pushes_per_scene: int = 60, progress: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """``n_pushes`` samples (module docstring) -> dict of arrays: ``obs`` [S,M,9] float32, ``push``
    [S,5], ``pose0``/``pose1`` [S,3] float64, ``episode`` [S] int (reset index: for held-out splits),
    plus ``stats`` timings."""
    from dream2flow.pusht.env import PushTEnv
    from dream2flow.pusht.primitive import sample_pushes

    rng = np.random.default_rng(np.random.SeedSequence([DATA_TAG, int(seed)]))
    out: dict[str, list] = {k: [] for k in (*KEYS, "episode")}
    env = None
    episode = -1
    since_reset = pushes_per_reset
    t0 = time.perf_counter()
    t_obs = t_phys = 0.0
    steps0 = 0
    scene_k = 0
    while len(out["push"]) < n_pushes:
        if env is None or (len(out["push"]) and len(out["push"]) % pushes_per_scene == 0 and since_reset == 0):
            if env is not None:
                steps0 += env.physics_steps
                env.close()
            env = PushTEnv(_random_pose(rng), SCENE_SEED0 + int(seed) * 1000 + scene_k)
            scene_k += 1
            since_reset = pushes_per_reset
        if since_reset >= pushes_per_reset:
            env.set_block_pose(_random_pose(rng))
            env.step(25)
            episode += 1
            since_reset = 0
        t = time.perf_counter()
        ob = env.observe(points, rng, robot=False)  # arm parked: block pixels identical (measured)
        t_obs += time.perf_counter() - t
        push = sample_pushes(ob.points[:, :2], 1, rng)
        pose0 = env.block_pose()
        t = time.perf_counter()
        env.floating_push(push)
        t_phys += time.perf_counter() - t
        pose1 = env.block_pose()
        since_reset += 1
        if not _flat(env) or not G.in_workspace(pose1):
            since_reset = pushes_per_reset  # drop this sample, draw a new pose
            continue
        out["obs"].append(ob.features())
        out["push"].append(push.params()[0])
        out["pose0"].append(pose0)
        out["pose1"].append(pose1)
        out["episode"].append(episode)
        n = len(out["push"])
        if progress is not None and (n % 500 == 0 or n == n_pushes):
            progress(f"[pusht data] {n}/{n_pushes} pushes ({time.perf_counter() - t0:.0f} s)")
    steps = steps0 + env.physics_steps
    env.close()
    wall = time.perf_counter() - t0
    data = {k: np.asarray(v) for k, v in out.items()}
    data["obs"] = data["obs"].astype(np.float32)
    data["push"] = data["push"].astype(np.float32)
    data["stats"] = np.array([wall, t_obs, t_phys, steps], dtype=np.float64)
    return data


def stats_dict(data: dict[str, np.ndarray]) -> dict[str, float]:
    wall, t_obs, t_phys, steps = (float(x) for x in data["stats"])
    n = len(data["push"])
    return {"pushes": n, "wall_s": round(wall, 2), "observe_s": round(t_obs, 2), "physics_s": round(t_phys, 2),
            "physics_steps": int(steps), "physics_steps_per_s": round(steps / max(t_phys, 1e-9)),
            "pushes_per_s": round(n / max(wall, 1e-9), 2)}


def save(path: str | Path, data: dict[str, np.ndarray]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(p, **data)
    return p


def load(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(Path(path)) as z:
        return {k: z[k] for k in z.files}


def point_targets(obs: np.ndarray, pose0: np.ndarray, pose1: np.ndarray) -> np.ndarray:
    """[S,M,3] where each observed point ends up: the block's rigid planar motion pose0 -> pose1."""
    out = np.empty(obs.shape[:2] + (3,), np.float64)
    for i in range(len(obs)):
        out[i] = G.transform_points(obs[i, :, :3].astype(np.float64), pose0[i], pose1[i])
    return out.astype(np.float32)
