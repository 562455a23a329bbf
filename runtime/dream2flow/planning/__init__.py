"""Planning (issue 9): Panda kinematics (JAX), grasps on the D0 cloud, rigid-grasp dynamics,
flow-following trajectory optimisation (Levenberg–Marquardt, jit-compiled), rigid baselines.

Entry point: ``plan_from_flow(flow, rgbd, *, q0=None, method="dream2flow", object_mask=None,
thumb_px=None, config=None) -> Plan``. Names are imported lazily so that importing the
package (e.g. for ``PlannerConfig``) does not start JAX.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plan_from_flow", "PlannerConfig", "load_planner_config", "METHODS", "write_plan_png",
           "write_joints_png", "AntipodalGraspProposer"]

_LAZY = {
    "plan_from_flow": ("dream2flow.planning.planner", "plan_from_flow"),
    "METHODS": ("dream2flow.planning.planner", "METHODS"),
    "PlannerConfig": ("dream2flow.planning.config", "PlannerConfig"),
    "load_planner_config": ("dream2flow.planning.config", "load_planner_config"),
    "write_plan_png": ("dream2flow.planning.pictures", "write_plan_png"),
    "write_joints_png": ("dream2flow.planning.pictures", "write_joints_png"),
    "AntipodalGraspProposer": ("dream2flow.planning.grasps", "AntipodalGraspProposer"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'dream2flow.planning' has no attribute {name!r}")
