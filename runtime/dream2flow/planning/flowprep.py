"""From an ``ObjectFlow`` to what the optimiser tracks: per-point motion, the grasped rigid part,
its denoised current points, the start ``t*`` / end of the motion, and the time-warped targets.

* Motion per point: 90th percentile over visible frames of the distance to its first
  visible position (robust to a few bad tracks).
* Part = flow points within ``part_radius_m`` of the grasp (the seed), then, in
  ``rigid_consistent`` mode, every flow point whose track agrees with the seed's per-frame
  rigid motion within ``part_rigid_tol_m`` (mean over its visible frames): this takes the
  whole drawer front or door panel when only its handle was grasped, and leaves out points
  that do not move with it (cabinet, table, a second object).
* Current points: the part's frame-0 positions denoised by the rigid fit (``rigid.rigid_track``).
* ``t*`` (nearest shape): the frame whose part shape is closest to the current one, moved
  forward over the static lead-in (a hand reaching before the object moves) while the part
  stays within ``static_tol_m`` of it. The end is the first frame after which the part no
  longer moves by more than ``static_tol_m``.
* Uniform time-warp of frames [t*, t_end] to H steps: linear interpolation of positions;
  a warped point is visible when both neighbouring frames see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dream2flow.nanstats import nanpercentile
from dream2flow.planning import rigid

if TYPE_CHECKING:
    from dream2flow.planning.articulation import Articulation


@dataclass
class PartMotion:
    ids: np.ndarray            # [k] flow point indices of the grasped part
    X0: np.ndarray             # [k,3] denoised current (frame-0) positions, base frame (m)
    T: np.ndarray              # [T,4,4] per-frame rigid motion of the part (frame 0 -> t)
    residual: np.ndarray       # [k] mean rigid-fit residual per point (m)


def point_motion(P: np.ndarray, V: np.ndarray) -> np.ndarray:
    """[n] robust motion magnitude (m) of each track."""
    P = np.asarray(P, dtype=np.float64)
    V = np.asarray(V, dtype=bool) & np.isfinite(P).all(-1)
    n = P.shape[1]
    first = np.argmax(V, axis=0)
    ref = P[first, np.arange(n)]
    d = np.linalg.norm(P - ref[None], axis=-1)
    d = np.where(V, d, np.nan)
    out = np.zeros(n)
    seen = V.any(0)
    if seen.any():
        out[seen] = nanpercentile(d[:, seen], 90, axis=0)
    return out


def first_visible_positions(P: np.ndarray, V: np.ndarray) -> np.ndarray:
    """[n,3] each track's position in its first visible frame (NaN when never visible)."""
    V = np.asarray(V, dtype=bool) & np.isfinite(P).all(-1)
    first = np.argmax(V, axis=0)
    X = np.asarray(P, dtype=np.float64)[first, np.arange(P.shape[1])]
    return np.where(V.any(0)[:, None], X, np.nan)


def select_part(P: np.ndarray, V: np.ndarray, grasp_pos: np.ndarray, *, radius_m: float, mode: str,
                tol_m: float) -> PartMotion:
    """The rigid part that moves with a grasp at ``grasp_pos`` [3] (see the module doc)."""
    X_first = first_visible_positions(P, V)
    d = np.linalg.norm(X_first - grasp_pos[None], axis=1)
    seed = np.flatnonzero(np.nan_to_num(d, nan=np.inf) <= radius_m)
    if len(seed) < 3:  # grow to the nearest points so that a rigid fit is possible
        order = np.argsort(np.nan_to_num(d, nan=np.inf), kind="stable")
        seed = np.sort(order[:min(8, int(np.isfinite(d).sum()))])
    ids = seed
    if mode == "rigid_consistent" and len(seed) >= 3:
        T, X0s, res_seed = rigid.rigid_track(P[:, seed], V[:, seed])
        # residual of every track under the seed's motion, its frame-0 position fitted by undoing it
        back = rigid.apply(rigid.invert(T), np.asarray(P, dtype=np.float64))  # [T,n,3]
        Vf = np.asarray(V, dtype=bool) & np.isfinite(P).all(-1)
        w = Vf.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            X0_all = np.where(Vf[..., None], back, 0.0).sum(0) / w.sum(0)[:, None]
            err = np.linalg.norm(rigid.apply(T, X0_all) - P, axis=-1)
            res_all = np.where(Vf, err, 0.0).sum(0) / w.sum(0)
        tol = max(tol_m, 2.5 * float(np.nanmedian(res_seed)) if np.isfinite(res_seed).any() else tol_m)
        ok = np.nan_to_num(res_all, nan=np.inf) <= tol
        ids = np.flatnonzero(ok) if ok[seed].sum() >= 3 else seed
    T, X0, res = rigid.rigid_track(P[:, ids], V[:, ids])
    keep = np.isfinite(X0).all(1)
    return PartMotion(ids=ids[keep], X0=X0[keep], T=T, residual=res[keep])


