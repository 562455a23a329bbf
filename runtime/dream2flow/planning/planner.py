"""``plan_from_flow``: ObjectFlow + D0 -> Plan (grasp, approach, close, follow the flow).

Steps: object cloud from D0 → grasp proposals → ranking (thumb, else most-moving part)
→ the first proposal whose grasp and pre-grasp IK reach → the rigid part and its denoised
points → ``t*`` and the end of the motion → time-warp to the horizon → joint path (the
flow-following optimiser, or a rigid baseline) → tracking check (Unreachable when the arm
cannot follow) → one ``dt_s`` within the velocity/acceleration margins → assembly and the
final limit check. Deterministic: no wall clock or unseeded randomness decides anything
(wall times are reported under ``meta["timing"]`` only).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from dream2flow.errors import Dream2FlowError, InvalidInput, PlanningFailed, Unreachable
from dream2flow.log import get_logger
from dream2flow.nanstats import nanmedian
from dream2flow.planning import assemble, flowprep
from dream2flow.planning.kinematics import fk_tcp_np
from dream2flow.types import Grasp, Plan

if TYPE_CHECKING:
    from dream2flow.config import RobotLimits
    from dream2flow.planning.grasp_prefetch import GraspPrefetch
    from dream2flow.planning.config import PlannerConfig
    from dream2flow.types import RGBD, ObjectFlow

log = get_logger("planning.planner")

METHODS = ("dream2flow", "rigid_avdc", "rigid_rigvid")
ALIASES = {"rigid": "rigid_rigvid"}
SHOULDER = np.array([0.0, 0.0, 0.333])
REACH_M = 0.855 + 0.107 + 0.1034  # shoulder -> TCP at full stretch (Franka datasheet reach 855 mm to the flange)
_IK_BATCH_CANDIDATES = 16          # x 2 finger flips x 2 seeds = 64 = one IK bucket


def normalise_method(method: str) -> str:
    m = ALIASES.get(method, method)
    if m not in METHODS:
        raise InvalidInput(f"unknown planning method {method!r} (use dream2flow, rigid, rigid_avdc or rigid_rigvid)")
    return m


def _rz_pi() -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0])


def _offset_along_approach(T: np.ndarray, dz: float) -> np.ndarray:
    out = T.copy()
    out[:3, 3] = T[:3, 3] + T[:3, 2] * dz
    return out


def _thumb_point(thumb_px: np.ndarray, P: np.ndarray, V: np.ndarray, obj_pts: np.ndarray, rgbd: "RGBD",
                 static_tol: float) -> np.ndarray | None:
    """3D contact point for the thumb: the object cloud point whose D0 projection is nearest
    the thumb pixel at (or just before) the frame where the object starts to move."""
    th = np.asarray(thumb_px, dtype=np.float64)
    if th.ndim == 1:
        th = th[None]
    if th.ndim != 2 or th.shape[1] != 2:
        raise InvalidInput(f"thumb_px must be [T,2] or [2] pixels, got {list(th.shape)}")
    valid = np.isfinite(th).all(1)
    if not valid.any() or len(obj_pts) == 0:
        return None
    motion = flowprep.point_motion(P, V)
    movers = motion >= np.quantile(motion, 0.75)
    X1 = flowprep.first_visible_positions(P, V)
    d = np.linalg.norm(P[:, movers] - X1[None, movers], axis=-1)
    d = np.where(V[:, movers], d, np.nan)
    disp = np.nan_to_num(nanmedian(d, axis=1), nan=0.0)  # per frame: median over the movers
    moving = np.flatnonzero(disp > 2 * static_tol)
    t_contact = int(moving[0]) if len(moving) else 0
    t_contact = min(t_contact, len(th) - 1)
    idx = np.flatnonzero(valid)
    before = idx[idx <= t_contact]
    t_ref = int(before[-1]) if len(before) else int(idx[0])
    px, z = rgbd.camera.project(obj_pts)
    dist = np.linalg.norm(px - th[t_ref][None], axis=1)
    dist[~(z > 0)] = np.inf
    return obj_pts[int(np.argmin(dist))]


def _choose_grasps(grasps: list[Grasp], order: list[int], q0: np.ndarray, limits: "RobotLimits",
                   cfg: "PlannerConfig", max_candidates: int = 3) -> list[dict[str, Any]]:
    """IK-check proposals in ``order`` (16 at a time). Returns the reachable variants of the first
    ``max_candidates`` reachable proposals, in order: each proposal as given and turned 180 deg
    about the approach axis (the fingers swapped: same grasp, other wrist angle), with grasp and
    pre-grasp joints (the better of two IK seeds: q0 and the ready pose turned towards the grasp)."""
    from dream2flow.planning.solver import ik_batch

    found: list[dict[str, Any]] = []
    n_found = 0
    best_err = (np.inf, np.inf)
    checked = order[:cfg.grasp_candidates_checked]
    for s in range(0, len(checked), _IK_BATCH_CANDIDATES):
        chunk = checked[s:s + _IK_BATCH_CANDIDATES]
        Ts, seeds, meta = [], [], []
        for gi in chunk:
            T = grasps[gi].T_base_grasp
            q_a = limits.q_ready.copy()
            q_a[0] = float(np.clip(math.atan2(T[1, 3], T[0, 3]), limits.q_min[0] + 0.1, limits.q_max[0] - 0.1))
            for flip in (False, True):
                Tf = T @ _rz_pi() if flip else T
                for seed in (q0, q_a):
                    Ts.append(Tf)
                    seeds.append(seed)
                    meta.append((gi, flip))
        q, pe, re = ik_batch(np.array(Ts), np.array(seeds), config=cfg, limits=limits)
        ok = (pe <= cfg.ik_tol_pos_m) & (re <= cfg.ik_tol_rot_rad)
        best_err = min(best_err, (float(pe.min()), float(re[np.argmin(pe)])))
        per: dict[tuple[int, bool], tuple[float, int]] = {}
        for r, key in enumerate(meta):
            if ok[r]:
                cost = float(np.sum((q[r] - q0) ** 2))
                if key not in per or cost < per[key][0]:
                    per[key] = (cost, r)
        keys = sorted(per, key=lambda k: (checked.index(k[0]), per[k][0]))
        if not keys:
            continue
        # pre-grasp IK, seeded at each grasp solution
        T_pre = [_offset_along_approach(Ts[per[k][1]], -cfg.pregrasp_offset_m) for k in keys]
        qp, pep, rep = ik_batch(np.array(T_pre), np.array([q[per[k][1]] for k in keys]), config=cfg, limits=limits)
        seen: set[int] = {v["index"] for v in found}
        for c, (gi, flip) in enumerate(keys):
            if pep[c] <= cfg.ik_tol_pos_m and rep[c] <= cfg.ik_tol_rot_rad:
                if gi not in seen:
                    if n_found >= max_candidates:
                        continue
                    n_found += 1
                    seen.add(gi)
                r = per[(gi, flip)][1]
                found.append({"index": gi, "flip": flip, "q_grasp": q[r], "T_grasp": fk_tcp_np(q[r]),
                              "T_target": Ts[r], "q_pre": qp[c], "T_pre": fk_tcp_np(qp[c])})
        if n_found >= max_candidates:
            break
    if not found:
        raise Unreachable(f"none of the {len(checked)} best grasp proposals is reachable "
                          f"(closest IK: {best_err[0] * 1000:.0f} mm, {np.degrees(best_err[1]):.0f} deg off)")
    return found


def plan_from_flow(flow: "ObjectFlow", rgbd: "RGBD", *, q0: np.ndarray | None = None, method: str = "dream2flow",
                   object_mask: np.ndarray | None = None, thumb_px: np.ndarray | None = None,
                   config: "PlannerConfig | None" = None,
                   progress: Callable[[str, float], None] | None = None,
                   prefetch: "GraspPrefetch | None" = None) -> Plan:
    """Plan a grasp and a joint trajectory that makes the grasped part follow ``flow``.

    ``flow``: the object flow in the base frame (frame 0 = the scene of ``rgbd``); ``rgbd``: I0/D0
    with the calibrated camera; ``q0`` [7]: the robot's current joints (default the ready pose);
    ``method``: "dream2flow" | "rigid_avdc" | "rigid_rigvid" ("rigid" = rigid_rigvid);
    ``object_mask`` [H,W] bool (default: ``flow.meta["box"]`` ∩ valid depth ∩ off-table ∩ near the
    flow's points); ``thumb_px`` [T,2] (or [2]) the hand's thumb in the video, NaN where unseen.
    ``prefetch``: grasp proposals already started on D0 and the segmenter's mask (``grasp_prefetch``), used
    when they match ``rgbd``, the mask and the grasp settings of ``config`` (else computed here).
    Raises ``Unreachable`` (object or motion out of reach), ``PlanningFailed`` (no grasp, a limit).
    ``progress(phase, fraction)`` is called as each solver phase starts ("cloud", "grasps",
    "follow grasp N", "assemble"); it may raise to stop planning (a cancel).
    """
    from dream2flow.config import load_robot_limits
    from dream2flow.planning.cloud import default_object_mask
    from dream2flow.planning.config import load_planner_config
    from dream2flow.planning.grasps import clouds_from_rgbd, propose_grasps, rank_grasps

    t_begin = time.perf_counter()
    report = progress or (lambda phase, fraction: None)
    report("cloud", 0.0)
    cfg = config or load_planner_config()
    limits = load_robot_limits()
    method = normalise_method(method)
    q0 = limits.q_ready.copy() if q0 is None else np.asarray(q0, dtype=np.float64).reshape(-1)
    if q0.shape != (7,) or not np.isfinite(q0).all():
        raise InvalidInput(f"q0 must be 7 finite joint angles (rad), got {q0.tolist()}")
    if limits.check_q(q0):
        raise InvalidInput(f"q0 is outside the joint limits: {limits.check_q(q0)[0]}")
    if flow.num_frames < 2:
        raise InvalidInput(f"the flow needs at least 2 frames, got {flow.num_frames}")
    P = flow.points_base.astype(np.float64)
    V = flow.visible & np.isfinite(P).all(-1)
    if V.sum() < 3:
        raise PlanningFailed("the flow has fewer than 3 visible points")

    # --- object cloud and grasp proposals ---------------------------------------------------
    if object_mask is None:
        mask = default_object_mask(flow, rgbd)
    else:
        mask = np.asarray(object_mask, dtype=bool)
        if mask.shape != rgbd.depth_m.shape:
            raise InvalidInput(f"object_mask must be {list(rgbd.depth_m.shape)}, got {list(mask.shape)}")
    t_g = time.perf_counter()
    prefetched = prefetch is not None and prefetch.matches(rgbd, mask, cfg)
    if prefetched:
        try:
            obj, normals, scene, cam, grasps = prefetch.result()
        except Dream2FlowError:
            raise
        except Exception as exc:  # noqa: BLE001 (the worker process died or could not start: compute here)
            log.warning("grasp prefetch failed (%s: %s); proposing grasps here", type(exc).__name__, exc)
            prefetched = False
    if not prefetched:
        obj, normals, scene, cam = clouds_from_rgbd(rgbd, mask)
    if len(obj) < 5:
        raise PlanningFailed(f"the object has only {len(obj)} valid depth points in D0")
    dist = float(np.linalg.norm(np.median(obj, axis=0) - SHOULDER))
    if dist > REACH_M:
        raise Unreachable(f"the object is {dist:.2f} m from the arm's shoulder, beyond the Panda's reach "
                          f"(~{REACH_M:.2f} m to the gripper tip)")
    report("grasps", 0.1)
    if not prefetched:
        grasps = propose_grasps(obj, normals, scene, camera_pos=cam, config=cfg)
    if not grasps:
        raise PlanningFailed(f"no collision-free grasp fits the object (width <= {cfg.gripper_max_width_m:.2f} m, "
                             f"{len(obj)} cloud points)")
    X_first = flowprep.first_visible_positions(P, V)
    motion = flowprep.point_motion(P, V)
    thumb = _thumb_point(thumb_px, P, V, obj, rgbd, cfg.static_tol_m) if thumb_px is not None else None
    order = rank_grasps(grasps, X_first, motion, thumb_point=thumb, radius_m=cfg.part_radius_m)
    choices = _choose_grasps(grasps, order, q0, limits, cfg)
    t_grasp_s = time.perf_counter() - t_g

    # --- follow the flow: try the grasp variants in order, take the first that tracks within
    # follow_accept_m, else the best one (Unreachable when even that exceeds max_task_error_m)
    failures: list[str] = []
    slow: list[str] = []
    best: dict[str, Any] | None = None
    parts: dict[int, Any] = {}
    tried = 0
    t_opt_s = 0.0
    t_s = time.perf_counter()
    for ch in choices:
        tried += 1
        report(f"follow grasp {ch['index']}", min(0.9, 0.2 + 0.1 * (tried - 1)))
        if ch["index"] not in parts:
            part = flowprep.select_part(P, V, ch["T_grasp"][:3, 3], radius_m=cfg.part_radius_m, mode=cfg.part_mode,
                                        tol_m=cfg.part_rigid_tol_m)
            tg = flowprep.part_targets(P, V, part, horizon=cfg.horizon, static_tol_m=cfg.static_tol_m,
                                       mode=cfg.articulation if method == "dream2flow" else "off",
                                       max_residual=cfg.articulation_max_residual,
                                       max_residual_revolute=cfg.articulation_max_residual_revolute,
                                       completed_weight=cfg.completed_weight, part_tol_m=cfg.part_rigid_tol_m)
            parts[ch["index"]] = tg
        tg = parts[ch["index"]]
        part = tg.part
        t_star, t_end, PH, WH, times = tg.t_star, tg.t_end, tg.PH, tg.WH, tg.times
        VH = WH > 0
        if len(part.ids) < 3:
            failures.append(f"grasp {ch['index']}: only {len(part.ids)} flow points near it")
            continue
        if method == "dream2flow":
            from dream2flow.planning.optimizer import follow_flow

            t_o = time.perf_counter()
            res = follow_flow(ch["q_grasp"], part.X0, PH, WH, limits=limits, config=cfg)
            t_opt_s += time.perf_counter() - t_o
            q_follow, err_mean, err_max = res.q, res.task_error_mean_m, res.task_error_max_m
            solver_stats, terms = res.stats, res.terms
            miss, worst = err_mean, res.worst_step_error_m
        else:
            from dream2flow.planning.baselines import fit_object_poses, follow_object_poses
            from dream2flow.planning.optimizer import predicted_points, tracking_error

            T_obj = fit_object_poses(flow, method, t_start=t_star, t_end=t_end, horizon=cfg.horizon,
                                     camera=rgbd.camera)
            q_follow, pe, re = follow_object_poses(T_obj, ch["q_grasp"], limits=limits, config=cfg)
            err_mean, err_max, _ = tracking_error(predicted_points(q_follow, part.X0), PH, VH)
            solver_stats = {"ik_mean_position_error_m": float(pe.mean()), "ik_max_position_error_m": float(pe.max()),
                            "ik_max_rotation_error_rad": float(re.max())}
            terms = {}
            # a baseline is judged on reaching its own rigid poses; its error against the flow is
            # the baseline's (reported) inaccuracy, not unreachability
            miss, worst = float(pe.mean()), float(pe.max())
        name = f"grasp {ch['index']}{' (turned)' if ch['flip'] else ''}"
        need_dt = assemble.required_dt(q_follow, limits, cfg.vel_margin, cfg.acc_margin)
        if need_dt > cfg.dt_max_s:  # e.g. an IK branch jump: this variant cannot be timed
            slow.append(f"{name}: needs a {need_dt:.2f} s step")
            continue
        cand = {"ch": ch, "part": part, "t_star": t_star, "t_end": t_end, "times": times, "q_follow": q_follow,
                "articulation": tg.info,
                "err_mean": err_mean, "err_max": err_max, "solver": solver_stats, "terms": terms, "miss": miss}
        if miss > cfg.max_task_error_m or worst > cfg.max_step_error_m:
            failures.append(f"{name}: misses by {miss * 100:.1f} cm on average, {worst * 100:.1f} cm at the worst step")
            continue
        if best is None or miss < best["miss"]:
            best = cand
        if miss <= cfg.follow_accept_m:
            break
    if best is None and slow and not failures:
        raise PlanningFailed("following the flow breaks the joint velocity/acceleration margins even at the "
                             f"slowest allowed step {cfg.dt_max_s:.2f} s (" + "; ".join(slow + failures) + ")")
    if best is None:
        raise Unreachable("the arm cannot make the grasped part follow the flow ("
                          + "; ".join(failures + slow) + f"; limits {cfg.max_task_error_m * 100:.1f} cm mean, "
                          f"{cfg.max_step_error_m * 100:.1f} cm at any step)")
    ch, part, t_star, t_end, times = best["ch"], best["part"], best["t_star"], best["t_end"], best["times"]
    q_follow, err_mean, err_max = best["q_follow"], best["err_mean"], best["err_max"]
    solver_stats, terms = best["solver"], best["terms"]
    t_solve_s = time.perf_counter() - t_s

    # --- timing and assembly -------------------------------------------------------------------
    report("assemble", 0.9)
    dt = max(cfg.dt_s, assemble.required_dt(q_follow, limits, cfg.vel_margin, cfg.acc_margin))
    dt = float(np.ceil(dt * 1000.0) / 1000.0)  # whole milliseconds (<= dt_max_s: checked per variant)
    seg_move = assemble.joint_segment(q0, ch["q_pre"], dt, limits, cfg)
    seg_app = assemble.cartesian_segment(ch["T_pre"], ch["T_grasp"], ch["q_pre"], ch["q_grasp"], dt, limits, cfg,
                                         "approach")
    segs = [seg_move, seg_app[1:]]
    k_close = len(seg_move) + len(seg_app) - 2
    segs.append(assemble.dwell(ch["q_grasp"], dt, cfg.dwell_s))
    k_follow = k_close + len(segs[-1])
    segs.append(q_follow[1:])
    k_follow_end = k_follow + len(q_follow) - 1
    events = [{"index": k_close, "action": "close"}]
    k_open = None
    retreat = "off"
    if cfg.release_at_end:
        k_open = k_follow_end
        q_end = q_follow[-1]
        segs.append(assemble.dwell(q_end, dt, cfg.dwell_s))
        events.append({"index": k_open, "action": "open"})
        if cfg.retreat_m > 0:
            T_end = fk_tcp_np(q_end)
            T_back = _offset_along_approach(T_end, -cfg.retreat_m)
            from dream2flow.planning.solver import ik_batch

            # the retreat is optional: skipped (and said so in meta) when the arm cannot back off
            # along the approach axis within its limits (e.g. a drawer pulled close to the base)
            qb, peb, reb = ik_batch(T_back[None], q_end[None], config=cfg, limits=limits)
            if peb[0] <= cfg.ik_tol_pos_m and reb[0] <= cfg.ik_tol_rot_rad:
                try:
                    seg_ret = assemble.cartesian_segment(T_end, T_back, q_end, qb[0], dt, limits, cfg, "retreat")
                    assemble.check_limits(seg_ret, dt, limits, cfg.safety_margin_rad)
                    segs.append(seg_ret[1:])
                    retreat = "done"
                except PlanningFailed as exc:  # Unreachable is a PlanningFailed
                    retreat = f"skipped: {exc.message}"
            else:
                retreat = f"skipped: IK cannot back off {cfg.retreat_m * 100:.0f} cm ({peb[0] * 1000:.1f} mm off)"
    q = np.concatenate(segs, axis=0)
    Htot = len(q)
    gripper = np.zeros(Htot, dtype=np.float32)
    gripper[k_close:] = 1.0
    if k_open is not None:
        gripper[k_open:] = 0.0
    assemble.check_limits(q, dt, limits, cfg.safety_margin_rad)
    tcp_z = fk_tcp_np(q)[:, 2, 3]
    if tcp_z.min() < 0.0:
        raise PlanningFailed(f"the gripper would go below the table (TCP z = {tcp_z.min():.3f} m at "
                             f"t={int(np.argmin(tcp_z)) * dt:.2f} s)")

    # --- predicted object points over the whole plan ------------------------------------------------
    from dream2flow.planning.optimizer import predicted_points

    X_now = np.where(V[0][:, None], P[0], X_first)
    X_now = np.nan_to_num(X_now)
    X_now[part.ids] = part.X0
    pred = np.repeat(X_now[None], Htot, axis=0)
    moved = predicted_points(q_follow, part.X0)
    pred[k_follow:k_follow_end + 1, part.ids] = moved
    pred[k_follow_end + 1:, part.ids] = moved[-1]

    grasp = Grasp(T_base_grasp=ch["T_grasp"], width_m=grasps[ch["index"]].width_m,
                  score=grasps[ch["index"]].score, part_point_ids=part.ids.astype(np.int64))
    total_cost = float(sum(terms.values())) if terms else None
    meta = {
        "method": method,
        "grasp": grasp.to_dict(),
        "grasp_proposals": len(grasps),
        "grasp_rank": int(order.index(ch["index"])),
        "grasp_turned": bool(ch["flip"]),
        "grasp_variants_tried": tried,
        "grasp_variants_rejected": failures + slow,
        "grasp_selection": "thumb" if thumb is not None else "motion",
        "thumb_point": None if thumb is None else thumb.tolist(),
        "costs": {**terms, "total": total_cost} if terms else {},
        "solver": solver_stats,
        "task_error_mean_m": err_mean,
        "task_error_max_m": err_max,
        "t_star": int(t_star),
        "t_end": int(t_end),
        "H": int(cfg.horizon),
        "flow_times": [float(x) for x in times],
        "part_point_count": int(len(part.ids)),
        "part_mode": cfg.part_mode,
        "articulation": best["articulation"],
        "segments": {"approach_start": 0, "pregrasp_index": len(seg_move) - 1, "grasp_index": k_close,
                     "follow_start": k_follow, "follow_end": k_follow_end, "release_index": k_open},
        "gripper_events": events,
        "retreat": retreat,
        "limits": assemble.limit_usage(q, dt, limits),
        "q0": q0.tolist(),
        "seed": cfg.seed,
        "timing": {"grasps_s": t_grasp_s, "grasps_prefetched": bool(prefetched), "solve_s": t_solve_s,
                   "optimizer_s": t_opt_s,
                   "total_s": time.perf_counter() - t_begin},
    }
    return _fit_to_control_loop(Plan(q=q, dt_s=dt, gripper=gripper, predicted_points=pred.astype(np.float32),
                                     meta=meta), q0)


_DYNAMIC_LIMITS = ("velocity", "acceleration", "jerk")


def _fit_to_control_loop(plan: Plan, q0: np.ndarray, max_slowdowns: int = 12) -> Plan:
    """Return ``plan``, slowed down (larger ``dt_s``, same waypoints) so that the control loop's own
    pre-flight check passes: its interpolation between waypoints can exceed the finite-difference
    velocity/acceleration the planner checked. The slow-down is computed: the stream's peak
    velocity, acceleration and jerk scale as 1/s, 1/s², 1/s³ with the time scale s (jerk at the
    rest/hold junctions as 1/s²), so s = max(1, u_v, √u_a, √u_j) from their usage u of the limits
    passes up to the sampling grid's few-percent effects (3 % margin); the loop's check stays the
    authority (``max_slowdowns`` more steps of 3 % if it still refuses). A position or workspace violation
    cannot be fixed by time and is a PlanningFailed; so is a plan still too fast after those steps."""
    from dream2flow.control.loop import preflight_usage

    dt0 = float(plan.dt_s)
    checks = 0
    for k in range(max_slowdowns + 2):
        violation, usage = preflight_usage(plan, q0)
        checks += 1
        if violation is None:
            plan.meta["control_preflight"] = {"passed": True, "dt_scale": round(plan.dt_s / dt0, 6), "checks": checks}
            return plan
        if k == max_slowdowns + 1 or usage is None or not any(word in violation for word in _DYNAMIC_LIMITS):
            break
        if k == 0:
            scale = max(1.0, usage["velocity"], math.sqrt(usage["acceleration"]), math.sqrt(usage["jerk"])) * 1.03
        else:
            scale = 1.03
        dt = float(np.ceil(plan.dt_s * scale * 1e6) / 1e6)  # whole microseconds: a readable, stable step
        plan = Plan(q=plan.q, dt_s=dt, gripper=plan.gripper, predicted_points=plan.predicted_points, meta=plan.meta)
    raise PlanningFailed(f"the control loop would refuse this plan: {violation}")
