"""The ground truth of *any* extracted flow on a simulated video, for evaluation only.

The generator's ``gt_flow`` follows its own points; an extracted flow follows the points its
segmenter and sampler chose. Every task object is one rigid body (checked), so the generator's
points give the object's rigid motion per frame (Kabsch), and the truth of an extracted point is
its frame-0 position -- its query pixel back-projected with D0, the robot camera's exact depth --
moved by that motion. A point the pipeline picked off the object (a segmentation error) thus
counts as the error it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.types import CameraModel, ObjectFlow


def rigid_motions(gt_flow: ObjectFlow, max_residual_m: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """(R [T,3,3], t [T,3]) with ``points_base[t] = points_base[0] @ R[t].T + t[t]`` (least squares).
    ``InvalidInput`` when the motion is not rigid (a morphing video) beyond ``max_residual_m``."""
    P = np.asarray(gt_flow.points_base, np.float64)
    T = P.shape[0]
    R = np.zeros((T, 3, 3))
    tr = np.zeros((T, 3))
    a = P[0] - P[0].mean(0)
    for k in range(T):
        b = P[k] - P[k].mean(0)
        U, _, Vt = np.linalg.svd(b.T @ a)
        D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
        R[k] = U @ D @ Vt
        tr[k] = P[k].mean(0) - P[0].mean(0) @ R[k].T
        res = np.abs(P[0] @ R[k].T + tr[k] - P[k]).max()
        if res > max_residual_m:
            raise InvalidInput(f"the ground-truth flow is not rigid at frame {k} ({1000 * res:.1f} mm): "
                               "flow_truth needs one rigid object (no morphing)")
    return R, tr


def truth_for(query_px: np.ndarray, depth0_m: np.ndarray, camera: CameraModel, gt_flow: ObjectFlow
              ) -> tuple[np.ndarray, np.ndarray]:
    """(true points [T,n,3] m in the base frame, has_depth [n]) for query pixels of frame 0."""
    q = np.asarray(query_px, np.float64)
    H, W = depth0_m.shape
    ui = np.clip(np.rint(q[:, 0]).astype(int), 0, W - 1)
    vi = np.clip(np.rint(q[:, 1]).astype(int), 0, H - 1)
    z = np.asarray(depth0_m, np.float64)[vi, ui]
    ok = np.isfinite(z) & (z > 0)
    P0 = np.full((len(q), 3), np.nan)
    if ok.any():
        P0[ok] = camera.backproject(q[ok], z[ok])
    R, t = rigid_motions(gt_flow)
    return np.einsum("tij,nj->tni", R, P0) + t[:, None, :], ok


def flow_error(flow: ObjectFlow, depth0_m: np.ndarray, camera: CameraModel, gt_flow: ObjectFlow) -> dict[str, Any]:
    """3D error of ``flow``'s visible points against the truth (metres): median, mean, p90, and per
    frame; ``visible_fraction`` of the flow; ``final_displacement_error_m``: |median motion of the
    flow − of the truth| from frame 0 to the last frame (what the planner follows)."""
    truth, ok = truth_for(flow.query_px, depth0_m, camera, gt_flow)
    P = np.asarray(flow.points_base, np.float64)
    if P.shape != truth.shape:
        raise InvalidInput(f"flow has {P.shape[0]} frames, the ground truth {truth.shape[0]}")
    err = np.linalg.norm(P - truth, axis=-1)
    vis = np.asarray(flow.visible, bool) & ok[None, :]
    e = err[vis]
    per_frame = [float(np.median(err[k][vis[k]])) if vis[k].any() else None for k in range(len(err))]
    move_f = np.nanmedian(P[-1] - P[0], axis=0) if vis[-1].any() else np.full(3, np.nan)
    move_t = np.nanmedian(truth[-1] - truth[0], axis=0)
    return {"median_err_m": float(np.median(e)) if e.size else float("nan"),
            "mean_err_m": float(np.mean(e)) if e.size else float("nan"),
            "p90_err_m": float(np.percentile(e, 90)) if e.size else float("nan"),
            "visible_fraction": float(np.asarray(flow.visible).mean()),
            "per_frame_median_m": per_frame,
            "final_displacement_error_m": float(np.linalg.norm(move_f - move_t))}


__all__ = ["rigid_motions", "truth_for", "flow_error"]
