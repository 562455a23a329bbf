"""The numbers a report shows for each stage, taken from what the stage returned.

Why one function: the demo's ``report.json``, eval's JSON and the service's stage events all
record the same facts per stage (points tracked, visible fraction, s*/b*, plan error and
duration, ticks, missed periods, ...); deriving them from the stage's own output in one place
keeps those reports consistent. Everything here is JSON-able (floats rounded for reading).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _r(x: Any, nd: int = 6) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return round(v, nd) if np.isfinite(v) else None


def flow_metrics(result: Any) -> dict[str, Any]:
    """``flow.extract.FlowResult`` -> points, frames, visible fraction, s*, b*, residual."""
    flow, a = result.flow, result.alignment
    vis = np.asarray(flow.visible)
    return {"points": int(vis.shape[1]), "frames": int(vis.shape[0]), "visible_fraction": _r(vis.mean(), 4),
            "visible_fraction_2d": _r(np.asarray(result.visible_2d).mean(), 4),
            "depth_scale": _r(a.scale), "depth_shift_m": _r(a.shift), "depth_residual_m": _r(a.residual_m),
            "depth_inlier_fraction": _r(a.inlier_frac, 4), "mask_pixels": int(np.asarray(result.mask).sum())}


def perceived_flow_metrics(pf: Any) -> dict[str, Any]:
    """``flow.perceived.PerceivedFlow`` -> the flow's metrics plus where the box and thumb came from,
    the detector's score and the first-frame check."""
    m = flow_metrics(pf.result)
    thumb = None if pf.thumb_px is None else np.asarray(pf.thumb_px, np.float64).reshape(-1, 2)
    m.update({"box_source": pf.box_source, "box_score": _r(pf.box_score, 4), "thumb_source": pf.thumb_source,
              "thumb_frames": None if thumb is None else int(np.isfinite(thumb).all(axis=1).sum())})
    if pf.first_frame is not None:
        m.update({"first_frame_shift_px": _r(pf.first_frame.shift_norm_px, 2),
                  "first_frame_similarity": _r(pf.first_frame.similarity, 4)})
    return m


def plan_metrics(plan: Any) -> dict[str, Any]:
    """``types.Plan`` -> waypoints, duration, plan error (predicted vs flow), cost, solver iterations."""
    m = plan.meta or {}
    solver = m.get("solver") or {}
    costs = m.get("costs") or {}
    return {"method": m.get("method"), "waypoints": int(plan.horizon), "dt_s": _r(plan.dt_s),
            "duration_s": _r(plan.duration_s, 3), "plan_error_mean_m": _r(m.get("task_error_mean_m")),
            "plan_error_max_m": _r(m.get("task_error_max_m")), "cost_total": _r(costs.get("total")),
            "solver_iterations": solver.get("iterations") if isinstance(solver, dict) else None,
            "grasp_score": _r((m.get("grasp") or {}).get("score"))}


def execution_metrics(res: Any) -> dict[str, Any]:
    """``control.loop.ExecutionResult`` -> duration, ticks, missed periods, tracking and final error."""
    return {"ok": bool(res.ok), "dry_run": bool(res.dry_run), "backend": res.backend, "rate_hz": _r(res.rate_hz),
            "duration_s": _r(res.duration_s, 3), "ticks": int(res.commands_sent), "missed_periods": int(res.missed_periods),
            "start_segment_s": _r(res.start_segment_s, 3), "max_tracking_error_rad": _r(res.max_tracking_error_rad),
            "final_error_rad": _r(res.final_error_rad), "gripper_events": len(res.gripper_events)}


def stage_metrics(out: Any) -> dict[str, Any]:
    """Metrics of any stage's output (an unknown kind gives ``{}``)."""
    from dream2flow.types import Plan

    if isinstance(out, Plan):
        return plan_metrics(out)
    if hasattr(out, "result") and hasattr(out, "box_source"):  # flow.perceived.PerceivedFlow
        return perceived_flow_metrics(out)
    if hasattr(out, "flow") and hasattr(out, "alignment") and hasattr(out, "visible_2d"):
        return flow_metrics(out)
    if hasattr(out, "commands_sent") and hasattr(out, "missed_periods"):
        return execution_metrics(out)
    if hasattr(out, "success") and hasattr(out, "value") and hasattr(out, "reason"):
        return {"success": bool(out.success), "value": _r(out.value), "reason": str(out.reason)}
    video = getattr(out, "video", None)
    if video is not None and hasattr(video, "frames"):
        return {"frames": int(video.num_frames), "fps": _r(video.fps), "artifacts": getattr(out, "artifacts", None)}
    return {}
