"""The ``RobotBackend`` protocol every robot (real or simulated) implements.

Why a protocol: the control loop, the service and the pipeline must not know whether they
drive the real Franka through Polymetis, the MuJoCo simulation or the kinematic test model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from dream2flow.types import RobotState


@runtime_checkable
class RobotBackend(Protocol):
    """A 7-DOF arm with a parallel gripper.

    - ``connect()`` opens the connection (idempotent); raises ``NotReady`` if it cannot.
    - ``state()`` the latest measured state; ``state().t_s`` is the backend's clock.
    - ``command_joint_positions(q)`` one joint target [7] rad (already safety-checked by the loop).
    - ``gripper(width_m=None, grasp=False)`` open to a width (m) or close on an object (grasp=True).
    - ``step(dt_s)`` advance simulated time by ``dt_s`` (no-op on real hardware, whose time runs itself);
      lets the loop run simulations deterministically and faster than real time.
    - ``stop()`` hold the current position now (safe to call from another thread, many times).
    - ``close()`` release resources.
    """

    name: str
    simulated: bool

    def connect(self) -> None: ...

    def state(self) -> RobotState: ...

    def command_joint_positions(self, q: np.ndarray) -> None: ...

    def gripper(self, width_m: float | None = None, grasp: bool = False) -> None: ...

    def step(self, dt_s: float) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...
