"""Hardware-in-the-loop: the polymetis backend against a real Polymetis server (``hil`` marker).

Runs only when ``D2F_POLYMETIS_HOST`` is set (tests/conftest.py skips it otherwise). On the
robot computer, with the Polymetis servers up (``launch_robot.py robot_client=franka_hardware``,
``launch_gripper.py gripper=franka_hand``), the arm in a free space around its current pose and
the e-stop in reach:

    D2F_POLYMETIS_HOST=localhost .venv/bin/python -m pytest -q -m hil tests/test_control_hil.py

(the runtime's venv must see the conda ``polymetis`` package, e.g. a venv made with
``--system-site-packages`` from the Polymetis conda env). A CI job with a robot sets the same
variable. The motion is small: joint 7 (the wrist roll) turns +0.05 rad and back in 3 s.
``D2F_HIL_GRIPPER=1`` also opens the gripper.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from dream2flow.control.backends import make_backend
from dream2flow.control.loop import execute_plan
from hil_moves import small_wrist_plan

pytestmark = pytest.mark.hil


@pytest.fixture
def robot():
    b = make_backend("polymetis", host=os.environ.get("D2F_POLYMETIS_HOST", "localhost"))
    b.connect()
    yield b
    b.close()


def test_connect_and_read_state(robot) -> None:
    s1 = robot.state()
    assert s1.q.shape == (7,) and np.isfinite(s1.q).all()
    s2 = robot.state()
    assert s2.t_s >= s1.t_s


def test_small_safe_move_and_back(robot) -> None:
    plan = small_wrist_plan(robot.state().q)
    r = execute_plan(plan, robot, rate_hz=50.0, consent=True)  # opted in by D2F_POLYMETIS_HOST
    assert r.ok, r.reason
    assert r.missed_periods <= 3
    assert r.max_tracking_error_rad < 0.05 and r.final_error_rad < 0.02
    if os.environ.get("D2F_HIL_GRIPPER"):
        robot.gripper(width_m=0.08)
