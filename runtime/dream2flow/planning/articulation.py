"""Articulation models fitted to a part's rigid motion: revolute (a hinge) or prismatic (a slide).

Why: a part of furniture moves with one degree of freedom, and a generated video gets that
wrong in two ways the rigid per-frame fit cannot repair — frames where a hand hides the part
(too few tracks to fit a pose, so the motion "stops" there) and morphing (the part stretches,
so a per-frame rigid fit drifts off the hinge's circle and a stiff arm fights the hinge). One
joint axis and one joint value per frame, fitted to the frames the video shows well, gives both
the missing frames (``complete_motion``: the joint value interpolated across a gap, flagged as
completed) and a path the real joint can follow (``Articulation.transforms``: the motion
projected onto the joint).

Fits (NumPy float64, deterministic; ``T`` [T,4,4] maps the part's frame-0 pose to frame t, as
``rigid.rigid_track`` returns it; ``w`` [T] >= 0 are per-frame weights, 0 = not used):

* revolute: axis direction = principal direction of the frames' rotation vectors; angle per
  frame = the rotation about that axis closest to the frame's rotation; a point on the axis by
  linear least squares on the part's centroid motion; then, with the axis fixed, each frame's
  angle again by a planar Procrustes fit of the part's points (two rounds);
* prismatic: direction = principal direction of the part's centroid displacements; the
  displacement per frame = the centroid's displacement along it.

The model whose points stay closest to the rigid fit's points (mean distance over the weighted
frames) wins; it is accepted only within ``max_residual`` (a slide) or ``max_residual_revolute``
(a hinge) of the motion it explains. A hinge may miss by more: a part turning tens of degrees
about one fixed axis is hardly anything but a hinge, and a morphing video bends its points off
the rigid fit by ~10 % of the motion (measured: oven seeds 9201/9202, 0.09-0.10), while a free
pick-and-place misses a hinge or a slide by 20-28 % (bread seeds 9200-9202) and a lifted arc a
slide by 10 % (tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dream2flow.planning import rigid

KINDS = ("revolute", "prismatic")
MIN_REVOLUTE_ANGLE_RAD = float(np.deg2rad(4.0))  # less turning than this: no hinge can be located


@dataclass(frozen=True)
class Articulation:
    """A one-degree-of-freedom joint in the base frame. ``kind``: "revolute" | "prismatic";
    ``axis`` [3] unit; ``origin`` [3] a point on the hinge (revolute; the part's centroid for a
    slide); ``q`` [T] the joint value per frame (rad | m, q[0] = 0 by construction for frame 0's
    pose being the reference); ``residual_m`` mean distance between the model's and the rigid
    fit's part points over the fitted frames; ``motion_m`` the largest mean displacement of the
    part over those frames."""

    kind: str
    axis: np.ndarray
    origin: np.ndarray
    q: np.ndarray
    residual_m: float
    motion_m: float
    meta: dict[str, Any] = field(default_factory=dict)

    def transforms(self, q: np.ndarray | None = None) -> np.ndarray:
        """[..., 4, 4] rigid motions (frame 0 -> joint value ``q``; default the fitted ``self.q``)."""
        q = self.q if q is None else np.asarray(q, dtype=np.float64)
        if self.kind == "revolute":
            return revolute_transforms(self.axis, self.origin, q)
        return prismatic_transforms(self.axis, q)

    def to_dict(self) -> dict[str, Any]:
        unit = "rad" if self.kind == "revolute" else "m"
        return {"kind": self.kind, "axis": [round(float(x), 6) for x in self.axis],
                "origin": [round(float(x), 6) for x in self.origin],
                f"range_{unit}": [round(float(np.min(self.q)), 6), round(float(np.max(self.q)), 6)],
                "residual_m": round(float(self.residual_m), 6), "motion_m": round(float(self.motion_m), 6), **self.meta}


def _skew(u: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])


def axis_angle_matrices(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotations by ``angle`` [...] (rad) about the unit ``axis`` [3] (Rodrigues)."""
    a = np.asarray(angle, dtype=np.float64)[..., None, None]
    K = _skew(np.asarray(axis, dtype=np.float64))
    return np.eye(3) + np.sin(a) * K + (1.0 - np.cos(a)) * (K @ K)