def grow_part(P: np.ndarray, V: np.ndarray, part: PartMotion, *, tol_m: float, rounds: int = 2,
              min_frames: int = 3) -> PartMotion:
    """The part with every track that moves with it in the frames where the part is seen well.

    Why: when a hand passes over the grasped region, its tracks are often lost for good, and
    ``select_part`` (which checks each track against the part's motion over *all* frames, the
    lost frames holding the last pose) rejects the tracks of the same panel that come back after
    the occlusion — the part then "stops" where the hand hid it. Here a track joins when, over
    the frames where both it and the part are reliably seen (``articulation.reliable_frames``,
    at least ``min_frames``), its residual under the part's motion is within the part's
    tolerance; the motion is refitted with the grown set (``rounds`` times), so the part's later
    frames are observed again through the returning tracks; last, a track whose residual over
    all its frames under the final motion exceeds the tolerance leaves (one that agreed before
    the gap and parted after it). Tracks never seen together with the part, static points and a
    hand's tracks (they do not move with it) stay out."""
    from dream2flow.planning import articulation

    P = np.asarray(P, dtype=np.float64)
    Vf = np.asarray(V, dtype=bool) & np.isfinite(P).all(-1)
    ids = np.asarray(part.ids)
    T = part.T
    res_part = part.residual
    for _ in range(max(1, rounds)):
        reliable = articulation.reliable_frames(Vf[:, ids].sum(1))
        W = Vf & reliable[:, None]                                         # [T,n] frames that count
        w = W.astype(np.float64)
        back = rigid.apply(rigid.invert(T), P)
        with np.errstate(invalid="ignore", divide="ignore"):
            X0_all = np.where(W[..., None], back, 0.0).sum(0) / w.sum(0)[:, None]
            err = np.linalg.norm(rigid.apply(T, X0_all) - P, axis=-1)
            res_all = np.where(W, err, 0.0).sum(0) / w.sum(0)
        tol = max(tol_m, 2.5 * float(np.nanmedian(res_part)) if np.isfinite(res_part).any() else tol_m)
        ok = (w.sum(0) >= min_frames) & (np.nan_to_num(res_all, nan=np.inf) <= tol)
        new = np.union1d(ids, np.flatnonzero(ok))
        if len(new) == len(ids):
            break
        ids = new
        T, _, res_part = rigid.rigid_track(P[:, ids], Vf[:, ids])
    if len(ids) == len(part.ids):
        return part
    # a track that agreed only while the part was seen before the gap and parts ways with it
    # after (one a hand dragged along) leaves again: residual over all its frames, final motion
    T, X0, res = rigid.rigid_track(P[:, ids], Vf[:, ids])
    tol = max(tol_m, 2.5 * float(np.nanmedian(part.residual)) if np.isfinite(part.residual).any() else tol_m)
    stay = np.nan_to_num(res, nan=np.inf) <= tol
    if not stay.all():
        ids = ids[stay]
        T, X0, res = rigid.rigid_track(P[:, ids], Vf[:, ids])
    keep = np.isfinite(X0).all(1)
    return PartMotion(ids=ids[keep], X0=X0[keep], T=T, residual=res[keep])


def motion_window(T: np.ndarray, X0: np.ndarray, static_tol_m: float) -> tuple[int, int]:
    """(t*, t_end) from the part's rigid motion ``T`` [T,4,4] and its current points ``X0`` [k,3]."""
    disp = np.linalg.norm(rigid.apply(T, X0) - X0[None], axis=-1).mean(1)  # [T] shape distance to now
    t_star = int(np.argmin(disp))
    base = disp[t_star]
    while t_star + 1 < len(disp) and disp[t_star + 1] <= base + static_tol_m:
        t_star += 1
    final = rigid.apply(T[-1], X0)
    to_end = np.linalg.norm(rigid.apply(T, X0) - final[None], axis=-1).mean(1)
    t_end = len(disp) - 1
    while t_end - 1 > t_star and to_end[t_end - 1] <= static_tol_m:
        t_end -= 1
    if t_end <= t_star:  # nothing moves: keep the whole clip (the plan will hold still)
        t_star, t_end = 0, len(disp) - 1
    return t_star, t_end


