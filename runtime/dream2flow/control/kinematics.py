"""Franka forward kinematics in NumPy (the Panda and the Research 3 share Franka's modified-DH
table, only their limits differ: ``hw/robot/*_limits.toml``), for the safety layer's workspace check.

Why a NumPy copy when ``planning/`` has a JAX one: the control loop checks every command
before it leaves the process (up to 1 kHz) and must not pay JAX dispatch or pull JAX into
the robot-side process. Modified DH (Craig) parameters from Franka's documentation:
``T_{i-1,i} = RotX(alpha_i) · TransX(a_i) · RotZ(q_i) · TransZ(d_i)``;
flange = link7 · Tz(0.107); TCP = flange · Rz(-pi/4) · Tz(0.1034).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jaxtyping import Float

DH_A = np.array([0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088])
DH_D = np.array([0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0])
DH_ALPHA = np.array([0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2])
FLANGE_D = 0.107
TCP_OFFSET = 0.1034
TCP_YAW = -np.pi / 4


def _fixed(a: float, alpha: float) -> np.ndarray:
    """RotX(alpha) · TransX(a): the constant part of a modified-DH link transform."""
    ca, sa = np.cos(alpha), np.sin(alpha)
    return np.array([[1.0, 0.0, 0.0, a], [0.0, ca, -sa, 0.0], [0.0, sa, ca, 0.0], [0.0, 0.0, 0.0, 1.0]])


_A = [_fixed(DH_A[i], DH_ALPHA[i]) for i in range(7)]
_T_FLANGE = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, FLANGE_D], [0, 0, 0, 1.0]])
_T_TCP = np.array([[np.cos(TCP_YAW), -np.sin(TCP_YAW), 0, 0], [np.sin(TCP_YAW), np.cos(TCP_YAW), 0, 0],
                   [0, 0, 1.0, TCP_OFFSET], [0, 0, 0, 1.0]])


def fk_links(q: Float[np.ndarray, "... 7"]) -> np.ndarray:
    """Poses of links 1..7, the flange and the TCP in the base frame: [..., 9, 4, 4] (m).
    ``T_{i-1,i} = RotX(alpha_i)·TransX(a_i) · RotZ(q_i)·TransZ(d_i)``; a single configuration takes
    a scalar fast path (the loop checks one command per tick)."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 7:
        raise ValueError(f"q must be [..., 7], got {list(q.shape)}")
    if q.ndim == 1:
        out = np.empty((9, 4, 4))
        T = np.eye(4)
        for i in range(7):
            c, s = math.cos(q[i]), math.sin(q[i])
            Z = np.array([[c, -s, 0.0, 0.0], [s, c, 0.0, 0.0], [0.0, 0.0, 1.0, DH_D[i]], [0.0, 0.0, 0.0, 1.0]])
            T = T @ _A[i] @ Z
            out[i] = T
        T = T @ _T_FLANGE
        out[7] = T
        out[8] = T @ _T_TCP
        return out
    batch = q.shape[:-1]
    out = np.empty(batch + (9, 4, 4))
    T = np.broadcast_to(np.eye(4), batch + (4, 4)).copy()
    Z = np.zeros(batch + (4, 4))
    Z[..., 2, 2] = 1.0
    Z[..., 3, 3] = 1.0
    for i in range(7):
        c, s = np.cos(q[..., i]), np.sin(q[..., i])
        Z[..., 0, 0] = c
        Z[..., 0, 1] = -s
        Z[..., 1, 0] = s
        Z[..., 1, 1] = c
        Z[..., 2, 3] = DH_D[i]
        T = (T @ _A[i]) @ Z
        out[..., i, :, :] = T
    T = T @ _T_FLANGE
    out[..., 7, :, :] = T
    out[..., 8, :, :] = T @ _T_TCP
    return out


_LINK_CONSTS = [(float(DH_A[i]), float(DH_D[i]), float(np.cos(DH_ALPHA[i])), float(np.sin(DH_ALPHA[i])))
                for i in range(7)]
_C_TCP, _S_TCP = math.cos(TCP_YAW), math.sin(TCP_YAW)


def fk_points(q: Float[np.ndarray, "7"]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(TCP position, flange position) in the base frame (m) for one configuration, in plain
    Python floats: the control loop checks one command per tick and this is ~3x faster than
    ``fk_links`` there (same kinematics; results agree with it to float rounding)."""
    qs = [float(x) for x in q]
    # T as 3 rows of 4 (the last row is 0 0 0 1); start at identity.
    r0 = [1.0, 0.0, 0.0, 0.0]
    r1 = [0.0, 1.0, 0.0, 0.0]
    r2 = [0.0, 0.0, 1.0, 0.0]
    for i in range(7):
        a, d, ca, sa = _LINK_CONSTS[i]
        c, s = math.cos(qs[i]), math.sin(qs[i])
        # M = RotX(alpha)·TransX(a)·RotZ(q)·TransZ(d)
        m00, m01, m03 = c, -s, a
        m10, m11, m12, m13 = s * ca, c * ca, -sa, -sa * d
        m20, m21, m22, m23 = s * sa, c * sa, ca, ca * d
        for r in (r0, r1, r2):
            x0, x1, x2, x3 = r
            r[0] = x0 * m00 + x1 * m10 + x2 * m20
            r[1] = x0 * m01 + x1 * m11 + x2 * m21
            r[2] = x1 * m12 + x2 * m22
            r[3] = x0 * m03 + x1 * m13 + x2 * m23 + x3
    flange = (r0[2] * FLANGE_D + r0[3], r1[2] * FLANGE_D + r1[3], r2[2] * FLANGE_D + r2[3])
    tcp = (flange[0] + r0[2] * TCP_OFFSET, flange[1] + r1[2] * TCP_OFFSET, flange[2] + r2[2] * TCP_OFFSET)
    return tcp, flange


def fk_flange(q: Float[np.ndarray, "... 7"]) -> np.ndarray:
    """T_base_flange [..., 4, 4]."""
    return fk_links(q)[..., 7, :, :]


def fk_tcp(q: Float[np.ndarray, "... 7"]) -> np.ndarray:
    """T_base_tcp [..., 4, 4] (TCP: z = approach, y = finger closing axis)."""
    return fk_links(q)[..., 8, :, :]
