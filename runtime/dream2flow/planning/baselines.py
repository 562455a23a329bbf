"""Rigid baselines from the paper, for comparison with flow-following optimisation.

Both assume the *whole object* (every flow point) moves as one rigid body, fit one rigid
transform per (time-warped) step, and make the gripper follow ``T_obj(t) · T_base_tcp(0)``
by sequential IK (each step warm-started at the previous one). They consume the
``ObjectFlow`` only (plus the camera, for the 2D view of it):

* ``rigid_avdc`` (AVDC-style): 2D tracks (the flow's points projected into the camera) and
  depth only at the first step; per consecutive step pair a PnP fit of the rigid increment,
  chained. Errors accumulate along the chain, as in AVDC.
* ``rigid_rigvid`` (RIGVID-style): 3D points every step; a robust weighted Kabsch fit of
  each step's pose against the first step (pose-to-pose, no chaining).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.planning import flowprep, rigid

if TYPE_CHECKING:
    from dream2flow.config import RobotLimits
    from dream2flow.planning.config import PlannerConfig
    from dream2flow.types import CameraModel, ObjectFlow

VARIANTS = ("rigid_avdc", "rigid_rigvid")


def fit_object_poses(flow: "ObjectFlow", variant: str, *, t_start: int, t_end: int, horizon: int,
                     camera: "CameraModel | None" = None) -> np.ndarray:
    """[H,4,4] rigid object motion (step 0 -> step h) over the time-warped flow frames [t_start, t_end]."""
    PH, VH, _ = flowprep.time_warp(flow.points_base, flow.visible, t_start, t_end, horizon)
    if variant == "rigid_rigvid":
        T, _, _ = rigid.rigid_track(PH, VH, iters=1)
        return T
    if variant == "rigid_avdc":
        if camera is None:
            raise InvalidInput("rigid_avdc needs the camera model to see the flow in 2D")
        px, z = camera.project(PH)
        vis2d = VH & (z > 0) & np.isfinite(px).all(-1)
        X0 = np.where(VH[0][:, None], PH[0], np.nan)  # 3D only where the first depth sees the point
        return rigid.pnp_chain(px, vis2d, X0, camera)
    raise InvalidInput(f"unknown rigid baseline {variant!r} (use one of {', '.join(VARIANTS)})")


def follow_object_poses(T_obj: np.ndarray, q_grasp: np.ndarray, *, limits: "RobotLimits",
                        config: "PlannerConfig") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequential IK so the TCP follows ``T_obj[h] · T_base_tcp(q_grasp)``. Returns
    (q [H,7] with q[0] = q_grasp, position errors [H] m, rotation errors [H] rad)."""
    from dream2flow.planning.kinematics import fk_tcp_np
    from dream2flow.planning.optimizer import bucket_for
    from dream2flow.planning.solver import ik_sequence

    T0 = fk_tcp_np(q_grasp)
    targets = T_obj @ T0[None]
    H = len(targets)
    Hb = bucket_for(H + 1, config.horizon_buckets, "horizon")
    q, pe, re = ik_sequence(targets[1:], q_grasp, horizon_bucket=Hb, config=config, limits=limits)
    return (np.concatenate([np.asarray(q_grasp, dtype=np.float64)[None], q]), np.concatenate([[0.0], pe]),
            np.concatenate([[0.0], re]))
