"""Classical grasp proposals on a single-view D0 point cloud (antipodal sampling with normals),
for the Panda's parallel gripper, plus the selection rule of the method.

Proposals (``propose_grasps``), deterministic for a seed:
* seeds: points sampled from the object's cloud; normals by PCA, facing the camera;
* candidate frames (TCP: z = approach, y = closing axis, x = y × z) from two sources:
  - antipodal pairs: a second surface point along −normal with an opposing normal
    (closing axis through both), approached perpendicular to it (top-down or along the
    camera ray, projected);
  - thin-axis grasps: approach along −normal, top-down or along the camera ray, closing
    along the local cloud's thinnest / longest direction across the approach (or a diagonal);
    face-on approaches are also tried tilted 30/50/70 degrees downwards (a Panda reaches
    horizontal poses at table height badly), closing across the part's axis only. A single view
    rarely sees both sides of a handle, so pure antipodal pairs are often missing;
* each frame is re-centred on the points between the fingers (and along the finger-width
  axis when the part is short there), and kept only if the part
  fits (width + 2 × clearance ≤ 0.08 m), enough points lie between the fingers, no scene
  point lies in the fingers' or palm's volume swept along the approach from the pre-grasp
  pose, and no part of the hand goes below the table (z = 0): a free-side approach;
* score in [0, 1]: antipodal normal alignment (squared cosine) at the two contacts (0.4), points
  between the fingers (0.2), how deep the part sits in the fingers (0.25), narrowness (0.15);
  times |cos| between the finger-width axis and the seed's local part axis when the part is
  elongated there (PCA within 2.5 cm: close across a bar, not along a diagonal of it).

Selection (``rank_grasps``): nearest the thumb point when the video gives one, otherwise
on the part whose flow moves most (mean motion of flow points near the grasp), score as
the tie-breaker. The planner then takes the first proposal in that order that IK reaches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dream2flow.types import Grasp

if TYPE_CHECKING:
    from dream2flow.planning.config import PlannerConfig
    from dream2flow.types import RGBD

# Panda hand in the TCP frame (m): fingers 0.045 long from the palm to the TCP (fingertips).
FINGER_LEN = 0.045
FINGER_HALF_X = 0.012
FINGER_THICK_Y = 0.022
PALM_HALF_X = 0.035
PALM_HALF_Y = 0.105
PALM_DEPTH = 0.065          # palm/hand body from z = -FINGER_LEN back to -(FINGER_LEN + PALM_DEPTH)
SLAB_HALF_X = 0.010         # closing region (between the finger pads)
SLAB_Z = (-0.040, 0.004)
MIN_POINTS_BETWEEN = 5
MAX_COLLISION_POINTS = 2
TABLE_CLEARANCE_M = 0.01
VOXEL_M = 0.005
SCENE_VOXEL_M = 0.008


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _frame(a: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Rotation [3,3] with z = a, y = y orthogonalised against a; None when degenerate."""
    a = _unit(a)
    y = y - a * float(a @ y)
    ny = np.linalg.norm(y)
    if ny < 0.3:
        return None
    y = y / ny
    x = np.cross(y, a)
    return np.stack([x, y, a], axis=1)