def time_warp(P: np.ndarray, V: np.ndarray, t_start: int, t_end: int, H: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniformly resample frames [t_start, t_end] to H steps. Returns (P_H [H,n,3], V_H [H,n],
    flow_times [H] fractional frame indices)."""
    P = np.asarray(P, dtype=np.float64)
    Vf = np.asarray(V, dtype=bool) & np.isfinite(P).all(-1)
    times = np.linspace(float(t_start), float(t_end), H)
    i0 = np.floor(times).astype(int)
    i1 = np.minimum(i0 + 1, P.shape[0] - 1)
    f = (times - i0)[:, None, None]
    Pa, Pb = np.nan_to_num(P[i0]), np.nan_to_num(P[i1])
    PH = (1 - f) * Pa + f * Pb
    exact = np.isclose(times, i0)[:, None]
    VH = np.where(exact, Vf[i0], Vf[i0] & Vf[i1])
    return PH, VH, times


ARTICULATION_MODES = ("off", "complete", "project")
HINGE_TRACK_MIN_MOTION_M = 0.01   # a track moving less than this cannot help locate a hinge
HINGE_TRACK_MIN_FRACTION = 0.1    # ... nor one moving less than this fraction of the grasped part


def object_hinge(P: np.ndarray, V: np.ndarray, part: PartMotion, *,
                 max_residual_revolute: float = 0.15) -> Articulation | None:
    """The hinge the grasped ``part`` turns on, located from every track of the object that moves
    (``articulation.fit_object_hinge``; None when they do not turn about one axis together with the
    part). Tracks that stay put (a cabinet in the object's mask) are left out."""
    from dream2flow.planning import articulation

    motion = point_motion(P, V)
    part_motion = float(np.percentile(motion[part.ids], 90)) if len(part.ids) else 0.0
    moving = motion >= max(HINGE_TRACK_MIN_MOTION_M, HINGE_TRACK_MIN_FRACTION * part_motion)
    ids = np.union1d(np.flatnonzero(moving), part.ids)
    return articulation.fit_object_hinge(P, V, ids, part.ids, max_residual_revolute=max_residual_revolute)



@dataclass
class PartTargets:
    """What the optimiser tracks for one grasped part: ``part`` (grown across occlusions when the
    mode is not ``off``), ``PH`` [H,k,3] targets of its points, ``WH`` [H,k] weights (0 = not
    used), ``times`` [H] fractional frames, ``t_star``/``t_end`` the motion window,
    ``completed_steps`` [H] bool (steps whose frames were completed from the articulation, never
    observed well enough), ``info`` for the plan's meta."""

    part: PartMotion
    PH: np.ndarray
    WH: np.ndarray
    times: np.ndarray
    t_star: int
    t_end: int
    completed_steps: np.ndarray
    info: dict


def _joint_miss(T_joint: np.ndarray, X0: np.ndarray, P: np.ndarray, V: np.ndarray) -> float:
    """Mean distance of the observed tracks ``P`` [T,k,3] (where ``V``) to the part's points moved
    by the joint, over the largest mean observed displacement: how much of what the video shows the
    joint leaves out (a morphing drift: ~0.1; a part of static and swinging points: ~1)."""
    W = np.asarray(V, dtype=bool) & np.isfinite(P).all(-1)
    if not W.any():
        return 0.0
    Pn = np.nan_to_num(np.asarray(P, dtype=np.float64))
    d = np.linalg.norm(rigid.apply(T_joint, X0) - Pn, axis=-1)
    disp = np.linalg.norm(Pn - X0[None], axis=-1)
    n = np.maximum(W.sum(1), 1)
    motion = float(np.max((W * disp).sum(1) / n))
    return float((W * d).sum() / W.sum()) / max(motion, 1e-9)


def part_targets(P: np.ndarray, V: np.ndarray, part: PartMotion, *, horizon: int, static_tol_m: float,
                 mode: str = "off", max_residual: float = 0.08, max_residual_revolute: float = 0.15,
                 completed_weight: float = 1.0, part_tol_m: float = 0.012) -> PartTargets:
    """The part's targets under an articulation ``mode`` (``ARTICULATION_MODES``):

    * ``off``: the part's own tracks, time-warped, weighted by visibility (the flow as observed);
    * ``complete``: when the part is lost in some frames, the part grown across the gap
      (``grow_part``, tolerance ``part_tol_m``),
      its own tracks as in ``off``, plus, in frames too few of the part's points are visible for a
      pose (``articulation.reliable_frames``), the hidden points placed by the joint fitted to
      the other frames (weight ``completed_weight``); the motion window is measured on the
      completed motion, so the arm does not stop where a hand hid the part;
    * ``project``: as ``complete``, and when a joint is fitted, every target is the part's points
      moved by that joint (the flow projected onto its articulation: a morphing video's drift
      off the hinge's circle is dropped).
    The joint: the hinge located from every moving track of the object (``object_hinge``) when it
    explains the grasped part, else one fitted to the part's own rigid motion. Without a joint
    that explains the part's motion (a free pick-and-place), the hidden frames are filled from the
    part's rigid motion interpolated across the gap, and ``project`` is ``complete``."""
    from dream2flow.planning import articulation

    if mode not in ARTICULATION_MODES:
        raise ValueError(f"articulation mode must be one of {ARTICULATION_MODES}, got {mode!r}")
    info: dict = {"mode": mode}
    comp = None
    if mode != "off" and not articulation.reliable_frames(np.asarray(V, dtype=bool)[:, part.ids].sum(1)).all():
        k0 = len(part.ids)  # the part is lost in some frames: let its returning tracks in
        part = grow_part(P, V, part, tol_m=part_tol_m)
        info["part_points_grown"] = int(len(part.ids) - k0)
    Pp = np.asarray(P, dtype=np.float64)[:, part.ids]
    Vp = np.asarray(V, dtype=bool)[:, part.ids] & np.isfinite(Pp).all(-1)
    T_use = part.T
    if mode != "off":
        reliable = articulation.reliable_frames(Vp.sum(1))
        fit_kw = {"max_residual": max_residual, "max_residual_revolute": max_residual_revolute}
        hinge = object_hinge(P, V, part, max_residual_revolute=max_residual_revolute)
        if hinge is not None:
            comp = articulation.complete_from_joint(hinge, part.T, reliable)
        else:
            comp = articulation.complete_motion(part.T, part.X0, reliable, **fit_kw)
        if comp.model is None and mode == "project" and reliable.sum() >= 3:
            art = articulation.fit_articulation(part.T, part.X0, reliable.astype(np.float64), **fit_kw)
            if art is not None:
                comp = articulation.Completion(part.T.copy(), np.zeros(len(part.T), bool), art, art.q, art.kind)
        info.update(comp.summary())
        T_use = comp.T
        if mode == "project" and comp.articulation is not None:
            # a part-local joint is checked against the part's own tracks (the object hinge was, in
            # fit_object_hinge, with the change of size it allows)
            limit = max_residual_revolute if comp.articulation.kind == "revolute" else max_residual
            miss = 0.0
            if "located_by" not in comp.articulation.meta:
                miss = _joint_miss(comp.articulation.transforms(comp.q), part.X0, Pp, Vp & reliable[:, None])
                info["joint_miss_ratio"] = round(miss, 4)
            if miss <= limit:
                T_use = comp.articulation.transforms(comp.q)
                info["projected"] = True
            else:  # the part's own tracks do not move with the joint (e.g. a "part" that holds static
                info["projected"] = False  # and moving points): following the joint would hide that
    t_star, t_end = motion_window(T_use, part.X0, static_tol_m)
    PH, VH, times = time_warp(Pp, Vp, t_star, t_end, horizon)
    WH = VH.astype(np.float64)
    completed_steps = np.zeros(horizon, bool)
    if comp is not None and comp.model is not None:
        model = rigid.apply(T_use, part.X0)                                   # [T,k,3]
        MH, _, _ = time_warp(model, np.ones(model.shape[:2], bool), t_star, t_end, horizon)
        i0 = np.floor(times).astype(int)
        i1 = np.minimum(i0 + 1, len(T_use) - 1)
        completed_steps = comp.completed[i0] | (comp.completed[i1] & ~np.isclose(times, i0))
        if info.get("projected"):
            PH, WH = MH, np.ones_like(WH)
        else:
            fill = completed_steps[:, None] & ~VH
            PH = np.where(fill[..., None], MH, PH)
            WH = np.where(fill, completed_weight, WH)
    info["t_star"], info["t_end"] = int(t_star), int(t_end)
    return PartTargets(part, PH, WH, times, int(t_star), int(t_end), completed_steps, info)
