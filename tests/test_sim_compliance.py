"""Issue 18 (b): the MuJoCo backend's ``franka`` impedance (Polymetis' Kq/Kqd) lets a contact
guide the arm, where the stiff servos hold it; both hold still at rest (gravity compensated)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dream2flow.errors import InvalidInput

os.environ.setdefault("MUJOCO_GL", "egl")
pytestmark = pytest.mark.sim


def _deflection(impedance: str, force_n: float) -> float:
    """Largest joint deviation (rad) from the held target after 0.5 s with ``force_n`` pushing the
    hand sideways (base y)."""
    from dream2flow import sim
    from dream2flow.sim import panda_model

    env = sim.make_env("open_drawer", 0)
    backend = env.robot_backend(impedance=impedance)
    backend.connect()
    q_target = backend.state().q.copy()
    hand = env.model.body(panda_model.HAND_BODY).id
    env.data.xfrc_applied[hand, 1] = force_n
    for _ in range(50):
        backend.step(0.01)
    env.data.xfrc_applied[hand] = 0.0
    return float(np.abs(backend.state().q - q_target).max())


def test_franka_gains_come_from_polymetis_config() -> None:
    from dream2flow.control.backends.polymetis import load_polymetis_config
    from dream2flow.sim.robot import impedance_gains

    kq, kqd = impedance_gains("franka")
    cfg = load_polymetis_config()
    np.testing.assert_array_equal(kq, cfg.Kq)
    np.testing.assert_array_equal(kqd, cfg.Kqd)
    with pytest.raises(InvalidInput, match="impedance"):
        impedance_gains("soft")


def test_a_push_guides_the_compliant_arm_not_the_stiff_one() -> None:
    stiff, franka = _deflection("stiff", 10.0), _deflection("franka", 10.0)
    assert stiff < 0.003, stiff
    assert 0.02 < franka < 0.1, franka        # it gives way (~0.045 rad), within the loop deviation limit
    assert _deflection("franka", 0.0) < 0.01  # and holds still when nothing pushes
