"""Hardware-in-the-loop: the libfranka backend against a real Franka Research 3 (``hil`` marker).

Runs only when ``D2F_FR3_IP`` is set (tests/conftest.py skips it otherwise): the FR3's FCI
address, FCI active in Desk, joints unlocked, the arm in a free space around its current pose and
the e-stop (external activation device) in hand; pylibfranka installed (``pip install '.[franka]'``):

    D2F_FR3_IP=172.16.0.2 .venv/bin/python -m pytest -q -m hil tests/test_control_hil_fr3.py

The motion is small: joint 7 (the wrist roll) turns +0.05 rad and back in 3 s, streamed at 1 kHz.
The same test runs in every CI run against franka-sim (tests/test_control_libfranka.py does more).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from dream2flow.config import load_robot_limits
from dream2flow.control.backends import make_backend
from dream2flow.control.loop import execute_plan
from hil_moves import small_wrist_plan

pytestmark = [pytest.mark.hil,
              pytest.mark.skipif(not os.environ.get("D2F_FR3_IP"), reason="set D2F_FR3_IP to the FR3's FCI address")]
FR3 = load_robot_limits(model="fr3")


@pytest.fixture
def robot():
    b = make_backend("libfranka", robot_ip=os.environ.get("D2F_FR3_IP", ""), limits=FR3)
    b.connect()
    yield b
    b.close()


def test_connect_and_read_state(robot) -> None:
    s1 = robot.state()
    assert s1.q.shape == (7,) and np.isfinite(s1.q).all() and not FR3.check_q(s1.q)
    assert robot.robot_state()["current_errors"] == []


def test_small_safe_move_and_back(robot) -> None:
    plan = small_wrist_plan(robot.state().q)
    r = execute_plan(plan, robot, rate_hz=100.0, limits=FR3, consent=True)  # D2F_FR3_IP is the consent
    assert r.ok, r.reason
    assert r.max_tracking_error_rad < 0.05 and r.final_error_rad < 0.01
    assert robot.fault is None and robot.stats["max_gap_cycles"] < 20
