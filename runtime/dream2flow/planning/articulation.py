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

A hinge is located better from the whole object than from the grasped part
(``fit_object_hinge``): every moving track of the object, turning about one axis, with a change
of the part's size about that axis allowed in each frame (``spiral_fit``: a morphing video grows
or shrinks the panel as it swings; a rigid fit reads that as a translation and moves the hinge by
centimetres, and a few centimetres of handle alone cannot pin an axis down at all). Measured on
the morphing oven/door flows (seeds 9200-9209, ``bench/results/issue18/hinge_offsets.py``): the
hinge 0.07-1.2 cm from the true one, axis within 2.7 deg (the part-local fit 0.8-33 cm, median
7.9 cm, axis tilted up to 83 deg, accepted on 12 of 20). ``flowprep.part_targets`` uses it when it
explains the grasped part, the part-local fit below otherwise (a slide, a free motion).

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


def _plane_basis(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (e1, e2) spanning the plane normal to ``u``, with e1 x e2 = u."""
    e1 = np.cross(u, [1.0, 0.0, 0.0])
    if np.linalg.norm(e1) < 0.3:
        e1 = np.cross(u, [0.0, 1.0, 0.0])
    e1 = e1 / np.linalg.norm(e1)
    return e1, np.cross(u, e1)


def spiral_fit(u: np.ndarray, X0: np.ndarray, P: np.ndarray, W: np.ndarray, *, iters: int = 12,
               delta_m: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The common centre of per-frame spiral similarities in the plane normal to ``u``.

    In that plane (complex coordinates z), each frame maps the points as z_t = c + a_t (z_0 - c):
    a turn by arg(a_t) about the centre ``c`` combined with a change of size |a_t| about it. A
    rigid turn about a hinge is the case |a_t| = 1; a video that changes the part's size as it
    swings (morphing) gives |a_t| != 1 about the same centre, which a rigid fit instead reads as
    a translation, moving the hinge (measured on the morphing oven/door flows: 1-3.4 cm with the
    object's moving tracks, this fit 0.07-1.2 cm). Alternating weighted least squares (a_t given c in closed form, then c given all
    a_t), Huber-reweighted (``delta_m``) so a few wrong tracks do not drag it.

    ``X0`` [k,3] frame-0 positions, ``P`` [T,k,3] tracks, ``W`` [T,k] >= 0 weights (0 = unused;
    a frame needs 3 weighted points). Returns (c [3] a point of the centre line, a [T] complex
    (NaN in unusable frames), r [T,k] in-plane distance of each track to the model (m))."""
    e1, e2 = _plane_basis(np.asarray(u, dtype=np.float64))
    X0 = np.asarray(X0, dtype=np.float64)
    ref = X0.mean(0)
    z0 = (X0 - ref) @ e1 + 1j * ((X0 - ref) @ e2)                                   # [k]
    Pn = np.nan_to_num(np.asarray(P, dtype=np.float64) - ref)
    z = Pn @ e1 + 1j * (Pn @ e2)                                                     # [T,k]
    W0 = np.where(np.isfinite(P).all(-1), np.asarray(W, dtype=np.float64), 0.0)
    ok = (W0 > 0).sum(1) >= 3
    w = W0 * ok[:, None]
    c = 0.0 + 0.0j
    a = np.ones(len(z), complex)
    for it in range(max(2, iters)):
        ws = np.maximum(w.sum(1), 1e-12)
        if it == 0:  # free similarity per frame, then its fixed points combined
            xm = (w * z0).sum(1) / ws
            ym = (w * z).sum(1) / ws
            den = (w * np.abs(z0[None] - xm[:, None]) ** 2).sum(1)
            a = (w * (z - ym[:, None]) * np.conj(z0[None] - xm[:, None])).sum(1) / np.maximum(den, 1e-12)
            b = ym - a * xm
            g = 1.0 - a
            c = (ws * np.conj(g) * b)[ok].sum() / max(float((ws * np.abs(g) ** 2)[ok].sum()), 1e-12)
        else:
            x = z0 - c
            a = (w * (z - c) * np.conj(x)[None]).sum(1) / np.maximum((w * np.abs(x)[None] ** 2).sum(1), 1e-12)
            g = 1.0 - a
            num = (w * np.conj(g)[:, None] * (z - a[:, None] * z0[None])).sum()
            den = float((w * (np.abs(g) ** 2)[:, None]).sum())
            c = num / den if den > 1e-12 else c
        r = np.abs(z - c - a[:, None] * (z0[None] - c))
        w = W0 * ok[:, None] * np.minimum(1.0, delta_m / np.maximum(r, 1e-9))
    a = np.where(ok, a, np.nan + 0j)
    r = np.abs(z - c - a[:, None] * (z0[None] - c))
    return ref + c.real * e1 + c.imag * e2, a, r


def fit_object_hinge(P: np.ndarray, V: np.ndarray, ids: np.ndarray, part_ids: np.ndarray, *,
                     max_residual_revolute: float = 0.15, max_size_change: float = 0.5,
                     max_hinge_gap: float = 0.3, min_motion_m: float = 0.01) -> Articulation | None:
    """A hinge located from every moving track of the object, not only the grasped part's.

    Why: the grasped part is often a few centimetres of handle far from the hinge; a hinge fitted
    to it alone is poorly conditioned (its centre and axis wander by up to 33 cm / 83 deg on the
    morphing oven and door flows, seeds 9200-9209), while the panel's tracks from near the
    hinge to the free edge pin it down. ``ids`` [m] the tracks to use (the object's moving
    points), ``part_ids`` [k] the grasped part's (a subset of interest). Axis: the principal
    direction of the rotation of ``ids``' rigid motion (as ``fit_revolute``); centre and angle per
    frame: ``spiral_fit`` on the raw tracks (a change of size about the hinge is allowed, and is
    dropped from the joint). Frames where too few of ``ids`` are seen (``reliable_frames``) get
    their angle by monotone interpolation, held after the last one.

    Accepted (else None) when the tracks turn at least ``MIN_REVOLUTE_ANGLE_RAD``, move at least
    ``min_motion_m``, the size changes by at most ``max_size_change``, the nearest track is within
    ``max_hinge_gap`` x the farthest one's distance of the hinge line (a part is attached to its
    hinge; a small object carried along an arc is not hinged at the arc's far centre), the moving tracks
    stay within ``max_residual_revolute`` x their motion of the model (in-plane distance plus the
    motion along the axis, which a hinge does not have), and so do the grasped part's tracks
    in the plane (the part turns with them: a second part moving on its own does not; its motion
    along the axis is what a morphing video adds and the projection drops)."""
    from scipy.spatial.transform import Rotation

    P = np.asarray(P, dtype=np.float64)
    Vf = np.asarray(V, dtype=bool) & np.isfinite(P).all(-1)
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 8:
        return None
    T, X0r, _ = rigid.rigid_track(P[:, ids], Vf[:, ids])
    reliable = reliable_frames(Vf[:, ids].sum(1))
    if reliable.sum() < 3:
        return None
    rv = Rotation.from_matrix(T[:, :3, :3]).as_rotvec()
    if float(np.max(np.linalg.norm(rv, axis=1)[reliable], initial=0.0)) < MIN_REVOLUTE_ANGLE_RAD:
        return None
    u = _principal(rv, reliable.astype(np.float64))
    X0 = np.where(Vf[0, ids][:, None], P[0, ids], X0r)                 # frame 0 is the real scene
    keep = np.isfinite(X0).all(1)
    ids, X0 = ids[keep], X0[keep]
    W = (Vf[:, ids] & reliable[:, None]).astype(np.float64)
    c, a, r = spiral_fit(u, X0, P[:, ids], W)
    t_ok = np.flatnonzero(reliable & np.isfinite(a))
    if len(t_ok) < 3:
        return None
    theta = _interpolate(t_ok, np.unwrap(np.angle(a[t_ok])), len(P))
    theta = theta - theta[0]
    if float(np.sum(theta)) < 0:
        u, theta = -u, -theta
    size = np.abs(a[t_ok])
    # residual: in-plane distance to the spiral model and the displacement along the axis
    along = np.abs((np.nan_to_num(P[:, ids]) - X0[None]) @ u)                      # [T,m]
    dist = np.hypot(r, along)
    disp = np.linalg.norm(np.nan_to_num(P[:, ids]) - X0[None], axis=-1)
    wsum = np.maximum(W.sum(1), 1e-12)
    motion = float(np.max(((W * disp).sum(1) / wsum)[t_ok]))
    resid = float((W * dist).sum() / max(W.sum(), 1e-12))
    on_part = np.isin(ids, part_ids)
    Wp = W * on_part[None]
    resid_part = float((Wp * r).sum() / Wp.sum()) if Wp.sum() > 0 else np.inf  # in-plane: does it turn with them?
    motion_part = float(np.max(((Wp * disp).sum(1) / np.maximum(Wp.sum(1), 1e-12))[t_ok])) if Wp.sum() > 0 else 0.0
    # a part is attached to its hinge: the tracks reach from near the hinge line to their far edge
    # (a small object carried on a wide arc is "turned" about a far centre, and is not hinged there)
    radial = np.linalg.norm(np.cross(X0 - c, u), axis=1)
    span = (float(radial.min()), float(radial.max()))
    meta = {"located_by": "object tracks (spiral fit)", "tracks": int(len(ids)), "part_tracks": int(on_part.sum()),
            "radius_range_m": [round(span[0], 4), round(span[1], 4)],
            "size_change_range": [round(float(size.min()), 4), round(float(size.max()), 4)],
            "residual_ratio": round(resid / max(motion, 1e-12), 4),
            "part_residual_ratio": round(resid_part / max(motion_part, 1e-12), 4)}
    if (motion < min_motion_m or np.max(np.abs(size - 1.0)) > max_size_change or span[0] > max_hinge_gap * span[1]
            or resid > max_residual_revolute * motion or resid_part > max_residual_revolute * max(motion_part, 1e-12)):
        return None
    c = c - u * float(u @ (c - X0[on_part].mean(0) if on_part.any() else c - X0.mean(0)))
    return Articulation("revolute", u, c, theta, resid, motion, meta=meta)


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


def complete_from_joint(art: Articulation, T: np.ndarray, reliable: np.ndarray) -> Completion:
    """``complete_motion`` with a joint found elsewhere (``fit_object_hinge``): the part's frames
    that are not ``reliable`` take the joint's pose (flagged completed), the others keep ``T``."""
    T = np.asarray(T, dtype=np.float64)
    reliable = np.asarray(reliable, dtype=bool)
    completed = ~reliable if reliable.sum() >= 3 else np.zeros(len(T), bool)
    out = T.copy()
    out[completed] = art.transforms()[completed]
    return Completion(out, completed, art, np.asarray(art.q, dtype=np.float64), art.kind)


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
