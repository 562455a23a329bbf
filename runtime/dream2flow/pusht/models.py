"""Forward dynamics models for one push, in JAX (inference never imports torch).

Every model answers ``predict(obs_features [N,9], pushes [r,5], pose [3]) -> points [r,N,3]``:
where the N observed block points (position, colour, normal) end up after each of r pushes.

- ``particle``: per-point features + push parameters, N x 14 in (position 3, RGB 3, normal 3,
  push 5 = cx, cy, ux, uy, d), per-point displacement out: a PointNet (shared per-point MLP,
  max-pooled global feature concatenated back to each point, per-point head). Positions,
  normals and the push are expressed in the *push frame* (origin at the push start on the
  table, x along the push), so the model is translation- and rotation-equivariant on the
  table by construction; in that frame the push is (0, 0, 1, 0, d).
  With the ``rigid`` output (a fourth head channel: per-point confidence) the per-point
  displacements are projected onto the planar rigid motion that fits them best (weighted 2D
  Kabsch): a rigid-consistent displacement field, still predicted point by point. Weights
  with a 3-channel head (``free``) are used as they are.
- ``pose``: block pose (x, y, yaw) + push -> pose change (dx, dy, dyaw), an MLP in the same
  push frame; the observed points are then moved rigidly about the pose. Its pose input comes
  from ``observe.fit_pose`` at run time (the true pose when training).
- ``heuristic``: no learning: every point translates along the push by the push distance
  left after the finger tips reach the block (``primitive.contact_travel``), no rotation.

Weights live in ``pusht/weights/<name>.npz`` (arrays ``W0, b0, ...`` + a JSON ``meta`` with the
layer sizes, the training command, seed, data and held-out errors); see ``weights/README.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DYNAMICS: tuple[str, ...] = ("particle", "pose", "heuristic")
FEATURE_DIM = 14
POS_SCALE_M = 0.1      # positions and push distance are divided by this
DISP_SCALE_M = 0.05    # displacement outputs are multiplied by this
YAW_SCALE_RAD = 0.5
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

PARTICLE_LAYERS = {"point": (FEATURE_DIM, 64, 128), "head": (256, 128, 64, 3)}
# ``rigid`` output: the head also gives each point a confidence logit, and the per-point
# displacements are projected onto the planar rigid motion that fits them best (weighted 2D
# Kabsch) -- a rigid-consistent displacement field. ``free``: the raw per-point displacements.
PARTICLE_OUTPUTS = ("rigid", "free")
POSE_LAYERS = (9, 128, 128, 128, 3)


# ----------------------------------------------------------------------------- parameters
def init_mlp(key: Any, sizes: tuple[int, ...]) -> list[tuple[Any, Any]]:
    import jax
    import jax.numpy as jnp

    out = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        key, k = jax.random.split(key)
        out.append((jax.random.normal(k, (a, b), jnp.float32) * np.sqrt(2.0 / a), jnp.zeros((b,), jnp.float32)))
    return out


def init_params(kind: str, seed: int, output: str = "rigid") -> dict[str, list]:
    """Fresh parameters; ``output`` (particle only) in PARTICLE_OUTPUTS: ``rigid`` adds a confidence
    channel to the head."""
    import jax

    key = jax.random.PRNGKey(seed)
    if kind == "particle":
        if output not in PARTICLE_OUTPUTS:
            raise ValueError(output)
        k1, k2 = jax.random.split(key)
        sizes = PARTICLE_LAYERS["head"]
        head = init_mlp(k2, sizes[:-1] + (sizes[-1] + (output == "rigid"),))
        head[-1] = (head[-1][0] * 0.1, head[-1][1])
        return {"point": init_mlp(k1, PARTICLE_LAYERS["point"]), "head": head}
    if kind == "pose":
        mlp = init_mlp(key, POSE_LAYERS)
        mlp[-1] = (mlp[-1][0] * 0.1, mlp[-1][1])
        return {"mlp": mlp}
    raise ValueError(kind)


def _mlp(layers: list, x: Any, final_linear: bool = True) -> Any:
    import jax.numpy as jnp

    for i, (W, b) in enumerate(layers):
        x = x @ W + b
        if i < len(layers) - 1 or not final_linear:
            x = jnp.maximum(x, 0.0)
    return x


# ----------------------------------------------------------------------------- push frame
def _to_push_frame(xy: Any, c: Any, u: Any) -> Any:
    import jax.numpy as jnp

    rel = xy - c
    return jnp.stack([rel[..., 0] * u[0] + rel[..., 1] * u[1], -rel[..., 0] * u[1] + rel[..., 1] * u[0]], -1)


def _from_push_frame(v: Any, u: Any) -> Any:
    import jax.numpy as jnp

    return jnp.stack([v[..., 0] * u[0] - v[..., 1] * u[1], v[..., 0] * u[1] + v[..., 1] * u[0]], -1)


def particle_features(obs: Any, push: Any) -> Any:
    """[N,9] observed features + one push [5] -> [N,14] model input (push frame, scaled)."""
    import jax.numpy as jnp

    c, u, d = push[:2], push[2:4], push[4]
    p = _to_push_frame(obs[:, :2], c, u) / POS_SCALE_M
    z = obs[:, 2:3] / POS_SCALE_M
    n = _to_push_frame(obs[:, 6:8], jnp.zeros(2), u)
    N = obs.shape[0]
    pp = jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0, 0.0]) , (N, 4))
    dd = jnp.broadcast_to(d / POS_SCALE_M, (N, 1))
    return jnp.concatenate([p, z, obs[:, 3:6], n, obs[:, 8:9], pp, dd], axis=1)


def rigid_projection(xy: Any, disp: Any, w: Any) -> Any:
    """[N,2] displacements of the planar rigid motion (rotation + translation) that best maps the
    points ``xy`` [N,2] onto ``xy + disp`` in the ``w``-weighted least-squares sense (2D Kabsch,
    closed form, differentiable)."""
    import jax.numpy as jnp

    w = w / jnp.sum(w)
    ma = jnp.sum(w[:, None] * xy, axis=0)
    mb = jnp.sum(w[:, None] * (xy + disp), axis=0)
    a, b = xy - ma, xy + disp - mb
    sxx = jnp.sum(w * a[:, 0] * b[:, 0]) + jnp.sum(w * a[:, 1] * b[:, 1])
    sxy = jnp.sum(w * a[:, 0] * b[:, 1]) - jnp.sum(w * a[:, 1] * b[:, 0])
    yaw = jnp.arctan2(sxy, sxx)
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    rot = jnp.stack([c * a[:, 0] - s * a[:, 1], s * a[:, 0] + c * a[:, 1]], -1)
    return rot + mb - xy


def particle_displacement(params: dict, obs: Any, push: Any, raw: bool = False) -> Any:
    """[N,3] displacement (m, base frame) of each observed point for one push. A head with a
    confidence channel (``rigid`` output) is projected onto the best-fitting planar rigid motion
    unless ``raw`` (the per-point displacements before the projection, for an auxiliary loss)."""
    import jax
    import jax.numpy as jnp

    f = particle_features(obs, push)
    h = _mlp(params["point"], f, final_linear=False)
    g = jnp.max(h, axis=0, keepdims=True)
    out = _mlp(params["head"], jnp.concatenate([h, jnp.broadcast_to(g, h.shape)], axis=1))
    d = out[:, :3] * DISP_SCALE_M
    xy = d[:, :2]
    if out.shape[1] == 4 and not raw:  # rigid: projected in the push frame (the projection is frame-equivariant)
        p = _to_push_frame(obs[:, :2], push[:2], push[2:4])
        xy = rigid_projection(p, xy, jax.nn.softplus(out[:, 3]) + 1e-3)
    return jnp.concatenate([_from_push_frame(xy, push[2:4]), d[:, 2:3]], axis=1)


def pose_input(pose: Any, push: Any) -> Any:
    import jax.numpy as jnp

    c, u, d = push[:2], push[2:4], push[4]
    p = _to_push_frame(pose[:2], c, u) / POS_SCALE_M
    yaw = pose[2] - jnp.arctan2(u[1], u[0])
    return jnp.concatenate([p, jnp.stack([jnp.cos(yaw), jnp.sin(yaw)]), jnp.array([0.0, 0.0, 1.0, 0.0]),
                            jnp.reshape(d / POS_SCALE_M, (1,))])


def pose_delta(params: dict, pose: Any, push: Any) -> Any:
    """(dx, dy, dyaw) in the base frame (m, m, rad) for one push."""
    import jax.numpy as jnp

    out = _mlp(params["mlp"], pose_input(pose, push))
    dxy = _from_push_frame(out[:2] * DISP_SCALE_M, push[2:4])
    return jnp.concatenate([dxy, out[2:3] * YAW_SCALE_RAD])


def apply_pose_delta(points: Any, pose: Any, delta: Any) -> Any:
    """Move ``points`` [N,3] rigidly: rotate by delta[2] about pose[:2], translate by delta[:2]."""
    import jax.numpy as jnp

    c, s = jnp.cos(delta[2]), jnp.sin(delta[2])
    rel = points[:, :2] - pose[:2]
    xy = jnp.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], -1) + pose[:2] + delta[:2]
    return jnp.concatenate([xy, points[:, 2:3]], axis=1)


# ----------------------------------------------------------------------------- loading
@dataclass
class DynamicsModel:
    """A loaded model: ``kind`` in DYNAMICS, ``params`` (None for the heuristic), ``meta``."""

    kind: str
    params: dict | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _fn: Any = None

    def predict(self, obs: np.ndarray, pushes: np.ndarray, pose: np.ndarray | None = None,
                travel: np.ndarray | None = None) -> np.ndarray:
        """``obs`` [N,9], ``pushes`` [r,5] -> predicted points [r,N,3] (float32, base frame).
        ``pose`` (x, y, yaw) is needed by the pose model, ``travel`` [r] (free travel before contact,
        m) by the heuristic."""
        obs = np.asarray(obs, np.float32)
        pushes = np.asarray(pushes, np.float32)
        if self.kind == "heuristic":
            if travel is None:
                from dream2flow.pusht.primitive import Pushes, contact_travel

                travel = contact_travel(obs[:, :2], Pushes(pushes[:, :2], pushes[:, 2:4], pushes[:, 4]))
            move = np.clip(pushes[:, 4] - np.asarray(travel), 0.0, None)
            out = np.repeat(obs[None, :, :3], len(pushes), axis=0)
            out[..., :2] += (pushes[:, None, 2:4] * move[:, None, None])
            return out.astype(np.float32)
        fn = self._compiled()
        if self.kind == "pose":
            if pose is None:
                raise ValueError("the pose model needs the block pose")
            return np.asarray(fn(self.params, obs, pushes, np.asarray(pose, np.float32)))
        return np.asarray(fn(self.params, obs, pushes))

    def _compiled(self) -> Any:
        if self._fn is None:
            self._fn = compiled_predictor(self.kind)
        return self._fn


_PREDICTORS: dict[str, Any] = {}


def compiled_predictor(kind: str) -> Any:
    """jit-compiled batched predictor for ``kind`` (one per process)."""
    if kind not in _PREDICTORS:
        import jax

        from dream2flow.planning.jax_setup import enable_compilation_cache

        enable_compilation_cache()
        if kind == "particle":
            def f(params, obs, pushes):  # noqa: ANN001, ANN202
                disp = jax.vmap(lambda p: particle_displacement(params, obs, p))(pushes)
                return obs[None, :, :3] + disp
        else:
            def f(params, obs, pushes, pose):  # noqa: ANN001, ANN202
                deltas = jax.vmap(lambda p: pose_delta(params, pose, p))(pushes)
                return jax.vmap(lambda dl: apply_pose_delta(obs[:, :3], pose, dl))(deltas)
        _PREDICTORS[kind] = jax.jit(f)
    return _PREDICTORS[kind]


def save_params(path: str | Path, kind: str, params: dict, meta: dict[str, Any]) -> Path:
    arrays: dict[str, np.ndarray] = {}
    for group, layers in params.items():
        for i, (W, b) in enumerate(layers):
            arrays[f"{group}.W{i}"] = np.asarray(W, np.float32)
            arrays[f"{group}.b{i}"] = np.asarray(b, np.float32)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez(p, meta=np.array(json.dumps({"kind": kind, **meta}, sort_keys=True)), **arrays)
    return p


def load_params(path: str | Path) -> tuple[dict, dict[str, Any]]:
    import jax.numpy as jnp

    with np.load(Path(path)) as z:
        meta = json.loads(str(z["meta"]))
        groups: dict[str, list] = {}
        names = sorted({k.split(".")[0] for k in z.files if k != "meta"})
        for g in names:
            n = len([k for k in z.files if k.startswith(f"{g}.W")])
            groups[g] = [(jnp.asarray(z[f"{g}.W{i}"]), jnp.asarray(z[f"{g}.b{i}"])) for i in range(n)]
    return groups, meta


def load_model(kind: str, weights_dir: str | Path | None = None) -> DynamicsModel:
    """The shipped model ``kind`` (or the one in ``weights_dir``); the heuristic has no weights."""
    from dream2flow.errors import InvalidInput, NotReady

    if kind not in DYNAMICS:
        raise InvalidInput(f"unknown dynamics model '{kind}' (choose from {', '.join(DYNAMICS)})")
    if kind == "heuristic":
        return DynamicsModel("heuristic", None, {"kind": "heuristic"})
    path = Path(weights_dir or WEIGHTS_DIR) / f"{kind}.npz"
    if not path.is_file():
        raise NotReady(f"no weights for the {kind} model at {path} (train them: dream2flow pusht train)")
    params, meta = load_params(path)
    return DynamicsModel(kind, params, meta)
