"""Planner settings: one frozen dataclass whose defaults are the tuned values, optionally
overridden by a TOML file (``hw/robot/planner.toml`` when present, or an explicit path).

Why a dataclass with defaults (and not only a TOML file): the planner must work with no
file at all (tests, a bare install), and every field is documented and typed in one place.
Weights are numbers fed to the compiled solver as data, so changing them never recompiles;
``traj_max_iters`` / ``ik_max_iters`` and the buckets are compile-time shapes/constants.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dream2flow.config import coerce_like
from dream2flow.errors import InvalidInput


@dataclass(frozen=True)
class PlannerConfig:
    # --- flow-following horizon and timing -------------------------------------------------
    horizon: int = 30                 # H: flow-following steps (incl. the grasp pose at step 0)
    dt_s: float = 0.1                 # preferred step (s); grown when a limit needs it
    dt_max_s: float = 1.0             # a plan slower than this is rejected (PlanningFailed)
    vel_margin: float = 0.5           # plan velocities use at most this fraction of dq_max
    acc_margin: float = 0.5           # ... and of ddq_max
    static_tol_m: float = 0.003       # t* / trailing-rest detection: motion below this is "static"
    # --- optimiser weights (costs are 1/2 sum of squared residuals) ----------------------------
    w_task: float = 1.0e4             # per step: mean squared point error (m^2) * w_task
    w_vel: float = 1.0                # sum_j (q[t]-q[t-1])^2
    w_acc: float = 10.0               # sum_j (q[t+1]-2q[t]+q[t-1])^2 (start and end at rest)
    w_limit: float = 1.0e3            # squared hinge beyond q_min/q_max -/+ limit_margin_rad
    limit_margin_rad: float = 0.10    # soft: the solver keeps this far inside the limits
    safety_margin_rad: float = 0.05   # hard: a plan closer than this to a limit is rejected; must be ≥ the
                                      # control loop's joint_margin_rad (hw/robot/control.toml), which refuses it too
    w_rest: float = 1.0e-3            # pull towards the grasp configuration (reachability/rest)
    w_orient: float = 0.0             # keep the TCP orientation of the grasp (off by default)
    traj_max_iters: int = 100         # LM iterations (upper bound; stops early when converged: 5-10 on most
                                      # flows, ~60 on a 60 deg door swing, which 40 used to cut short)
    lm_lambda0: float = 1.0e-3
    # --- IK ---------------------------------------------------------------------------------
    ik_max_iters: int = 60
    ik_w_rot: float = 0.3             # m per rad: orientation residual weight vs position (m)
    ik_tol_pos_m: float = 0.004       # an IK solution farther than this is "unreachable"
    ik_tol_rot_rad: float = 0.05
    # --- grasps -----------------------------------------------------------------------------
    gripper_max_width_m: float = 0.08
    grasp_clearance_m: float = 0.01   # opening beyond the object's width, per side
    pregrasp_offset_m: float = 0.09   # back along the approach axis
    approach_speed_mps: float = 0.08  # pre-grasp -> grasp straight-line speed
    dwell_s: float = 0.8              # constant q after each gripper change (>= 0.6 s)
    release_at_end: bool = True       # open the gripper after the flow segment (+ dwell)
    retreat_m: float = 0.06           # after release, back off along -approach (0: no retreat)
    part_radius_m: float = 0.05       # flow points this close to the grasp seed the rigid part
    part_mode: str = "rigid_consistent"  # or "radius"
    part_rigid_tol_m: float = 0.012   # rigid-consistency: mean residual below this joins the part
    articulation: str = "project"     # dream2flow only: "off" | "complete" | "project" (flowprep.part_targets);
                                      # project: a part on a fitted joint follows the joint (issue 18 tables)
    articulation_max_residual: float = 0.08  # a slide is used when it explains the part within this x its motion
    articulation_max_residual_revolute: float = 0.15  # a hinge: within this x its motion (articulation.py)
    completed_weight: float = 1.0     # weight of a completed (hidden, joint-placed) target vs an observed one
    grasp_seeds: int = 120            # cloud points sampled as grasp seeds (deterministic)
    grasp_candidates_checked: int = 48  # best candidates checked by IK (in batches of 16)
    seed: int = 0
    # --- acceptance -------------------------------------------------------------------------
    max_task_error_m: float = 0.03    # mean tracking error above this after the solve: Unreachable
    max_step_error_m: float = 0.06    # ... or a step whose mean error is above this
    follow_accept_m: float = 0.003    # the first grasp variant tracking better than this is taken
    # --- compile buckets ----------------------------------------------------------------------
    point_buckets: tuple[int, ...] = (64, 256, 1024)
    horizon_buckets: tuple[int, ...] = (32, 64, 128, 256)  # a solve is O(H): long horizons are affordable
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.horizon < 2:
            raise InvalidInput(f"planner: horizon must be >= 2, got {self.horizon}")
        if self.horizon + 1 > max(self.horizon_buckets):
            raise InvalidInput(f"planner: horizon {self.horizon} exceeds the largest bucket {max(self.horizon_buckets)} - 1")
        if not (0 < self.dt_s <= self.dt_max_s):
            raise InvalidInput(f"planner: need 0 < dt_s <= dt_max_s, got {self.dt_s}, {self.dt_max_s}")
        if not (0 < self.vel_margin <= 1 and 0 < self.acc_margin <= 1):
            raise InvalidInput("planner: vel_margin and acc_margin must be in (0, 1]")
        if self.dwell_s < 0.6:
            raise InvalidInput(f"planner: dwell_s must be >= 0.6 s (gripper closing time), got {self.dwell_s}")
        if self.articulation not in ("off", "complete", "project"):
            raise InvalidInput(f"planner: articulation must be 'off', 'complete' or 'project', got {self.articulation!r}")
        if not (0 < self.articulation_max_residual <= 1 and 0 < self.articulation_max_residual_revolute <= 1
                and 0 <= self.completed_weight <= 1):
            raise InvalidInput("planner: need 0 < articulation_max_residual(_revolute) <= 1 and 0 <= completed_weight <= 1")
        if self.part_mode not in ("rigid_consistent", "radius"):
            raise InvalidInput(f"planner: part_mode must be 'rigid_consistent' or 'radius', got {self.part_mode!r}")
        if not (0 < self.gripper_max_width_m <= 0.08):
            raise InvalidInput("planner: gripper_max_width_m must be in (0, 0.08]")

    def replace(self, **changes: Any) -> "PlannerConfig":
        return dataclasses.replace(self, **changes)


def planner_config_from_dict(d: dict[str, Any], where: str = "planner config") -> PlannerConfig:
    """Override the defaults with the keys of ``d`` (unknown keys are an error, types are checked)."""
    fields = {f.name: f for f in dataclasses.fields(PlannerConfig) if f.name != "extra"}
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key not in fields:
            raise InvalidInput(f"{where}: unknown key '{key}'")
        value = coerce_like(where, key, getattr(PlannerConfig(), key), value)
        kwargs[key] = value
    try:
        return PlannerConfig(**kwargs)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None


def load_planner_config(path: str | Path | None = None) -> PlannerConfig:
    """``path`` (must exist), else ``hw/robot/planner.toml`` if present, else the defaults."""
    from dream2flow.config import hw_dir, load_toml

    if path is not None:
        return planner_config_from_dict(load_toml(path), where=str(path))
    p = hw_dir() / "robot" / "planner.toml"
    if p.is_file():
        return planner_config_from_dict(load_toml(p), where=str(p))
    return PlannerConfig()