def _gripper_boxes(w_open: float, pre: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(lo, hi) corners in the TCP frame of the fingers and palm swept from the pre-grasp pose."""
    z_f = (-FINGER_LEN - pre, 0.0)
    z_p = (-FINGER_LEN - PALM_DEPTH - pre, -FINGER_LEN)
    half = w_open / 2
    return [
        (np.array([-FINGER_HALF_X, half, z_f[0]]), np.array([FINGER_HALF_X, half + FINGER_THICK_Y, z_f[1]])),
        (np.array([-FINGER_HALF_X, -half - FINGER_THICK_Y, z_f[0]]), np.array([FINGER_HALF_X, -half, z_f[1]])),
        (np.array([-PALM_HALF_X, -PALM_HALF_Y, z_p[0]]), np.array([PALM_HALF_X, PALM_HALF_Y, z_p[1]])),
    ]


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def _evaluate(o: np.ndarray, R: np.ndarray, obj: np.ndarray, obj_n: np.ndarray, scene: np.ndarray,
              scene_tree, cfg: "PlannerConfig", part_axis: np.ndarray | None
              ) -> tuple[np.ndarray, float, float] | None:
    """Re-centre, check and score one candidate. ``part_axis``: the local long axis of an
    elongated part at the seed (None when not elongated). Returns (T_base_grasp, width_open, score) or None."""
    max_w = cfg.gripper_max_width_m
    clear = cfg.grasp_clearance_m
    L = (obj - o) @ R
    in_z = (L[:, 2] >= SLAB_Z[0]) & (L[:, 2] <= SLAB_Z[1])
    slab = (np.abs(L[:, 0]) <= SLAB_HALF_X) & in_z & (np.abs(L[:, 1]) <= 0.06)
    if slab.sum() < MIN_POINTS_BETWEEN:
        return None
    ys = L[slab, 1]
    shift_y = 0.5 * (float(ys.min()) + float(ys.max()))
    # centre along the finger-width axis too when the part is short there (a block, a knob):
    # a grasp across a corner becomes a grasp across the middle
    band = in_z & (np.abs(L[:, 1] - shift_y) <= 0.04) & (np.abs(L[:, 0]) <= 0.09)
    xs = L[band, 0]
    shift_x = 0.0
    if len(xs) and xs.min() > -0.088 and xs.max() < 0.088:
        shift_x = 0.5 * (float(xs.min()) + float(xs.max()))
        L = L - np.array([shift_x, 0.0, 0.0])
        slab = (np.abs(L[:, 0]) <= SLAB_HALF_X) & in_z & (np.abs(L[:, 1]) <= 0.06)
        if slab.sum() < MIN_POINTS_BETWEEN:
            return None
        ys = L[slab, 1]
    y_min, y_max = float(ys.min()), float(ys.max())
    if y_min < -0.058 or y_max > 0.058:
        return None  # the surface continues past the window: wider than the gripper
    width = y_max - y_min + VOXEL_M
    if width + 2 * clear > max_w:
        return None
    w_open = min(max_w, width + 2 * clear)
    shift = 0.5 * (y_min + y_max)
    o = o + R[:, 0] * shift_x + R[:, 1] * shift
    # collisions: scene points inside the swept fingers/palm (pre-filtered by a bounding sphere)
    if scene_tree is not None:
        c = o - R[:, 2] * (0.5 * (FINGER_LEN + PALM_DEPTH + cfg.pregrasp_offset_m))
        r = np.sqrt((0.5 * (FINGER_LEN + PALM_DEPTH + cfg.pregrasp_offset_m)) ** 2 + PALM_HALF_Y ** 2 + PALM_HALF_X ** 2)
        S = (scene[np.array(scene_tree.query_ball_point(c, r + 1e-3), dtype=np.int64)] - o) @ R
    else:
        S = np.zeros((0, 3))
    hits = 0
    for lo, hi in _gripper_boxes(w_open, cfg.pregrasp_offset_m):
        hits += int(np.all((S >= lo) & (S <= hi), axis=1).sum())
        corners_z = (_box_corners(lo, hi) @ R.T + o)[:, 2]
        if corners_z.min() < TABLE_CLEARANCE_M:
            return None
    if hits > MAX_COLLISION_POINTS:
        return None
    # quality
    Ls = L[slab]
    Ls[:, 1] -= shift
    ns = obj_n[slab] @ R  # normals in the TCP frame
    lo_c = Ls[:, 1] <= Ls[:, 1].min() + 0.006
    hi_c = Ls[:, 1] >= Ls[:, 1].max() - 0.006
    # squared cosines: an oblique contact (normal 50 deg off the closing axis) counts ~0.4, not 0.6
    anti = 0.5 * ((np.maximum(0.0, -ns[lo_c, 1]) ** 2).mean() + (np.maximum(0.0, ns[hi_c, 1]) ** 2).mean())
    fill = min(1.0, slab.sum() / 25.0)
    depth = min(1.0, (Ls[:, 2].max() - Ls[:, 2].min()) / 0.03)
    narrow = 1.0 - width / max_w
    # a bar is closed across, not along a diagonal: its long axis should run along the finger-width axis x
    perp = 1.0 if part_axis is None else float(abs(part_axis @ R[:, 0]))
    score = (0.4 * anti + 0.2 * fill + 0.25 * depth + 0.15 * narrow) * perp
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = o
    return T, w_open, float(score)


def propose_grasps(obj_points: np.ndarray, obj_normals: np.ndarray, scene_points: np.ndarray, *,
                   camera_pos: np.ndarray, config: "PlannerConfig | None" = None, seed: int | None = None
                   ) -> list[Grasp]:
    """Scored grasp proposals (best first) on an object cloud [N,3] with normals [N,3] (voxelised),
    checked for collisions against ``scene_points`` [M,3] (everything the camera saw)."""
    from scipy.spatial import cKDTree

    from dream2flow.planning.config import PlannerConfig

    cfg = config or PlannerConfig()
    rng = np.random.default_rng(cfg.seed if seed is None else seed)
    n = len(obj_points)
    if n < MIN_POINTS_BETWEEN:
        return []
    obj_tree = cKDTree(obj_points)
    scene_tree = cKDTree(scene_points) if len(scene_points) else None
    seeds = np.sort(rng.choice(n, size=min(cfg.grasp_seeds, n), replace=False))
    down = np.array([0.0, 0.0, -1.0])
    out: list[tuple[float, int, Grasp]] = []
    counter = 0
    for i in seeds:
        p, nrm = obj_points[i], obj_normals[i]
        ray = _unit(p - camera_pos)
        obj_idx = np.array(obj_tree.query_ball_point(p, 0.07), dtype=np.int64)
        obj_nb, obj_nb_n = obj_points[obj_idx], obj_normals[obj_idx]
        frames: list[tuple[np.ndarray, np.ndarray]] = []  # (origin, R)
        # the local part axis (a handle bar, a block's edge): long axis of the points within 2.5 cm
        dnb = np.linalg.norm(obj_nb - p, axis=1)
        loc = obj_nb[dnb <= 0.025]
        part_axis = None
        if len(loc) >= 5:
            ev, evec = np.linalg.eigh((loc - loc.mean(0)).T @ (loc - loc.mean(0)))
            if ev[2] > 3.0 * max(ev[1], 1e-12):
                part_axis = evec[:, 2]
        # thin-axis candidates
        near = dnb <= 0.03
        approaches = []
        # face-on (−normal), top-down, camera ray; and face-on tilted 30/50/70 deg down (a Panda
        # reaches horizontal poses at table height badly: a low handle is taken from above-front)
        tilts = [_unit(np.cos(np.radians(t)) * _unit(-nrm * np.array([1.0, 1.0, 0.0])) + np.sin(np.radians(t)) * down)
                 for t in (30.0, 50.0, 70.0)] if abs(nrm[2]) < 0.7 else []
        tilted = []
        for a, is_tilt in [(-nrm, False), (down, False), (ray, False)] + [(t, True) for t in tilts]:
            a = _unit(a)
            if a[2] > 0.5 or any(float(a @ b) > 0.95 for b in approaches):
                continue
            approaches.append(a)
            tilted.append(is_tilt)
        for a, is_tilt in zip(approaches, tilted):
            u = _frame(a, np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0]))
            # the part's cross-section at the fingers' depth (not the surface behind a handle)
            close = near & (np.abs((obj_nb - p) @ a) <= 0.015)
            local = obj_nb[close] - obj_nb[close].mean(0) if close.any() else np.zeros((0, 3))
            if u is None or len(local) < 3:
                continue
            pu = local @ u[:, :2]  # coordinates in the plane across the approach
            _, vecs = np.linalg.eigh(pu.T @ pu)
            e_thin, e_long = vecs[:, 0], vecs[:, 1]
            diag = (_unit(e_thin + e_long), _unit(e_thin - e_long))
            axes = [u[:, :2] @ e for e in (e_thin, e_long) + diag]  # thinnest, longest, the diagonals
            if part_axis is not None:
                axes.insert(0, np.cross(part_axis, a))  # across the part's axis
            if is_tilt:
                axes = axes[:1]
            for y_ax in axes:
                R = _frame(a, y_ax)
                if R is None:
                    continue
                for d in (0.012, 0.025):
                    frames.append((p + a * d, R))
        # antipodal candidates: an opposing surface along -normal
        vec = obj_nb - p
        dist = np.linalg.norm(vec, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosang = (vec @ -nrm) / dist
        opp = (dist > 0.004) & (dist < cfg.gripper_max_width_m - 2 * cfg.grasp_clearance_m) & (cosang > np.cos(np.radians(15))) \
            & ((obj_nb_n @ nrm) < -0.8)
        if opp.any():
            j = np.flatnonzero(opp)[np.argmin(dist[opp])]
            q = obj_nb[j]
            y = _unit(q - p)
            c = 0.5 * (p + q)
            for a in (down, ray):
                R = _frame(a - y * float(a @ y), y)
                if R is None or R[2, 2] > 0.5:
                    continue
                for d in (0.0, 0.01):
                    frames.append((c + R[:, 2] * d, R))
        for o, R in frames:
            res = _evaluate(o, R, obj_nb, obj_nb_n, scene_points, scene_tree, cfg, part_axis)
            if res is not None:
                T, w, s = res
                out.append((s, counter, Grasp(T_base_grasp=T, width_m=w, score=s)))
                counter += 1
    out.sort(key=lambda e: (-e[0], e[1]))
    return [g for _, _, g in out]


def clouds_from_rgbd(rgbd: "RGBD", mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(object points, object normals, scene points, camera centre) from D0 and an object mask:
    voxelised; the scene cloud (all valid depth near the object) is what collisions are checked against."""
    from dream2flow.planning.cloud import backproject, estimate_normals, voxel_downsample

    cam_pos = rgbd.camera.T_base_cam[:3, 3].copy()
    obj, _ = backproject(rgbd, mask)
    obj, _ = voxel_downsample(obj, VOXEL_M)
    normals = estimate_normals(obj, cam_pos)
    scene, _ = backproject(rgbd, None)
    if len(obj):
        c = obj.mean(0)
        scene = scene[np.linalg.norm(scene - c, axis=1) < 0.6]
    scene, _ = voxel_downsample(scene, SCENE_VOXEL_M)
    return obj, normals, scene, cam_pos


class AntipodalGraspProposer:
    """``GraspProposer(rgbd, mask) -> [Grasp]`` (DESIGN.md): the classical antipodal sampler
    above, named as such (not a learned grasp model)."""

    name = "classical-antipodal"

    def __init__(self, config: "PlannerConfig | None" = None) -> None:
        self.config = config

    def __call__(self, rgbd: "RGBD", mask: np.ndarray) -> list[Grasp]:
        obj, normals, scene, cam = clouds_from_rgbd(rgbd, np.asarray(mask, dtype=bool))
        return propose_grasps(obj, normals, scene, camera_pos=cam, config=self.config)


def rank_grasps(grasps: list[Grasp], flow_points0: np.ndarray, motion: np.ndarray, *,
                thumb_point: np.ndarray | None = None, radius_m: float = 0.05) -> list[int]:
    """Order in which to try ``grasps``: nearest ``thumb_point`` [3] when given, else the
    largest mean flow motion (``motion`` [n] m, points ``flow_points0`` [n,3]) within ``radius_m``
    of the grasp, normalised, + 0.5 × score. Stable and deterministic."""
    if not grasps:
        return []
    centres = np.array([g.T_base_grasp[:3, 3] for g in grasps])
    scores = np.array([g.score for g in grasps])
    if thumb_point is not None:
        # 6 cm of distance ≙ one unit of score: near the thumb, but a clean grasp over a diagonal one
        key = np.linalg.norm(centres - thumb_point[None], axis=1) - 0.06 * scores
        return [int(i) for i in np.argsort(key, kind="stable")]
    ok = np.isfinite(flow_points0).all(1)
    d = np.linalg.norm(centres[:, None, :] - np.where(ok[:, None], flow_points0, 1e9)[None], axis=2)
    near = d <= radius_m
    m = np.where(near, motion[None], 0.0).sum(1) / np.maximum(near.sum(1), 1)
    mn = m / max(float(m.max()), 1e-9)
    key = -(mn + 0.5 * scores)
    return [int(i) for i in np.argsort(key, kind="stable")]
