"""Franka Panda kinematics: JAX (jaxlie) for the optimiser, NumPy (float64) for checks.

The chain is Franka's modified-DH table (Craig convention; the team's fixed values, the
same numbers as ``hw/robot/panda.urdf``, which a test checks link by link):
``T_{i-1,i} = RotX(alpha_i) · TransX(a_i) · RotZ(q_i) · TransZ(d_i)``,
flange = link7 · TransZ(0.107), TCP = flange · RotZ(-pi/4) · TransZ(0.1034).
TCP frame: z = approach (out of the fingers), y = the fingers' closing axis.

Why hand-written and not parsed from the URDF at run time: seven constant transforms are
the whole model, the runtime then needs no file to plan, and the URDF test keeps both
honest. ``ik`` (single pose) runs on the same Levenberg–Marquardt solver as the planner.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import jax
    import jaxlie
    from jaxtyping import Float

DH_A = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088)
DH_D = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0)
DH_ALPHA = (0.0, -math.pi / 2, math.pi / 2, math.pi / 2, -math.pi / 2, math.pi / 2, math.pi / 2)
FLANGE_D = 0.107
TCP_YAW = -math.pi / 4
TCP_D = 0.1034


# ----------------------------------------------------------------------------- JAX
def _rot_x(angle: float):
    import jaxlie

    return jaxlie.SO3.from_x_radians(angle)


def fk_links(q: "Float[jax.Array, '7']") -> "jaxlie.SE3":
    """Poses of link1..link7 and the flange (link8) in the base frame: a batched SE3 of 8."""
    import jax.numpy as jnp
    import jaxlie

    T = jaxlie.SE3.identity()
    out = []
    for i in range(7):
        pre = jaxlie.SE3.from_rotation_and_translation(_rot_x(DH_ALPHA[i]), jnp.array([DH_A[i], 0.0, 0.0]))
        joint = jaxlie.SE3.from_rotation_and_translation(jaxlie.SO3.from_z_radians(q[i]), jnp.array([0.0, 0.0, DH_D[i]]))
        T = T @ pre @ joint
        out.append(T.wxyz_xyz)
    out.append((T @ jaxlie.SE3.from_translation(jnp.array([0.0, 0.0, FLANGE_D]))).wxyz_xyz)
    return jaxlie.SE3(jnp.stack(out))


def fk_flange(q: "Float[jax.Array, '7']") -> "jaxlie.SE3":
    """T_base_flange (panda_link8) for joints ``q`` [7] rad."""
    import jax.numpy as jnp
    import jaxlie

    T = jaxlie.SE3.identity()
    for i in range(7):
        pre = jaxlie.SE3.from_rotation_and_translation(_rot_x(DH_ALPHA[i]), jnp.array([DH_A[i], 0.0, 0.0]))
        joint = jaxlie.SE3.from_rotation_and_translation(jaxlie.SO3.from_z_radians(q[i]), jnp.array([0.0, 0.0, DH_D[i]]))
        T = T @ pre @ joint
    return T @ jaxlie.SE3.from_translation(jnp.array([0.0, 0.0, FLANGE_D]))


def T_flange_tcp() -> "jaxlie.SE3":
    import jax.numpy as jnp
    import jaxlie

    return jaxlie.SE3.from_rotation_and_translation(jaxlie.SO3.from_z_radians(TCP_YAW), jnp.array([0.0, 0.0, TCP_D]))


def fk_tcp(q: "Float[jax.Array, '7']") -> "jaxlie.SE3":
    """T_base_tcp (the gripper's tool centre point between the fingertips) for ``q`` [7] rad."""
    return fk_flange(q) @ T_flange_tcp()


def _rot_x_cols(R, alpha: float):
    """R @ RotX(alpha) for the table's exact angles (0, ±pi/2): a column shuffle, no trig."""
    c, s = round(math.cos(alpha)), round(math.sin(alpha))
    if (c, s) == (1, 0):
        return R
    import jax.numpy as jnp

    return jnp.stack([R[:, 0], c * R[:, 1] + s * R[:, 2], -s * R[:, 1] + c * R[:, 2]], axis=1)


def fk_tcp_Rp(q: "Float[jax.Array, '7']", tcp: bool = True):
    """Lean FK for the solver: (R [3,3], p [3]) of the TCP (``tcp=False``: the flange). Plain
    matrix algebra (columns rotated in place, constant angles folded) keeps the compiled
    Jacobian small, which is most of the planner's JIT time."""
    import jax.numpy as jnp

    R = jnp.eye(3, dtype=q.dtype)
    p = jnp.zeros(3, dtype=q.dtype)
    for i in range(7):
        if DH_A[i] != 0.0:
            p = p + DH_A[i] * R[:, 0]
        R = _rot_x_cols(R, DH_ALPHA[i])
        c, s = jnp.cos(q[i]), jnp.sin(q[i])
        R = jnp.stack([c * R[:, 0] + s * R[:, 1], -s * R[:, 0] + c * R[:, 1], R[:, 2]], axis=1)
        if DH_D[i] != 0.0:
            p = p + DH_D[i] * R[:, 2]
    p = p + FLANGE_D * R[:, 2]
    if tcp:
        c, s = math.cos(TCP_YAW), math.sin(TCP_YAW)
        R = jnp.stack([c * R[:, 0] + s * R[:, 1], -s * R[:, 0] + c * R[:, 1], R[:, 2]], axis=1)
        p = p + TCP_D * R[:, 2]
    return R, p


def fk_tcp_jacobian(q: "Float[jax.Array, '7']"):
    """TCP pose and its exact derivative for the solver: (R [3,3], p [3], E [3,4,7]) with
    ``E[:, :3, k] = ∂R/∂q_k`` and ``E[:, 3, k] = ∂p/∂q_k``. Each joint k turns about its axis z_k
    through o_k (both collected during the FK pass), so ∂p/∂q_k = z_k × (p − o_k) and
    ∂R/∂q_k = [z_k]× R: a few cross products instead of forward-mode autodiff through the
    chain (about a third of the operations, which is what a small solve spends its time on)."""
    import jax.numpy as jnp

    R = jnp.eye(3, dtype=q.dtype)
    p = jnp.zeros(3, dtype=q.dtype)
    axes, origins = [], []
    for i in range(7):
        if DH_A[i] != 0.0:
            p = p + DH_A[i] * R[:, 0]
        R = _rot_x_cols(R, DH_ALPHA[i])
        axes.append(R[:, 2])
        origins.append(p)
        c, s = jnp.cos(q[i]), jnp.sin(q[i])
        R = jnp.stack([c * R[:, 0] + s * R[:, 1], -s * R[:, 0] + c * R[:, 1], R[:, 2]], axis=1)
        if DH_D[i] != 0.0:
            p = p + DH_D[i] * R[:, 2]
    p = p + FLANGE_D * R[:, 2]
    c, s = math.cos(TCP_YAW), math.sin(TCP_YAW)
    R = jnp.stack([c * R[:, 0] + s * R[:, 1], -s * R[:, 0] + c * R[:, 1], R[:, 2]], axis=1)
    p = p + TCP_D * R[:, 2]
    Z = jnp.stack(axes)                                     # [7,3]
    dp = jnp.cross(Z, p[None] - jnp.stack(origins))         # [7,3]
    dR = jnp.cross(Z[:, None, :], R.T[None], axis=-1)       # [7,3(col),3]: z_k × R[:, col]
    E = jnp.concatenate([jnp.transpose(dR, (2, 1, 0)), dp.T[:, None, :]], axis=1)   # [3,4,7]
    return R, p, E


# ----------------------------------------------------------------------------- NumPy
def fk_links_np(q: "Float[np.ndarray, '... 7']") -> np.ndarray:
    """NumPy float64 FK: [..., 8, 4, 4] poses of link1..7 and the flange (the control layer's
    NumPy FK, so planner and safety layer agree on every pose)."""
    from dream2flow.control.kinematics import fk_links

    return fk_links(q)[..., :8, :, :]


def T_flange_tcp_np() -> np.ndarray:
    c, s = math.cos(TCP_YAW), math.sin(TCP_YAW)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, TCP_D], [0, 0, 0, 1.0]])


