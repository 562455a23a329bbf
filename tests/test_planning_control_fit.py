"""A plan the planner returns is one the control loop accepts: the loop's interpolation between
waypoints can exceed the finite-difference limits, so the planner slows such a plan down."""

from __future__ import annotations

import numpy as np
import pytest

from dream2flow.config import load_robot_limits
from dream2flow.control.loop import preflight
from dream2flow.errors import PlanningFailed
from dream2flow.planning.planner import _fit_to_control_loop
from dream2flow.types import Plan

LIM = load_robot_limits()


def _plan(q: np.ndarray, dt: float) -> Plan:
    return Plan(q=q, dt_s=dt, gripper=np.zeros(len(q)), predicted_points=np.zeros((len(q), 1, 3)), meta={})


def test_too_fast_plan_is_slowed_until_the_loop_accepts_it() -> None:
    q = np.repeat(LIM.q_ready[None], 12, axis=0)
    q[5:8, 0] += np.array([0.25, 0.5, 0.25])  # a quick out-and-back of joint 1
    fast = _plan(q, 0.1)
    assert preflight(fast, q[0]) is not None  # the interpolated stream is too fast as planned
    fitted = _fit_to_control_loop(fast, q[0])
    assert fitted.dt_s > fast.dt_s and np.array_equal(fitted.q, fast.q)
    assert preflight(fitted, q[0]) is None and fitted.meta["control_preflight"]["passed"]
    # the slow-down is computed from the stream's usage of the limits, not found by many retries
    assert fitted.meta["control_preflight"]["checks"] <= 3


def test_computed_slowdown_is_close_to_the_smallest_that_passes() -> None:
    q = np.repeat(LIM.q_ready[None], 12, axis=0)
    q[5:8, 0] += np.array([0.25, 0.5, 0.25])
    fitted = _fit_to_control_loop(_plan(q, 0.1), q[0])
    # 3 % slower would pass too (the margin), but not 15 % faster: the scale is not a coarse over-estimate
    assert preflight(_plan(q, fitted.dt_s / 1.15), q[0]) is not None


def test_plan_through_a_joint_limit_is_refused_not_slowed() -> None:
    q = np.repeat(LIM.q_ready[None], 6, axis=0)
    q[3, 3] = LIM.q_max[3] - 0.01  # inside the limit but inside the loop's margin too
    with pytest.raises(PlanningFailed, match="control loop would refuse"):
        _fit_to_control_loop(_plan(q, 1.0), q[0])
