"""Levenberg–Marquardt on stacked residuals, jit-compiled: trajectory optimisation and IK.

Design (in the spirit of PyRoki/jaxls, written from scratch): every cost is a small
residual function; the solver exploits the problem's structure instead of forming one big
dense Jacobian.

* Unary costs depend on one timestep's joints ``q[t]`` only (task points, joint limits,
  rest, orientation) and contribute the 7x7 diagonal blocks ``J_tᵀJ_t`` of the normal matrix.
* Smoothness costs (joint velocity and acceleration as finite differences) are linear in
  q: their normal matrix ``L`` is a constant pentadiagonal matrix (three diagonals from the
  per-step weights), applied by shifted products, never formed densely.
* So the normal matrix is block-banded in time (7x7 blocks, block bandwidth 2). Pairs of
  steps make it block-tridiagonal with 14x14 blocks, factorised by a block Cholesky scan:
  O(H) per solve instead of the O(H³) of a dense Cholesky (measured: faster at every bucket,
  3x at H=30; XLA's dense Cholesky also degrades badly on a busy CPU).
* The task term never forms its [n·3, 7] Jacobian: its Gauss-Newton block is a contraction
  of the pose derivative with constant per-step moments of the points (``_solve_traj``),
  and the pose derivative is analytic (``kinematics.fk_tcp_jacobian``): an iteration costs
  about one residual evaluation, whatever the number of points.
* One LM step solves ``(A + λ·mean(diag A)·I) δ = −g``. A candidate is judged by its gain
  ratio (actual ÷ the model's predicted reduction); λ follows Nielsen's rule. A rejected
  step costs one residual evaluation and a re-factorisation: the Jacobian and ``A`` are
  rebuilt (``lax.cond``) only when a step is accepted. The loop stops when an accepted step
  gains less than ``_COST_RTOL`` of the cost (well above float32 rounding, ~1e-7), when a
  step no longer changes the cost beyond rounding, when the step is below ``_STEP_TOL`` rad,
  or at the iteration cap. ``lax.while_loop`` keeps it jit-friendly and bit-reproducible.

Shapes are padded to buckets by the callers (``optimizer.py``): zero task weights for
padding points, "hold" velocity weights for padding steps. The padding never changes
the optimum of the real steps (padding steps sit exactly at the last real step).
All arrays are float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from dream2flow.planning.jax_setup import compiled

if TYPE_CHECKING:
    from dream2flow.config import RobotLimits
    from dream2flow.planning.config import PlannerConfig

# One IK batch shape: a plan's grasp and pre-grasp IK both run at 64 rows. A second, 16-row
# executable saved 0.3 ms per small batch but cost a fresh process ~0.3 s to load (issue 21);
# the rows are independent, so a row's result does not depend on the bucket (bit-identical).
IK_BUCKETS = (64,)
_LAMBDA_MAX = 1.0e8
_MAX_STEP = 0.5          # rad per LM step
_COST_RTOL = 1.0e-4      # an accepted step gaining less than this fraction of the cost ends the solve
_NOISE_RTOL = 1.0e-6     # |cost change| below this fraction of the cost is float32 rounding
_STEP_TOL = 1.0e-5       # rad: a step this small ends the solve
_DEBUG = False


# ----------------------------------------------------------------------------- LM core
def _lm_loop(x0, cost: Callable, build: Callable, solve: Callable, curvature: Callable, max_iters: int, lam0):
    """Generic LM loop (module doc). ``cost(x) -> c``; ``build(x) -> (g, A)`` the gradient and the
    Gauss-Newton matrix in the caller's structure; ``solve(A, g, lam) -> dx`` for
    ``(A + lam·mean(diag A)·I) dx = −g``; ``curvature(A, dx) -> dxᵀ A dx``.
    Returns (x, cost, cost0, iterations, accepted)."""
    import jax
    import jax.numpy as jnp

    c0 = cost(x0)
    g0, A0 = build(x0)

    def cond(s):
        return (s["it"] < max_iters) & (~s["done"])

    def body(s):
        x, c, g, A, lam = s["x"], s["cost"], s["g"], s["A"], s["lam"]
        dx = solve(A, g, lam)
        # trust region in joint space: no joint moves more than _MAX_STEP rad in one step (with a
        # tiny λ a poorly determined direction could otherwise get a huge step, whose sin/cos of
        # a huge angle is both useless and slow)
        step = jnp.max(jnp.abs(dx))
        dx = dx * jnp.minimum(1.0, _MAX_STEP / (step + 1e-12))
        pred = -(jnp.vdot(g, dx) + 0.5 * curvature(A, dx))   # the model's reduction of the cost
        x_new = x + dx
        c_new = cost(x_new)
        actual = c - c_new
        accept = jnp.isfinite(c_new) & (actual > 0)
        g, A = jax.lax.cond(accept, lambda: build(x_new), lambda: (g, A))
        rho = actual / jnp.maximum(pred, 1e-30)
        lam_acc = lam * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * jnp.minimum(rho, 1.0) - 1.0) ** 3)
        lam = jnp.where(accept, jnp.maximum(lam_acc, 1e-7), lam * s["nu"])
        nu = jnp.where(accept, 2.0, 2.0 * s["nu"])
        noise = _NOISE_RTOL * jnp.maximum(c, 1e-12)
        converged = (accept & (actual <= _COST_RTOL * jnp.maximum(c, 1e-12))) \
            | ((jnp.abs(actual) <= noise) & (pred <= noise)) \
            | (step < _STEP_TOL)
        if _DEBUG:
            jax.debug.print("it {i} acc {a} c {c:.7g} cnew {cn:.7g} pred {p:.3g} act {ac:.3g} rho {r:.3g} lam {l:.3g} step {st:.3g}",
                            i=s["it"], a=accept, c=c, cn=c_new, p=pred, ac=actual, r=rho, l=s["lam"], st=step)
        x = jnp.where(accept, x_new, x)
        c = jnp.where(accept, c_new, c)
        done = converged | (lam > _LAMBDA_MAX) | (c <= 1e-14)
        return {"x": x, "cost": c, "g": g, "A": A, "lam": lam, "nu": nu, "it": s["it"] + 1, "done": done,
                "acc": s["acc"] + accept.astype(jnp.int32)}

    s0 = {"x": x0, "cost": c0, "g": g0, "A": A0, "lam": jnp.asarray(lam0, x0.dtype), "nu": jnp.asarray(2.0, x0.dtype),
          "it": jnp.int32(0), "done": jnp.bool_(False), "acc": jnp.int32(0)}
    s = jax.lax.while_loop(cond, body, s0)
    return s["x"], s["cost"], c0, s["it"], s["acc"]


def _damped_solve(A, g, lam):
    """Dense: ``(A + lam·mean(diag A)·I) dx = −g`` by Cholesky (the IK's 7x7 system)."""
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


def _task_scale(weights, w_task):
    """Per-point residual scale s_i = √(w_task·w_i/W) [..., n] (visibility-weighted mean per step)."""
    import jax.numpy as jnp

    wsum = jnp.sum(weights, axis=-1, keepdims=True)
    return jnp.sqrt(w_task * weights / jnp.maximum(wsum, 1e-12))


def _rotation_residual(R, R_target, w):
    """sqrt(w/2)·(R − R_target): its square is w·2(1 − cos θ) ≈ w·θ², monotone in θ on [0, π]
    (unlike sin θ), and needs no log map: cheap to differentiate and to compile."""
    import jax.numpy as jnp

    return jnp.sqrt(0.5 * w) * (R - R_target).reshape(-1)


def _step_small(q, R, mask, q_rest, R_keep, scal, q_lo, q_hi):
    """The small per-step residuals (limits [14] | rest [7] | orientation [9]) of joints ``q`` with
    TCP rotation ``R``."""
    import jax.numpy as jnp

    w_limit, w_rest, w_orient = scal[1], scal[2], scal[3]
    r_lim = _limit_residual(q, q_lo, q_hi, w_limit)
    r_rest = jnp.sqrt(w_rest * mask) * (q - q_rest)
    r_ori = _rotation_residual(R, R_keep, w_orient * mask)
    return jnp.concatenate([r_lim, r_rest, r_ori])


def _step_small_jacobian(q, E, mask, scal, q_lo, q_hi):
    """d(_step_small)/dq [30,7] from the pose derivative E [3,4,7]: the limit hinges and the rest
    pull are diagonal, the orientation residual is √(w/2)·∂R."""
    import jax.numpy as jnp

    w_limit, w_rest, w_orient = scal[1], scal[2], scal[3]
    eye = jnp.eye(7, dtype=q.dtype)
    sl = jnp.sqrt(w_limit)
    J_lim = jnp.concatenate([sl * jnp.where(q > q_hi, 1.0, 0.0)[:, None] * eye,
                             -sl * jnp.where(q < q_lo, 1.0, 0.0)[:, None] * eye])
    J_rest = jnp.sqrt(w_rest * mask) * eye
    J_ori = jnp.sqrt(0.5 * w_orient * mask) * E[:, :3, :].reshape(9, 7)
    return jnp.concatenate([J_lim, J_rest, J_ori])


def _smoothness_bands(vel_w, acc_w):
    """The smoothness normal matrices as diagonals: (Lv, La), each [3, Hb] = (main, first upper,
    second upper; zero-padded at the end), with ½ Σ_j Q[:,j]ᵀ L Q[:,j] = velocity + acceleration
    cost. Velocity rows t ≥ 1: √w_t (q_t − q_{t−1}); acceleration rows c: √a_c (q_{c+1} − 2q_c + q_{c−1})
    with the arm at rest before step 0 (q_{−1} = q_0, so row 0 is q_1 − q_0)."""
    import jax.numpy as jnp

    Hb = vel_w.shape[0]
    z = jnp.zeros(Hb, dtype=vel_w.dtype)
    v = vel_w.at[0].set(0.0)                        # row t couples t−1 and t
    v_main = v + jnp.concatenate([v[1:], z[:1]])     # t as the later and as the earlier step
    v_up1 = -jnp.concatenate([v[1:], z[:1]])         # (t, t+1)
    a = acc_w.at[Hb - 1].set(0.0)                   # row c (0 ≤ c ≤ Hb−2)
    a0, a_in = a[0], a.at[0].set(0.0)                # row 0: q_1 − q_0; rows c ≥ 1: (1, −2, 1) at c−1, c, c+1
    nxt = jnp.concatenate([a_in[1:], z[:1]])        # a_{t+1}: t is the row's c−1
    prv = jnp.concatenate([z[:1], a_in[:-1]])        # a_{t−1}: t is the row's c+1
    a_main = 4.0 * a_in + nxt + prv
    a_main = a_main.at[0].add(a0).at[1].add(a0)
    a_up1 = -2.0 * a_in - 2.0 * nxt                 # (t, t+1): rows c = t and c = t+1
    a_up1 = a_up1.at[0].add(-a0)
    a_up2 = nxt                                     # (t, t+2): row c = t+1
    Lv = jnp.stack([v_main, v_up1, z])
    La = jnp.stack([a_main, a_up1, a_up2])
    return Lv, La


def _band_matvec(B, X):
    """Symmetric banded [3, N] (main, +1, +2 diagonals) times X [N, k]."""
    import jax.numpy as jnp

    def up(d, k):  # row t gets d[t]·X[t+k]
        return d[:, None] * jnp.concatenate([X[k:], jnp.zeros((k,) + X.shape[1:], X.dtype)])

    def down(d, k):  # row t gets d[t−k]·X[t−k]
        return jnp.concatenate([jnp.zeros((k,) + X.shape[1:], X.dtype), d[:-k, None] * X[:-k]])

    return B[0][:, None] * X + up(B[1], 1) + down(B[1], 1) + up(B[2], 2) + down(B[2], 2)


def _banded_block_solve(JtJ, band, g, damp):
    """Solve ``(blockdiag(JtJ) + kron(band, I7) + damp·I) dx = −g`` for JtJ [T,7,7], band [3,T]
    (symmetric pentadiagonal), g [T,7]: pairs of steps form a block-tridiagonal matrix with 14x14
    blocks, factorised and solved by block Cholesky scans in O(T)."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular

    T = JtJ.shape[0]
    dt = JtJ.dtype
    I7 = jnp.eye(7, dtype=dt)
    if T % 2:  # one dummy step, decoupled, with an identity block: its solution is 0
        JtJ = jnp.concatenate([JtJ, I7[None]])
        band = jnp.concatenate([band, jnp.zeros((3, 1), dt)], axis=1)
        band = band.at[1, T - 1].set(0.0).at[2, T - 2].set(0.0).at[2, T - 1].set(0.0)
        g = jnp.concatenate([g, jnp.zeros((1, 7), dt)])
    N = JtJ.shape[0] // 2
    Dd = JtJ + (band[0] + damp)[:, None, None] * I7                     # diagonal 7x7 blocks
    Dd = Dd.reshape(N, 2, 7, 7)
    c01 = band[1].reshape(N, 2)[:, 0]                                  # A[2i, 2i+1]
    D = jnp.concatenate([jnp.concatenate([Dd[:, 0], c01[:, None, None] * I7], axis=2),
                         jnp.concatenate([c01[:, None, None] * I7, Dd[:, 1]], axis=2)], axis=1)   # [N,14,14]
    # B_i = A[pair i, pair i−1] = [[a2(2i−2) I, a1(2i−1) I], [0, a2(2i−1) I]]
    a2 = band[2].reshape(N, 2)
    a1 = band[1].reshape(N, 2)
    p_a2_0 = jnp.concatenate([jnp.zeros(1, dt), a2[:-1, 0]])
    p_a1_1 = jnp.concatenate([jnp.zeros(1, dt), a1[:-1, 1]])
    p_a2_1 = jnp.concatenate([jnp.zeros(1, dt), a2[:-1, 1]])
    Z = jnp.zeros((N, 7, 7), dt)
    B = jnp.concatenate([jnp.concatenate([p_a2_0[:, None, None] * I7, p_a1_1[:, None, None] * I7], axis=2),
                         jnp.concatenate([Z, p_a2_1[:, None, None] * I7], axis=2)], axis=1)       # [N,14,14]
    b = -g.reshape(N, 14)

    def fwd(carry, inp):
        Lp, yp = carry
        Di, Bi, bi = inp
        W = solve_triangular(Lp, Bi.T, lower=True).T                   # B_i L_{i−1}^{−T}
        Li = jnp.linalg.cholesky(Di - W @ W.T)
        yi = solve_triangular(Li, bi - W @ yp, lower=True)
        return (Li, yi), (Li, W, yi)

    _, (Ls, Ws, ys) = jax.lax.scan(fwd, (jnp.eye(14, dtype=dt), jnp.zeros(14, dt)), (D, B, b))
    W_next = jnp.concatenate([Ws[1:], jnp.zeros((1, 14, 14), dt)])

    def bwd(xn, inp):
        Li, Wn, yi = inp
        xi = solve_triangular(Li.T, yi - Wn.T @ xn, lower=False)
        return xi, xi

    _, xs = jax.lax.scan(bwd, jnp.zeros(14, dt), (Ls, W_next, ys), reverse=True)
    return xs.reshape(2 * N, 7)[:T]


def _solve_traj(q_start, q_init, local_pts, targets, weights, step_mask, vel_w, acc_w, q_rest, R_keep,
                    scal, q_lo, q_hi, max_iters: int):
    """R_keep [3,3]: the orientation to keep (the grasp's)."""
    import jax
    import jax.numpy as jnp

    from dream2flow.planning.kinematics import fk_tcp_jacobian, fk_tcp_Rp

    Hb = q_init.shape[0]
    Lv, La = _smoothness_bands(vel_w, acc_w)
    L11 = (Lv + La)[:, 1:]                           # the free steps' block of L (q_0 is fixed): the solve's


    # Task term, per step t and point i: r_ti = s_ti (R_t x_i + p_t − y_ti), x̃_i = (x_i, 1). Its
    # Gauss-Newton block is Σ_i s² G_iᵀG_i with G_i = [∂R x_i + ∂p]: with E = ∂[R | p]/∂q [3,4,7] and the
    # constant moments M_t = Σ_i s_ti² x̃_i x̃_iᵀ [4,4] it is Σ_c E_cᵀ M_t E_c — O(1) per step instead of
    # O(n); the gradient Σ_i s_ti (E x̃_i)·r_ti needs only the residual moments Σ_i s_ti r_ti x̃_iᵀ [3,4].
    tg, wt, mk = targets[1:], weights[1:], step_mask[1:]
    sc = _task_scale(wt, scal[0])                                            # [T,n]
    X = local_pts.T                                                          # [3,n]
    xt = jnp.concatenate([local_pts, jnp.ones_like(local_pts[:, :1])], axis=1)   # [n,4]
    Mt = jnp.einsum("tn,na,nb->tab", sc * sc, xt, xt)                         # [T,4,4]
    yT = jnp.transpose(tg, (0, 2, 1))                                        # [T,3,n]
    small = jax.vmap(lambda q, R, m: _step_small(q, R, m, q_rest, R_keep, scal, q_lo, q_hi))
    small_jac = jax.vmap(lambda q, E, m: _step_small_jacobian(q, E, m, scal, q_lo, q_hi))

    def task_res(R, p):
        """[T,3,n] task residuals for TCP poses R [T,3,3], p [T,3] (element-wise: one fused pass)."""
        pred = R[:, :, 0, None] * X[0] + R[:, :, 1, None] * X[1] + R[:, :, 2, None] * X[2] + p[:, :, None]
        return sc[:, None, :] * (pred - yT)

    def unary_cost(x):
        R, p = jax.vmap(fk_tcp_Rp)(x)
        r, rs = task_res(R, p), small(x, R, mk)
        return 0.5 * (jnp.sum(r * r) + jnp.sum(rs * rs))

    def unary_normal(x):
        R, p, E = jax.vmap(fk_tcp_jacobian)(x)                             # E [T,3,4,7]
        r = task_res(R, p)
        Rr = jnp.einsum("tci,ia->tca", sc[:, None, :] * r, xt)              # [T,3,4]
        rs, Js = small(x, R, mk), small_jac(x, E, mk)                       # [T,30], [T,30,7]
        JtJ = jnp.einsum("tcak,tab,tcbl->tkl", E, Mt, E) + jnp.einsum("tmk,tml->tkl", Js, Js)
        g = jnp.einsum("tcak,tca->tk", E, Rr) + jnp.einsum("tmk,tm->tk", Js, rs)
        return JtJ, g

    def full_Q(x):
        return jnp.concatenate([q_start[None], x], axis=0)

    sv, sa = jnp.sqrt(vel_w[1:])[:, None], jnp.sqrt(acc_w[:-1])[:, None]

    def smooth_res(Q):
        # differences first, then weights: the cost stays accurate to float32 rounding of the
        # residuals (a quadratic form Qᵀ L Q with the 1e3 hold weights cancels to ~1e-3 absolute)
        d = Q[1:] - Q[:-1]                                 # q_t − q_{t−1}, t ≥ 1
        d_prev = jnp.concatenate([jnp.zeros_like(d[:1]), d[:-1]])   # at rest before step 0
        return sv * d, sa * (d - d_prev)

    def smooth_cost(Q):
        rv, ra = smooth_res(Q)
        return 0.5 * (jnp.sum(rv * rv) + jnp.sum(ra * ra))

    def cost(x):
        return unary_cost(x) + smooth_cost(full_Q(x))

    def build(x):
        JtJ, gu = unary_normal(x)
        return gu + jax.grad(smooth_cost)(full_Q(x))[1:], JtJ

    def curvature(JtJ, dx):
        return jnp.einsum("ti,tij,tj->", dx, JtJ, dx) + 2.0 * smooth_cost(jnp.concatenate([jnp.zeros_like(dx[:1]), dx]))

    def solve(JtJ, g, lam):
        # Levenberg damping scaled by the mean curvature (see _damped_solve)
        s = jnp.mean(jnp.diagonal(JtJ, axis1=1, axis2=2) + L11[0][:, None]) + 1e-9
        return _banded_block_solve(JtJ, L11, g, lam * s)

    x0 = q_init[1:]
    x, c, c0, it, acc = _lm_loop(x0, cost, build, solve, curvature, max_iters, scal[4])
    Q = full_Q(x)
    Rs, ps = jax.vmap(fk_tcp_Rp)(x)
    r = task_res(Rs, ps)
    f = small(x, Rs, mk)                                                     # [T,30]
    rv, ra = smooth_res(Q)
    terms = jnp.stack([
        0.5 * jnp.sum(r ** 2),
        0.5 * jnp.sum(rv ** 2),
        0.5 * jnp.sum(ra ** 2),
        0.5 * jnp.sum(f[:, :14] ** 2),
        0.5 * jnp.sum(f[:, 14:21] ** 2),
        0.5 * jnp.sum(f[:, 21:] ** 2),
    ])
    return Q, c, c0, it, acc, terms


TERM_NAMES = ("task", "velocity", "acceleration", "joint_limits", "rest", "orientation")


def solve_trajectory(q_start: np.ndarray, q_init: np.ndarray, local_pts: np.ndarray, targets: np.ndarray,
                     weights: np.ndarray, step_mask: np.ndarray, vel_w: np.ndarray, acc_w: np.ndarray,
                     q_rest: np.ndarray, R_keep: np.ndarray, scal: np.ndarray, q_lo: np.ndarray,
                     q_hi: np.ndarray, max_iters: int) -> dict[str, Any]:
    """Run the compiled trajectory LM on already padded float32 inputs (see ``optimizer.py``).
    Returns numpy results: ``q`` [Hb,7], ``cost``, ``cost0``, ``iterations``, ``accepted``, ``terms``."""
    args = tuple(np.asarray(a, dtype=np.float32) for a in (q_start, q_init, local_pts, targets, weights, step_mask,
                                                            vel_w, acc_w, q_rest, R_keep, scal, q_lo, q_hi))
    Q, c, c0, it, acc, terms = compiled("trajectory", _solve_traj, args, max_iters=int(max_iters))(*args)
    return {"q": np.asarray(Q), "cost": float(c), "cost0": float(c0), "iterations": int(it), "accepted": int(acc),
            "terms": dict(zip(TERM_NAMES, (float(v) for v in np.asarray(terms))))}


# ----------------------------------------------------------------------------- IK
def _ik_core(q_seed, target, q_rest, scal, q_lo, q_hi, max_iters: int):
    """One pose ``target`` [12] (R row-major | p): residual = [position (m) | w_rot·rotation |
    limits | rest]. Returns (q, position error m, rotation angle error rad)."""
    import jax
    import jax.numpy as jnp

    from dream2flow.planning.kinematics import fk_tcp_jacobian, fk_tcp_Rp

    R_t, p_t = target[:9].reshape(3, 3), target[9:]
    w_rot, w_limit, w_rest = scal[0], scal[1], scal[2]

    def residual(q, R, p):
        return jnp.concatenate([
            p - p_t,
            _rotation_residual(R, R_t, w_rot * w_rot),
            _limit_residual(q, q_lo, q_hi, w_limit),
            jnp.sqrt(w_rest) * (q - q_rest),
        ])

    def cost(q):
        r = residual(q, *fk_tcp_Rp(q))
        return 0.5 * jnp.sum(r * r)

    def build(q):
        R, p, E = fk_tcp_jacobian(q)          # the pose derivative, analytic (E [3,4,7])
        r = residual(q, R, p)
        eye = jnp.eye(7, dtype=q.dtype)
        sl = jnp.sqrt(w_limit)
        J = jnp.concatenate([
            E[:, 3, :],
            jnp.sqrt(0.5) * w_rot * E[:, :3, :].reshape(9, 7),
            sl * jnp.where(q > q_hi, 1.0, 0.0)[:, None] * eye,
            -sl * jnp.where(q < q_lo, 1.0, 0.0)[:, None] * eye,
            jnp.sqrt(w_rest) * eye,
        ])
        return J.T @ r, J.T @ J

    q, c, c0, it, acc = _lm_loop(q_seed, cost, build, _damped_solve, lambda A, dx: dx @ A @ dx, max_iters, scal[3])
    R, p = fk_tcp_Rp(q)
    pos_err = jnp.linalg.norm(p - p_t)
    rot_err = jnp.arccos(jnp.clip(0.5 * (jnp.sum(R * R_t) - 1.0), -1.0, 1.0))
    return q, pos_err, rot_err


def _ik_batch(q_seeds, targets, q_rests, scal, q_lo, q_hi, max_iters: int):
    import jax

    return jax.vmap(lambda s, t, r: _ik_core(s, t, r, scal, q_lo, q_hi, max_iters))(q_seeds, targets, q_rests)


def _ik_sequence(q_seed, targets, scal, q_lo, q_hi, max_iters: int):
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
        args = (q_seeds[idx].astype(np.float32), tg, np.asarray(q_rests)[idx].astype(np.float32), scal, q_lo, q_hi)
        q, pe, re = compiled("ik", _ik_batch, args, max_iters=int(cfg.ik_max_iters))(*args)
        out_q.append(np.asarray(q)[:n].astype(np.float64))
        out_p.append(np.asarray(pe)[:n].astype(np.float64))
        out_r.append(np.asarray(re)[:n].astype(np.float64))
    return np.concatenate(out_q), np.concatenate(out_p), np.concatenate(out_r)


def ik_sequence(T_targets: np.ndarray, q_seed: np.ndarray, *, horizon_bucket: int,
                config: "PlannerConfig | None" = None, limits: "RobotLimits | None" = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequential warm-started IK along ``T_targets`` [H,4,4], padded (by repeating the last pose)
    to ``horizon_bucket``. Returns (q [H,7], position errors [H], rotation errors [H])."""
    cfg, scal, q_lo, q_hi = _ik_params(config, limits)
    H = T_targets.shape[0]
    idx = np.concatenate([np.arange(H), np.full(horizon_bucket - H, H - 1)])
    tg = _mat_to_target(np.asarray(T_targets)[idx]).astype(np.float32)
    args = (np.asarray(q_seed, dtype=np.float32), tg, scal, q_lo, q_hi)
    q, pe, re = compiled("ik_sequence", _ik_sequence, args, max_iters=int(cfg.ik_max_iters))(*args)
    return (np.asarray(q)[:H].astype(np.float64), np.asarray(pe)[:H].astype(np.float64),
            np.asarray(re)[:H].astype(np.float64))
