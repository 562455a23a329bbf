"""Random shooting over contact-making pushes, scored by a dynamics model against the flow.

One decision (``decide``): the block's observed points X are aligned in time with the flow —
t* is the flow step whose visible points are closest to X (symmetric Chamfer distance), the
target is the flow at t* + ``lookahead`` (clamped to the last step) — then ``candidates``
pushes that touch the block (``primitive.sample_pushes``, filtered to the arm's push area) are
scored in one batched model call: predicted points vs the target's visible points (symmetric
Chamfer, metres), and the cheapest is executed. The loop (``episode.py``) stops when X is
within ``done_tol_m`` of the flow's last step, or when the target is the last step and no
candidate is predicted to get closer than doing nothing, or after ``push_budget`` pushes.

Why Chamfer and not per-point correspondence: the observed points and the flow's tracked
points are different samples of the block's visible surface.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.pusht.primitive import Pushes, sample_pushes


@dataclass(frozen=True)
class ShootingConfig:
    candidates: int = 256        # r: pushes scored per decision
    lookahead: int = 4           # flow steps past t* (of the 32-frame video)
    points: int = 96             # observed points per decision
    push_budget: int = 15
    done_tol_m: float = 0.006    # Chamfer to the flow's last step below this: done
    improve_tol_m: float = 0.001  # at the last step a push must be predicted to gain this much

    def __post_init__(self) -> None:
        for name, lo, hi in (("candidates", 1, 8192), ("lookahead", 0, 1000), ("points", 8, 4096),
                             ("push_budget", 1, 200)):
            v = getattr(self, name)
            if not (isinstance(v, int) and lo <= v <= hi):
                raise InvalidInput(f"shooting {name} must be an integer in [{lo}, {hi}], got {v!r}")
        if not (0 < self.done_tol_m < 0.1):
            raise InvalidInput(f"done_tol_m must be in (0, 0.1) m, got {self.done_tol_m}")


MAX_ALTERNATIVES = 4
_CHAMFER: dict[str, Any] = {}


def chamfer_batch(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Symmetric Chamfer distance (m, mean of nearest-neighbour distances both ways) between each
    predicted cloud ``pred`` [r,N,3] and ``target`` [m,3] restricted to ``mask`` [m] -> [r]."""
    if "f" not in _CHAMFER:
        import jax
        import jax.numpy as jnp

        from dream2flow.planning.jax_setup import enable_compilation_cache

        enable_compilation_cache()

        def f(pred, target, mask):  # noqa: ANN001, ANN202
            d = jnp.sqrt(jnp.sum((pred[:, :, None, :] - target[None, None, :, :]) ** 2, -1) + 1e-12)  # [r,N,m]
            big = jnp.where(mask[None, None, :], d, 1e3)
            a = jnp.mean(jnp.min(big, axis=2), axis=1)
            b = jnp.sum(jnp.where(mask[None, :], jnp.min(d, axis=1), 0.0), axis=1) / jnp.maximum(jnp.sum(mask), 1)
            return 0.5 * (a + b)

        _CHAMFER["f"] = jax.jit(f)
    return np.asarray(_CHAMFER["f"](np.asarray(pred, np.float32), np.asarray(target, np.float32),
                                    np.asarray(mask, bool)))


def align(points: np.ndarray, P: np.ndarray, V: np.ndarray) -> np.ndarray:
    """[T] symmetric Chamfer distance (m) between observed ``points`` [N,3] and each flow step."""
    return np.array([chamfer_batch(points[None], P[t], V[t])[0] for t in range(len(P))])


def pad_flow(P: np.ndarray, V: np.ndarray, bucket: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Pad the flow's points to a multiple of ``bucket`` (invisible padding): one compiled shape."""
    n = P.shape[1]
    m = bucket * max(1, -(-n // bucket))
    Pp = np.zeros((P.shape[0], m, 3), np.float32)
    Vp = np.zeros((P.shape[0], m), bool)
    Pp[:, :n] = np.nan_to_num(P)
    Vp[:, :n] = V & np.isfinite(P).all(-1)
    return Pp, Vp


@dataclass
class Decision:
    push: Pushes | None
    t_star: int
    t_target: int
    cost_now: float             # Chamfer of the observation to the target
    cost_best: float            # predicted Chamfer after the chosen push
    cost_final: float           # Chamfer of the observation to the flow's last step
    predicted: np.ndarray | None  # [N,3] predicted points after the chosen push
    done: str | None = None     # why the loop should stop (None: push)
    candidates: int = 0
    alternatives: list = field(default_factory=list)  # next-best (push, predicted [N,3], cost), for a push
                                                      # the arm turns out unable to reach
    timings_s: dict[str, float] = field(default_factory=dict)


def decide(model: Any, obs: Any, P: np.ndarray, V: np.ndarray, cfg: ShootingConfig, rng: np.random.Generator,
           *, pose: np.ndarray | None = None, reachable: Any = None) -> Decision:
    """One random-shooting decision (module docstring). ``obs``: an ``observe.Observation``;
    ``P`` [T,n,3], ``V`` [T,n] the flow; ``pose`` the block pose for the pose model;
    ``reachable(pushes) -> bool [r]`` filters candidates."""
    T = len(P)
    t0 = time.perf_counter()
    dists = align(obs.points, P, V)
    t_star = int(np.argmin(dists))
    t_target = min(t_star + cfg.lookahead, T - 1)
    cost_final = float(dists[-1])
    cost_now = float(dists[t_target])
    t_align = time.perf_counter() - t0
    if cost_final < cfg.done_tol_m:
        return Decision(None, t_star, t_target, cost_now, cost_now, cost_final, None, done="reached the flow's end",
                        timings_s={"align": t_align})
    t1 = time.perf_counter()
    pushes = sample_pushes(obs.points[:, :2], 2 * cfg.candidates, rng)
    ok = reachable(pushes) if reachable is not None else np.ones(len(pushes), bool)
    if not ok.any():
        return Decision(None, t_star, t_target, cost_now, cost_now, cost_final, None,
                        done="no candidate push is within the arm's reach", timings_s={"align": t_align})
    keep = np.nonzero(ok)[0]
    keep = np.resize(keep, cfg.candidates)  # a fixed batch (one compiled shape); repeats only if few are reachable
    pushes = Pushes(pushes.c[keep], pushes.u[keep], pushes.d[keep])
    t2 = time.perf_counter()
    pred = model.predict(obs.features(), pushes.params(), pose=pose)
    t3 = time.perf_counter()
    cost = chamfer_batch(pred, P[t_target], V[t_target])
    t4 = time.perf_counter()
    best = int(np.argmin(cost))
    timings = {"align": t_align, "sample": t2 - t1, "predict": t3 - t2, "score": t4 - t3, "decide": t4 - t0}
    if t_target == T - 1 and cost[best] > cost_now - cfg.improve_tol_m:
        return Decision(None, t_star, t_target, cost_now, float(cost[best]), cost_final, None,
                        done="no push is predicted to get closer to the flow's end", candidates=len(pushes),
                        timings_s=timings)
    order = np.argsort(cost, kind="stable")
    alts, seen = [], {best}
    for i in order[1:]:
        if len(alts) >= MAX_ALTERNATIVES:
            break
        if int(i) in seen or cost[i] > cost_now - cfg.improve_tol_m:
            continue
        seen.add(int(i))
        alts.append((pushes.take(int(i)), pred[i], float(cost[i])))
    return Decision(pushes.take(best), t_star, t_target, cost_now, float(cost[best]), cost_final, pred[best],
                    candidates=len(pushes), timings_s=timings, alternatives=alts)
