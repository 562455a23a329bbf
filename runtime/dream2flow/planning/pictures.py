"""Pictures of a plan: target vs predicted point paths (3D, plus top and side views) and the
joint trajectories against their limits. Matplotlib's object API (no pyplot state), Agg."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dream2flow.config import RobotLimits
    from dream2flow.types import ObjectFlow, Plan


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def write_plan_png(path: str | Path, plan: "Plan", flow: "ObjectFlow", max_paths: int = 40) -> Path:
    """Target flow paths (grasped part, visible samples) vs the plan's predicted paths, with the
    grasp position: a 3D view, a top view (x-y) and a side view (x-z). Units m, base frame."""
    p = Path(path)
    meta = plan.meta or {}
    ids = np.asarray(meta.get("grasp", {}).get("part_point_ids", []), dtype=int)
    if len(ids) == 0:
        ids = np.arange(flow.num_points)
    sel = ids[np.linspace(0, len(ids) - 1, min(max_paths, len(ids))).astype(int)] if len(ids) else ids
    P = flow.points_base.astype(np.float64)
    V = flow.visible & np.isfinite(P).all(-1)
    pred = plan.predicted_points.astype(np.float64)
    seg = meta.get("segments", {})
    a, b = seg.get("follow_start", 0), seg.get("follow_end", plan.horizon - 1)
    g = np.asarray(meta.get("grasp", {}).get("T_base_grasp", np.eye(4)))[:3, 3]
    fig = _figure(15, 5)
    ax3 = fig.add_subplot(1, 3, 1, projection="3d")
    axt = fig.add_subplot(1, 3, 2)
    axs = fig.add_subplot(1, 3, 3)
    for k, i in enumerate(sel):
        vt = V[:, i]
        tgt = P[vt, i]
        pr = pred[a:b + 1, i]
        lab_t = "target (flow)" if k == 0 else None
        lab_p = "predicted (plan)" if k == 0 else None
        ax3.plot(tgt[:, 0], tgt[:, 1], tgt[:, 2], ".", color="tab:blue", ms=2, label=lab_t)
        ax3.plot(pr[:, 0], pr[:, 1], pr[:, 2], "-", color="tab:orange", lw=1, label=lab_p)
        axt.plot(tgt[:, 0], tgt[:, 1], ".", color="tab:blue", ms=2, label=lab_t)
        axt.plot(pr[:, 0], pr[:, 1], "-", color="tab:orange", lw=1, label=lab_p)
        axs.plot(tgt[:, 0], tgt[:, 2], ".", color="tab:blue", ms=2, label=lab_t)
        axs.plot(pr[:, 0], pr[:, 2], "-", color="tab:orange", lw=1, label=lab_p)
    for ax, (i, j) in ((axt, (0, 1)), (axs, (0, 2))):
        ax.plot([g[i]], [g[j]], "k*", ms=12, label="grasp")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, alpha=0.3)
    ax3.scatter([g[0]], [g[1]], [g[2]], c="k", marker="*", s=80)
    ax3.set_xlabel("x (m)")
    ax3.set_ylabel("y (m)")
    ax3.set_zlabel("z (m)")
    axt.set_xlabel("x (m)")
    axt.set_ylabel("y (m)")
    axt.set_title("top view")
    axs.set_xlabel("x (m)")
    axs.set_ylabel("z (m)")
    axs.set_title("side view")
    axt.legend(loc="best", fontsize=8)
    err = meta.get("task_error_mean_m")
    fig.suptitle(f"{meta.get('method', '?')}: {len(ids)} grasped points"
                 + (f", mean tracking error {err * 100:.2f} cm" if err is not None else ""))
    fig.tight_layout()
    fig.savefig(p)
    return p


def write_joints_png(path: str | Path, plan: "Plan", limits: "RobotLimits | None" = None) -> Path:
    """Joint angles over time (one panel per joint) with position limits and gripper events."""
    from dream2flow.config import load_robot_limits

    lim = limits or load_robot_limits()
    p = Path(path)
    t = np.arange(plan.horizon) * plan.dt_s
    fig = _figure(12, 9)
    events = (plan.meta or {}).get("gripper_events", [])
    for j in range(7):
        ax = fig.add_subplot(4, 2, j + 1)
        ax.plot(t, plan.q[:, j], color="tab:blue")
        ax.axhline(lim.q_min[j], color="tab:red", lw=0.8, ls="--")
        ax.axhline(lim.q_max[j], color="tab:red", lw=0.8, ls="--")
        for e in events:
            ax.axvline(e["index"] * plan.dt_s, color="k" if e["action"] == "close" else "tab:green", lw=0.8, ls=":")
        ax.set_ylabel(f"q{j + 1} (rad)")
        ax.grid(True, alpha=0.3)
    ax = fig.add_subplot(4, 2, 8)
    ax.step(t, plan.gripper, where="post", color="k")
    ax.set_ylabel("gripper (1 closed)")
    ax.set_xlabel("t (s)")
    fig.suptitle(f"joint trajectory: {plan.horizon} steps, dt {plan.dt_s:.3f} s, {plan.duration_s:.1f} s")
    fig.tight_layout()
    fig.savefig(p)
    return p