def revolute_transforms(axis: np.ndarray, origin: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """[..., 4, 4]: rotate by ``angle`` about the line through ``origin`` along ``axis``."""
    R = axis_angle_matrices(axis, angle)
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = origin - R @ np.asarray(origin, dtype=np.float64)
    T[..., 3, 3] = 1.0
    return T


def prismatic_transforms(axis: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """[..., 4, 4]: translate by ``disp`` [...] (m) along ``axis``."""
    d = np.asarray(disp, dtype=np.float64)
    T = np.zeros(d.shape + (4, 4))
    T[..., :3, :3] = np.eye(3)
    T[..., :3, 3] = d[..., None] * np.asarray(axis, dtype=np.float64)
    T[..., 3, 3] = 1.0
    return T


def _principal(vectors: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Unit direction maximising sum_t w_t (v_t . u)^2; its sign makes the weighted sum of
    projections non-negative (the motion's own direction)."""
    M = (vectors * w[:, None]).T @ vectors
    _, vecs = np.linalg.eigh(M)
    u = vecs[:, -1]
    if float(np.sum(w * (vectors @ u))) < 0:
        u = -u
    return u / np.linalg.norm(u)


def _angle_about(R: np.ndarray, u: np.ndarray) -> np.ndarray:
    """[T] angle of the rotation about ``u`` closest (Frobenius) to each R [T,3,3]."""
    K = _skew(u)
    a = np.einsum("tij,ij->t", R, K)          # trace(R^T K)
    b = np.einsum("tij,ij->t", R, K @ K)      # trace(R^T K^2)
    return np.arctan2(a, -b)


def _planar_angles(u: np.ndarray, c: np.ndarray, X0: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """[T] rotation about the line (u, c) that best maps X0 [k,3] onto Y [T,k,3] (planar Procrustes)."""
    P = np.eye(3) - np.outer(u, u)
    a = (X0 - c) @ P                            # [k,3]
    b = (Y - c) @ P                             # [T,k,3]
    cr = np.cross(np.broadcast_to(a, b.shape), b) @ u      # [T,k]
    dot = np.einsum("kj,tkj->tk", a, b)
    return np.arctan2(cr.sum(1), dot.sum(1))


def _residual(Tm: np.ndarray, X0: np.ndarray, Y: np.ndarray, w: np.ndarray) -> float:
    d = np.linalg.norm(rigid.apply(Tm, X0) - Y, axis=-1).mean(1)  # [T]
    return float(np.sum(w * d) / max(np.sum(w), 1e-12))


def fit_revolute(T: np.ndarray, X0: np.ndarray, w: np.ndarray, rounds: int = 2) -> Articulation | None:
    """Revolute joint for the motion ``T`` [T,4,4] of points ``X0`` [k,3], fitted on frames with
    ``w`` [T] > 0; None when the part turns less than ``MIN_REVOLUTE_ANGLE_RAD``."""
    from scipy.spatial.transform import Rotation

    T = np.asarray(T, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    X0 = np.asarray(X0, dtype=np.float64)
    Y = rigid.apply(T, X0)                                      # [T,k,3] the rigid fit's points
    rv = Rotation.from_matrix(T[:, :3, :3]).as_rotvec()         # [T,3]
    if float(np.max(np.linalg.norm(rv, axis=1)[w > 0], initial=0.0)) < MIN_REVOLUTE_ANGLE_RAD:
        return None
    u = _principal(rv, w)
    theta = _angle_about(T[:, :3, :3], u)
    centroid = X0.mean(0)
    c = centroid
    for _ in range(max(1, rounds)):
        R = axis_angle_matrices(u, theta)                       # [T,3,3]
        A = np.eye(3)[None] - R                                 # (I - R) c = mean(Y) - R mean(X0)
        b = Y.mean(1) - R @ centroid
        lhs = np.einsum("t,tji,tjk->ik", w, A, A) + np.sum(w) * 1e-3 * np.outer(u, u)
        rhs = np.einsum("t,tji,tj->i", w, A, b) + np.sum(w) * 1e-3 * u * float(u @ centroid)
        c = np.linalg.solve(lhs, rhs)
        theta = _planar_angles(u, c, X0, Y)
    theta = theta - theta[0]
    if float(np.sum(w * theta)) < 0:  # the motion turns about -u: flip so that angles grow
        u, theta = -u, -theta
    c = c - u * float(u @ (c - centroid))  # the axis point nearest the part's centroid
    Tm = revolute_transforms(u, c, theta)
    motion = float(np.max((np.linalg.norm(Y - X0[None], axis=-1).mean(1))[w > 0], initial=0.0))
    return Articulation("revolute", u, c, theta, _residual(Tm, X0, Y, w), motion)


def fit_prismatic(T: np.ndarray, X0: np.ndarray, w: np.ndarray) -> Articulation | None:
    """Prismatic joint for the motion ``T`` of points ``X0``; None when the part does not move."""
    T = np.asarray(T, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    X0 = np.asarray(X0, dtype=np.float64)
    Y = rigid.apply(T, X0)
    disp = Y.mean(1) - X0.mean(0)                               # [T,3] centroid displacement
    if not np.any(np.linalg.norm(disp, axis=1)[w > 0] > 1e-6):
        return None
    u = _principal(disp, w)
    d = disp @ u
    d = d - d[0]
    Tm = prismatic_transforms(u, d)
    motion = float(np.max((np.linalg.norm(Y - X0[None], axis=-1).mean(1))[w > 0], initial=0.0))
    return Articulation("prismatic", u, X0.mean(0), d, _residual(Tm, X0, Y, w), motion)


def fit_articulation(T: np.ndarray, X0: np.ndarray, w: np.ndarray, *, max_residual: float = 0.08,
                     max_residual_revolute: float = 0.15, min_motion_m: float = 0.01) -> Articulation | None:
    """The better of the revolute and prismatic fits (smaller residual), or None when the part
    moves less than ``min_motion_m`` or neither model explains the motion: residual above
    ``max_residual`` (``max_residual_revolute`` for a hinge) x the motion (e.g. a free
    pick-and-place)."""
    cands = [a for a in (fit_revolute(T, X0, w), fit_prismatic(T, X0, w)) if a is not None]
    if not cands:
        return None
    best = min(cands, key=lambda a: a.residual_m)
    limit = max_residual_revolute if best.kind == "revolute" else max_residual
    if best.motion_m < min_motion_m or best.residual_m > limit * best.motion_m:
        return None
    others = {a.kind: round(a.residual_m, 6) for a in cands}
    return Articulation(best.kind, best.axis, best.origin, best.q, best.residual_m, best.motion_m,
                        meta={"residual_by_kind_m": others})


@dataclass
class Completion:
    """``T`` [T,4,4] the completed motion; ``completed`` [T] bool frames whose pose was filled in
    (never observed well enough); ``model``: "revolute" | "prismatic" (``articulation`` fitted),
    "rigid" (no joint explains the part: its rigid motion interpolated) or None (nothing done);
    ``q`` [T] the joint value per frame (joints only)."""

    T: np.ndarray
    completed: np.ndarray
    articulation: Articulation | None
    q: np.ndarray | None = None
    model: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"completed_frames": [int(t) for t in np.flatnonzero(self.completed)], "completion_model": self.model,
                "articulation": None if self.articulation is None else self.articulation.to_dict()}


def reliable_frames(counts: np.ndarray, *, min_points: int = 4, min_fraction: float = 0.3) -> np.ndarray:
    """[T] bool: frames where at least ``min_points`` and ``min_fraction`` of the part's usual
    (median over frames that see any) number of points are visible — enough for a pose."""
    counts = np.asarray(counts, dtype=np.float64)
    seen = counts[counts > 0]
    usual = float(np.median(seen)) if seen.size else 0.0
    return counts >= max(float(min_points), min_fraction * usual)


def _interpolate(t_ok: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """[n, ...] ``values`` [len(t_ok), ...] known at frames ``t_ok``: monotone cubic (PCHIP) between
    them, held before the first and after the last (nothing is invented beyond what was seen)."""
    from scipy.interpolate import PchipInterpolator

    t = np.arange(n)
    out = np.empty((n,) + values.shape[1:])
    out[t <= t_ok[0]] = values[0]
    out[t >= t_ok[-1]] = values[-1]
    inside = (t > t_ok[0]) & (t < t_ok[-1])
    if inside.any():
        out[inside] = PchipInterpolator(t_ok, values, axis=0)(t[inside])
    return out


def _rigid_interpolation(T: np.ndarray, t_ok: np.ndarray) -> np.ndarray:
    """[T,4,4]: rotations slerped and translations PCHIP-interpolated between the frames ``t_ok``."""
    from scipy.spatial.transform import Rotation, Slerp

    n = len(T)
    out = np.repeat(np.eye(4)[None], n, axis=0)
    t = np.clip(np.arange(n), t_ok[0], t_ok[-1]).astype(np.float64)
    out[:, :3, :3] = Slerp(t_ok.astype(np.float64), Rotation.from_matrix(T[t_ok, :3, :3]))(t).as_matrix()
    out[:, :3, 3] = _interpolate(t_ok, T[t_ok, :3, 3], n)
    return out


def complete_motion(T: np.ndarray, X0: np.ndarray, reliable: np.ndarray, **fit_kw: Any) -> Completion:
    """Fill the part's unreliable frames (see the module doc).

    ``T`` [T,4,4] per-frame rigid motion (frames with too few points hold a guess);
    ``X0`` [k,3] the part's frame-0 points; ``reliable`` [T] bool (``reliable_frames``). With a
    joint that explains the reliable frames (``fit_articulation``), its value is interpolated
    across each gap (monotone cubic, PCHIP) and the pose follows from the joint; without one, the
    rigid motion itself is interpolated (slerp + PCHIP). Either way the value is held after the
    last reliable frame (nothing is invented beyond what the video showed) and the filled frames
    are flagged ``completed``. Returns the input unchanged (``model`` None) when nothing is
    missing or fewer than 3 frames are reliable."""
    T = np.asarray(T, dtype=np.float64)
    reliable = np.asarray(reliable, dtype=bool)
    n = len(T)
    if reliable.all() or reliable.sum() < 3:
        return Completion(T.copy(), np.zeros(n, bool), None)
    t_ok = np.flatnonzero(reliable)
    completed = ~reliable
    out = T.copy()
    art = fit_articulation(T, X0, reliable.astype(np.float64), **fit_kw)
    if art is None:
        out[completed] = _rigid_interpolation(T, t_ok)[completed]
        return Completion(out, completed, None, None, "rigid")
    q = _interpolate(t_ok, art.q[t_ok], n)
    out[completed] = art.transforms(q[completed])
    return Completion(out, completed, art, q, art.kind)
