"""Test helper for the opt-in hardware tests: the one small motion they send to a real arm."""

from __future__ import annotations

import numpy as np

from dream2flow.types import Plan


def small_wrist_plan(q0: np.ndarray, *, amplitude_rad: float = 0.05, seconds: float = 3.0,
                     dt_s: float = 0.05) -> Plan:
    """Out to ``amplitude_rad`` on the last joint and back to ``q0`` (sin^2 profile: zero velocity and
    acceleration at both ends), gripper untouched."""
    H = int(round(seconds / dt_s)) + 1
    w = np.sin(np.pi * np.linspace(0, 1, H)) ** 2
    q = np.asarray(q0, dtype=np.float64) + w[:, None] * np.array([0, 0, 0, 0, 0, 0, amplitude_rad])
    return Plan(q=q, dt_s=dt_s, gripper=np.zeros(H), predicted_points=np.zeros((H, 1, 3)))
