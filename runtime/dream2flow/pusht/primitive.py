"""The push primitive and the contact-making push sampler (shared by data collection and the
planner, so the models are trained on the distribution they are asked about).

A push is a start point ``c`` = (cx, cy) on the table (m), a unit direction ``u`` = (ux, uy)
and a distance ``d`` (m): the finger tips go down at ``c`` at ``PUSH_Z_M``, travel ``d`` along
``u`` with a quintic (min-jerk) profile of peak speed ``PUSH_SPEED_MPS``, and go up again.

Contact-making sampling from observed block points: pick a direction and a block point q;
the pusher starts behind the block's far side along -u, in the band of points laterally within
the finger width of q, ``GAP_M`` clear of it; ``d`` = that gap + a penetration drawn from
``DEPTH_RANGE_M``. So every candidate touches the block (if the observation is right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PUSH_Z_M = 0.022            # TCP height while pushing: finger tips 12.5-31.5 mm above the table, the
                            # fingers' wider upper parts (from TCP + 10 mm) clear of the 30 mm block
HOVER_Z_M = 0.06            # TCP height when moving to / from a push (finger tips 5 cm above the table)
PUSH_SPEED_MPS = 0.08       # peak TCP speed along the push (quasi-static)
MIN_PUSH_S = 0.5
GAP_M = 0.02                # free travel before the finger tips reach the block
HALF_WIDTH_M = 0.017        # lateral band of points a push can hit (finger tips are 1.8 x 2.8 cm: at most
                            # 16.7 mm from the TCP in any direction)
REACH_M = 0.017             # finger-tip extent along the push from the TCP (at most)
DEPTH_RANGE_M = (0.003, 0.06)


@dataclass(frozen=True)
class Pushes:
    """``r`` pushes: ``c`` [r,2] m, ``u`` [r,2] unit, ``d`` [r] m."""

    c: np.ndarray
    u: np.ndarray
    d: np.ndarray

    def __len__(self) -> int:
        return int(self.d.shape[0])

    def params(self) -> np.ndarray:
        """[r,5] float32 (cx, cy, ux, uy, d)."""
        return np.concatenate([self.c, self.u, self.d[:, None]], axis=1).astype(np.float32)

    def take(self, i: int) -> "Pushes":
        return Pushes(self.c[i:i + 1].copy(), self.u[i:i + 1].copy(), self.d[i:i + 1].copy())

    def end(self) -> np.ndarray:
        return self.c + self.u * self.d[:, None]

    def to_list(self) -> list[dict[str, object]]:
        return [{"c": [round(float(x), 5) for x in self.c[i]], "u": [round(float(x), 5) for x in self.u[i]],
                 "d": round(float(self.d[i]), 5)} for i in range(len(self))]


def push_duration_s(d: float) -> float:
    """Duration of the pushing stroke (s): quintic with peak speed PUSH_SPEED_MPS."""
    return max(MIN_PUSH_S, 1.875 * float(d) / PUSH_SPEED_MPS)


def stroke_profile(t: np.ndarray, d: float) -> np.ndarray:
    """Distance travelled (m) at times ``t`` (s) into the stroke (quintic, clamped)."""
    tau = np.clip(np.asarray(t) / push_duration_s(d), 0.0, 1.0)
    return float(d) * tau ** 3 * (10 - 15 * tau + 6 * tau ** 2)


def sample_pushes(points_xy: np.ndarray, r: int, rng: np.random.Generator,
                  depth_range: tuple[float, float] = DEPTH_RANGE_M) -> Pushes:
    """``r`` contact-making pushes against the block seen as ``points_xy`` [n,2] (module docstring)."""
    p = np.asarray(points_xy, dtype=np.float64)
    phi = rng.uniform(0.0, 2 * math.pi, size=r)
    u = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    q = p[rng.integers(0, len(p), size=r)]
    rel = p[None, :, :] - q[:, None, :]                       # [r,n,2]
    along = np.einsum("rnk,rk->rn", rel, u)
    lateral = np.abs(rel[..., 0] * u[:, None, 1] - rel[..., 1] * u[:, None, 0])
    behind = np.where(lateral < HALF_WIDTH_M, -along, -np.inf).max(axis=1)   # far side along -u (>= 0)
    back = np.maximum(behind, 0.0) + REACH_M + GAP_M
    c = q - u * back[:, None]
    pen = rng.uniform(depth_range[0], depth_range[1], size=r)
    return Pushes(c=c, u=u, d=GAP_M + pen)


def contact_travel(points_xy: np.ndarray, pushes: Pushes) -> np.ndarray:
    """[r] distance (m) each push travels before its finger tips reach the nearest point in their
    band (inf when none is in the way): the heuristic model's free travel."""
    p = np.asarray(points_xy, dtype=np.float64)
    rel = p[None] - pushes.c[:, None, :]
    along = np.einsum("rnk,rk->rn", rel, pushes.u)
    lateral = np.abs(rel[..., 0] * pushes.u[:, None, 1] - rel[..., 1] * pushes.u[:, None, 0])
    first = np.where((lateral < HALF_WIDTH_M) & (along > 0), along, np.inf).min(axis=1)
    return first - REACH_M