def fk_flange_np(q: np.ndarray) -> np.ndarray:
    """[..., 4, 4] T_base_flange (float64)."""
    return fk_links_np(q)[..., 7, :, :]


def fk_tcp_np(q: np.ndarray) -> np.ndarray:
    """[..., 4, 4] T_base_tcp (float64)."""
    return fk_flange_np(q) @ T_flange_tcp_np()


# ----------------------------------------------------------------------------- IK
def ik(T_base_tcp: "Float[np.ndarray, '4 4']", q_seed: np.ndarray | None = None, *, config=None,
       limits=None) -> tuple[np.ndarray, float, float]:
    """Joints putting the TCP at ``T_base_tcp`` [4,4] (Levenberg–Marquardt from ``q_seed``,
    default the ready pose). Returns ``(q [7] rad, position error m, rotation error rad)``;
    the caller decides reachability from the errors (``config.ik_tol_pos_m``/``ik_tol_rot_rad``)."""
    from dream2flow.planning.solver import ik_batch

    if q_seed is None:
        from dream2flow.config import load_robot_limits

        q_seed = (limits or load_robot_limits()).q_ready
    q, pe, re = ik_batch(np.asarray(T_base_tcp)[None], np.asarray(q_seed, dtype=np.float64)[None], config=config,
                         limits=limits)
    return q[0], float(pe[0]), float(re[0])
