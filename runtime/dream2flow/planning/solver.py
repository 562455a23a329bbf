"""Levenberg–Marquardt on stacked residuals, jit-compiled: trajectory optimisation and IK.

Design (in the spirit of PyRoki/jaxls, written from scratch): every cost is a small
residual function; the solver exploits the problem's structure instead of forming one big
dense Jacobian.

* Unary costs depend on one timestep's joints ``q[t]`` only (task points, joint limits,
  rest, orientation). Their Jacobians come from ``jax.jacfwd`` per step (7 columns),
  vmapped over t, and contribute the 7x7 diagonal blocks ``J_tᵀJ_t`` of the normal matrix.
* Smoothness costs (joint velocity and acceleration as finite differences) are linear in
  q, so their normal matrix ``L`` is a constant banded matrix built from the per-step
  weights: no autodiff needed.
* One LM step solves ``(A + λ·mean(diag A)·I) δ = −g`` with a Cholesky factorisation;
  λ adapts (÷3 on success, ×5 on failure). A ``lax.while_loop`` with an iteration cap
  and a deterministic convergence test keeps it jit-friendly and bit-reproducible.

Shapes are padded to buckets by the callers (``optimizer.py``): zero task weights for
padding points, "hold" velocity weights for padding steps. The padding never changes
the optimum of the real steps (padding steps sit exactly at the last real step).
All arrays are float32.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

import jax
import numpy as np

from dream2flow.planning.jax_setup import enable_compilation_cache

if TYPE_CHECKING:
    from dream2flow.config import RobotLimits
    from dream2flow.planning.config import PlannerConfig

IK_BUCKETS = (16, 64)
_LAMBDA_MAX = 1.0e8
_MAX_STEP = 0.5  # rad per LM step


def _jax():
    enable_compilation_cache()
    import jax

    return jax


# ----------------------------------------------------------------------------- LM core
def _lm_loop(x0, build: Callable, solve: Callable, max_iters: int, lam0):
    """Generic LM loop. ``build(x) -> (cost, A, g)``; ``solve(A, g, lam) -> dx``. Every iteration
    evaluates the candidate once (cost and normal equations together) and keeps it only if the
    cost went down, so the compiled program holds one copy of the residual's Jacobian.
    Returns (x, cost, cost0, iterations, accepted)."""
    import jax
    import jax.numpy as jnp

    c0, A0, g0 = build(x0)

    def cond(s):
        return (s["it"] < max_iters) & (~s["done"])

    def body(s):
        dx = solve(s["A"], s["g"], s["lam"])
        # trust region in joint space: no joint moves more than _MAX_STEP rad in one step (with a
        # tiny λ a poorly determined direction could otherwise get a huge step, whose sin/cos of
        # a huge angle is both useless and slow)
        dx = dx * jnp.minimum(1.0, _MAX_STEP / (jnp.max(jnp.abs(dx)) + 1e-12))
        x_new = s["x"] + dx
        c_new, A_new, g_new = build(x_new)
        accept = jnp.isfinite(c_new) & (c_new < s["cost"])
        x = jnp.where(accept, x_new, s["x"])
        c = jnp.where(accept, c_new, s["cost"])
        A = jnp.where(accept, A_new, s["A"])
        g = jnp.where(accept, g_new, s["g"])
        lam = jnp.where(accept, jnp.maximum(s["lam"] / 3.0, 1e-7), s["lam"] * 5.0)
        small = jnp.max(jnp.abs(dx)) < 1e-5
        rel = (s["cost"] - c) <= 1e-6 * jnp.maximum(s["cost"], 1e-12)
        done = (accept & (small | rel)) | (lam > _LAMBDA_MAX) | (c <= 1e-14)
        return {"x": x, "cost": c, "A": A, "g": g, "lam": lam, "it": s["it"] + 1, "done": done,
                "acc": s["acc"] + accept.astype(jnp.int32)}

    s0 = {"x": x0, "cost": c0, "A": A0, "g": g0, "lam": jnp.asarray(lam0, x0.dtype), "it": jnp.int32(0),
          "done": jnp.bool_(False), "acc": jnp.int32(0)}
    s = jax.lax.while_loop(cond, body, s0)
    return s["x"], s["cost"], c0, s["it"], s["acc"]


def _damped_solve(A, g, lam):
    import jax.numpy as jnp
    from jax.scipy.linalg import cho_factor, cho_solve

    # Levenberg damping scaled by the mean curvature (not Marquardt's per-variable diag(A)):
    # poorly determined directions (the arm's null space) get the same damping as the rest,
    # so steps stay minimal-norm and warm-started solves stay on the seed's branch.
    s = jnp.mean(jnp.diagonal(A)) + 1e-9
    M = A + (lam * s) * jnp.eye(A.shape[0], dtype=A.dtype)
    return -cho_solve(cho_factor(M, lower=True), g)


# ----------------------------------------------------------------------------- residuals
def _limit_residual(q, q_lo, q_hi, w_limit):
    import jax.numpy as jnp

    return jnp.sqrt(w_limit) * jnp.concatenate([jnp.maximum(q - q_hi, 0.0), jnp.maximum(q_lo - q, 0.0)])


def _task_residual(R, p, local_pts, targets, weights, w_task):
    """Visibility-weighted point error, normalised per step: sum_i w_i/W ||R·p_i + p − target_i||²·w_task."""
    import jax.numpy as jnp

    pred = local_pts @ R.T + p
    wsum = jnp.sum(weights)
    scale = jnp.sqrt(w_task * weights / jnp.maximum(wsum, 1e-12))
    return (scale[:, None] * (pred - targets)).reshape(-1)


def _rotation_residual(R, R_target, w):
    """sqrt(w/2)·(R − R_target): its square is w·2(1 − cos θ) ≈ w·θ², monotone in θ on [0, π]
    (unlike sin θ), and needs no log map: cheap to differentiate and to compile."""
    import jax.numpy as jnp

    return jnp.sqrt(0.5 * w) * (R - R_target).reshape(-1)


def _traj_unary(q, tgt, w, mask, local_pts, q_rest, R_keep, scal, q_lo, q_hi):
    """All per-step residuals of the trajectory problem, stacked: task | limits | rest | orientation."""
    import jax.numpy as jnp

    from dream2flow.planning.kinematics import fk_tcp_Rp

    w_task, w_limit, w_rest, w_orient = scal[0], scal[1], scal[2], scal[3]
    R, p = fk_tcp_Rp(q)
    r_task = _task_residual(R, p, local_pts, tgt, w, w_task)
    r_lim = _limit_residual(q, q_lo, q_hi, w_limit)
    r_rest = jnp.sqrt(w_rest * mask) * (q - q_rest)
    r_ori = _rotation_residual(R, R_keep, w_orient * mask)
    return jnp.concatenate([r_task, r_lim, r_rest, r_ori])


def _smoothness_matrix(vel_w, acc_w):
    """L [Hb,Hb] with ½ Σ_j Q[:,j]ᵀ L Q[:,j] = velocity + acceleration cost (rest before step 0)."""
    import jax.numpy as jnp

    Hb = vel_w.shape[0]
    E = jnp.eye(Hb, dtype=vel_w.dtype)
    Dv = jnp.sqrt(vel_w[1:])[:, None] * (E[1:] - E[:-1])
    prev = jnp.concatenate([E[:1], E[:-2]], axis=0)
    Da = jnp.sqrt(acc_w[:-1])[:, None] * (E[1:] - 2.0 * E[:-1] + prev)
    return Dv.T @ Dv, Da.T @ Da


@partial(jax.jit, static_argnames=("max_iters",))
def _solve_traj_jit(q_start, q_init, local_pts, targets, weights, step_mask, vel_w, acc_w, q_rest, R_keep,
                    scal, q_lo, q_hi, max_iters: int):
    """R_keep [3,3]: the orientation to keep (the grasp's)."""
    import jax
    import jax.numpy as jnp

    Hb = q_init.shape[0]
    Lv, La = _smoothness_matrix(vel_w, acc_w)
    L = Lv + La
    L11 = L[1:, 1:]
    kronL = jnp.kron(L11, jnp.eye(7, dtype=L.dtype))
    eyeT = jnp.eye(Hb - 1, dtype=L.dtype)

    def unary(q, tgt, w, m):
        r = _traj_unary(q, tgt, w, m, local_pts, q_rest, R_keep, scal, q_lo, q_hi)
        return r, r

    jac = jax.vmap(jax.jacfwd(unary, has_aux=True))
    res = jax.vmap(lambda q, tgt, w, m: unary(q, tgt, w, m)[0])
    tg, wt, mk = targets[1:], weights[1:], step_mask[1:]

    def full_Q(x):
        return jnp.concatenate([q_start[None], x.reshape(Hb - 1, 7)], axis=0)

    def build(x):
        Q = full_Q(x)
        J, r = jac(Q[1:], tg, wt, mk)  # [T,m,7], [T,m]
        JtJ = jnp.einsum("tmi,tmj->tij", J, J)
        gu = jnp.einsum("tmi,tm->ti", J, r)
        LQ = L @ Q
        g = (gu + LQ[1:]).reshape(-1)
        A = (JtJ[:, :, None, :] * eyeT[:, None, :, None]).reshape((Hb - 1) * 7, (Hb - 1) * 7) + kronL
        c = 0.5 * (jnp.sum(r * r) + jnp.sum(Q * LQ))
        return c, A, g

    x0 = q_init[1:].reshape(-1)
    x, c, c0, it, acc = _lm_loop(x0, build, _damped_solve, max_iters, scal[4])
    Q = full_Q(x)
    r = res(Q[1:], tg, wt, mk)
    n_task = local_pts.shape[0] * 3
    terms = jnp.stack([
        0.5 * jnp.sum(r[:, :n_task] ** 2),
        0.5 * jnp.sum(Q * (Lv @ Q)),
        0.5 * jnp.sum(Q * (La @ Q)),
        0.5 * jnp.sum(r[:, n_task:n_task + 14] ** 2),
        0.5 * jnp.sum(r[:, n_task + 14:n_task + 21] ** 2),
        0.5 * jnp.sum(r[:, n_task + 21:] ** 2),
    ])
    return Q, c, c0, it, acc, terms


TERM_NAMES = ("task", "velocity", "acceleration", "joint_limits", "rest", "orientation")


def solve_trajectory(q_start: np.ndarray, q_init: np.ndarray, local_pts: np.ndarray, targets: np.ndarray,
                     weights: np.ndarray, step_mask: np.ndarray, vel_w: np.ndarray, acc_w: np.ndarray,
                     q_rest: np.ndarray, R_keep: np.ndarray, scal: np.ndarray, q_lo: np.ndarray,
                     q_hi: np.ndarray, max_iters: int) -> dict[str, Any]:
    """Run the compiled trajectory LM on already padded float32 inputs (see ``optimizer.py``).
    Returns numpy results: ``q`` [Hb,7], ``cost``, ``cost0``, ``iterations``, ``accepted``, ``terms``."""
    jax = _jax()
    f32 = lambda a: jax.numpy.asarray(np.asarray(a, dtype=np.float32))  # noqa: E731
    Q, c, c0, it, acc, terms = _solve_traj_jit(
        f32(q_start), f32(q_init), f32(local_pts), f32(targets), f32(weights), f32(step_mask), f32(vel_w),
        f32(acc_w), f32(q_rest), f32(R_keep), f32(scal), f32(q_lo), f32(q_hi), max_iters=int(max_iters))
    return {"q": np.asarray(Q), "cost": float(c), "cost0": float(c0), "iterations": int(it), "accepted": int(acc),
            "terms": dict(zip(TERM_NAMES, (float(v) for v in np.asarray(terms))))}


# ----------------------------------------------------------------------------- IK
def _ik_core(q_seed, target, q_rest, scal, q_lo, q_hi, max_iters: int):
    """One pose ``target`` [12] (R row-major | p): residual = [position (m) | w_rot·rotation |
    limits | rest]. Returns (q, position error m, rotation angle error rad)."""
    import jax
    import jax.numpy as jnp

    from dream2flow.planning.kinematics import fk_tcp_Rp

    R_t, p_t = target[:9].reshape(3, 3), target[9:]
    w_rot, w_limit, w_rest = scal[0], scal[1], scal[2]

    def residual(q):
        R, p = fk_tcp_Rp(q)
        r = jnp.concatenate([
            p - p_t,
            _rotation_residual(R, R_t, w_rot * w_rot),
            _limit_residual(q, q_lo, q_hi, w_limit),
            jnp.sqrt(w_rest) * (q - q_rest),
        ])
        return r, r

    jac = jax.jacfwd(residual, has_aux=True)

    def build(q):
        J, r = jac(q)
        return 0.5 * jnp.sum(r * r), J.T @ J, J.T @ r

    q, c, c0, it, acc = _lm_loop(q_seed, build, _damped_solve, max_iters, scal[3])
    R, p = fk_tcp_Rp(q)
    pos_err = jnp.linalg.norm(p - p_t)
    rot_err = jnp.arccos(jnp.clip(0.5 * (jnp.sum(R * R_t) - 1.0), -1.0, 1.0))
    return q, pos_err, rot_err


@partial(jax.jit, static_argnames=("max_iters",))
def _ik_batch_jit(q_seeds, targets, q_rests, scal, q_lo, q_hi, max_iters: int):
    import jax

    return jax.vmap(lambda s, t, r: _ik_core(s, t, r, scal, q_lo, q_hi, max_iters))(q_seeds, targets, q_rests)


@partial(jax.jit, static_argnames=("max_iters",))
def _ik_sequence_jit(q_seed, targets, scal, q_lo, q_hi, max_iters: int):
    """Sequential IK along a pose sequence, each solve warm-started (and rested) at the previous."""
    import jax

    def step(q_prev, tgt):
        q, pe, re = _ik_core(q_prev, tgt, q_prev, scal, q_lo, q_hi, max_iters)
        return q, (q, pe, re)

    _, out = jax.lax.scan(step, q_seed, targets)
    return out


def _mat_to_target(T: np.ndarray) -> np.ndarray:
    """[...,4,4] -> [...,12]: rotation (row-major) then translation, the IK's target layout."""
    T = np.asarray(T, dtype=np.float64)
    return np.concatenate([T[..., :3, :3].reshape(T.shape[:-2] + (9,)), T[..., :3, 3]], axis=-1)


def _ik_params(config: "PlannerConfig | None", limits: "RobotLimits | None"):
    from dream2flow.config import load_robot_limits
    from dream2flow.planning.config import PlannerConfig

    cfg = config or PlannerConfig()
    lim = limits or load_robot_limits()
    scal = np.array([cfg.ik_w_rot, cfg.w_limit, 1e-4, cfg.lm_lambda0], dtype=np.float32)
    q_lo = (lim.q_min + cfg.limit_margin_rad).astype(np.float32)
    q_hi = (lim.q_max - cfg.limit_margin_rad).astype(np.float32)
    return cfg, scal, q_lo, q_hi


def ik_batch(T_targets: np.ndarray, q_seeds: np.ndarray, *, config: "PlannerConfig | None" = None,
             limits: "RobotLimits | None" = None, q_rests: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IK for K poses ``T_targets`` [K,4,4] (TCP) from seeds [K,7], padded to a bucket so one
    compile serves every call. Returns (q [K,7] float64, position error [K] m, rotation error [K] rad)."""
    jax = _jax()
    cfg, scal, q_lo, q_hi = _ik_params(config, limits)
    T_targets = np.asarray(T_targets, dtype=np.float64)
    q_seeds = np.asarray(q_seeds, dtype=np.float64)
    K = T_targets.shape[0]
    if q_rests is None:
        q_rests = q_seeds
    out_q, out_p, out_r = [], [], []
    big = IK_BUCKETS[-1]
    for s in range(0, K, big):
        n = min(big, K - s)
        bucket = next(b for b in IK_BUCKETS if b >= n)
        idx = np.concatenate([np.arange(s, s + n), np.full(bucket - n, s)])
        tg = _mat_to_target(T_targets[idx]).astype(np.float32)
        q, pe, re = _ik_batch_jit(jax.numpy.asarray(q_seeds[idx].astype(np.float32)), jax.numpy.asarray(tg),
                                  jax.numpy.asarray(np.asarray(q_rests)[idx].astype(np.float32)),
                                  jax.numpy.asarray(scal), jax.numpy.asarray(q_lo), jax.numpy.asarray(q_hi),
                                  max_iters=int(cfg.ik_max_iters))
        out_q.append(np.asarray(q)[:n].astype(np.float64))
        out_p.append(np.asarray(pe)[:n].astype(np.float64))
        out_r.append(np.asarray(re)[:n].astype(np.float64))
    return np.concatenate(out_q), np.concatenate(out_p), np.concatenate(out_r)


def ik_sequence(T_targets: np.ndarray, q_seed: np.ndarray, *, horizon_bucket: int,
                config: "PlannerConfig | None" = None, limits: "RobotLimits | None" = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequential warm-started IK along ``T_targets`` [H,4,4], padded (by repeating the last pose)
    to ``horizon_bucket``. Returns (q [H,7], position errors [H], rotation errors [H])."""
    jax = _jax()
    cfg, scal, q_lo, q_hi = _ik_params(config, limits)
    H = T_targets.shape[0]
    idx = np.concatenate([np.arange(H), np.full(horizon_bucket - H, H - 1)])
    tg = _mat_to_target(np.asarray(T_targets)[idx]).astype(np.float32)
    q, pe, re = _ik_sequence_jit(jax.numpy.asarray(np.asarray(q_seed, dtype=np.float32)), jax.numpy.asarray(tg),
                                 jax.numpy.asarray(scal), jax.numpy.asarray(q_lo), jax.numpy.asarray(q_hi),
                                 max_iters=int(cfg.ik_max_iters))
    return (np.asarray(q)[:H].astype(np.float64), np.asarray(pe)[:H].astype(np.float64),
            np.asarray(re)[:H].astype(np.float64))
