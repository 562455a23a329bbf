"""MuJoCo simulation (issue 3): a Franka Panda on a table, the paper's tasks, a simulated RGB-D
camera and a simulated video generator with ground-truth object flow.

Public API: ``TASKS``, ``make_env(task, seed, *, camera=None) -> SimEnv``, ``SimEnv``,
``GeneratedVideo``, ``SuccessResult``, ``MujocoRobotBackend`` (lazy: ``dream2flow.sim.robot``).
Rendering is offscreen: ``MUJOCO_GL`` defaults to ``egl`` here (Debian ``libegl1 libegl-mesa0``;
software Mesa works without a GPU); set it to ``osmesa`` or ``glfw`` before import to override.
"""

from __future__ import annotations

import os
from typing import Any

# Must happen before mujoco is first imported: without it MuJoCo picks GLFW, which needs a display.
os.environ.setdefault("MUJOCO_GL", "egl")

from dream2flow.sim.env import TASKS, SimEnv, make_env
from dream2flow.sim.tasks import SuccessResult
from dream2flow.sim.video_gen import ARTIFACTS, GeneratedVideo

__all__ = ["ARTIFACTS", "TASKS", "GeneratedVideo", "MujocoRobotBackend", "SimEnv", "SuccessResult", "make_env"]


def __getattr__(name: str) -> Any:
    if name == "MujocoRobotBackend":
        from dream2flow.sim.robot import MujocoRobotBackend

        return MujocoRobotBackend
    raise AttributeError(name)
