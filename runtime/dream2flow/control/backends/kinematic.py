"""``kinematic``: a pure-NumPy simulated arm — exact, deterministic, fast; the unit-test backend.

Joint tracking is the exact solution of a first-order lag ``dq/dt = (q_cmd - q) / tau`` over a
step ``dt``: ``q <- q_cmd + (q - q_cmd)·exp(-dt/tau)``. With ``tau_s = 0`` (the default) the arm
reaches each command exactly within the tick after it is sent — the measured path is the
command path delayed by one period. The gripper opening moves toward its target at
``gripper_speed_mps``; a grasp closes to ``grasp_width_m`` (the object's width, 0 = empty).

Faults for tests (``KinematicFaults``): raise from the k-th command, freeze the state (time and
joints stop updating) after the k-th step, or block ("hang") in the k-th command until released.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.types import RobotState


@dataclass
class KinematicFaults:
    """Fault injection: indices count calls from 0 (``raise_on_command=5``: the 6th command raises)."""

    raise_on_command: int | None = None
    exception: BaseException = field(default_factory=lambda: RuntimeError("injected fault: joint driver error"))
    freeze_after_steps: int | None = None
    hang_on_command: int | None = None
    release: threading.Event = field(default_factory=threading.Event)


class KinematicBackend:
    """RobotBackend for tests and benchmarks (``simulated = True``). ``calls`` records every
    protocol call as ``(name, args)`` in order."""

    name = "kinematic"
    simulated = True

    def __init__(self, q0: np.ndarray | None = None, *, tau_s: float = 0.0, gripper_width_m: float = 0.08,
                 gripper_max_width_m: float = 0.08, gripper_speed_mps: float = 0.1, grasp_width_m: float = 0.0,
                 faults: KinematicFaults | None = None, record_calls: bool = True) -> None:
        if q0 is None:
            from dream2flow.config import load_robot_limits

            q0 = load_robot_limits().q_ready
        q0 = np.asarray(q0, dtype=np.float64)
        if q0.shape != (7,) or not np.isfinite(q0).all():
            raise InvalidInput(f"kinematic backend: q0 must be 7 finite numbers, got {q0}")
        if tau_s < 0:
            raise InvalidInput(f"kinematic backend: tau_s must be >= 0, got {tau_s}")
        self.tau_s = float(tau_s)
        self.q = q0.copy()
        self.dq = np.zeros(7)
        self.q_cmd = q0.copy()
        self.t_s = 0.0
        self.gripper_width_m = float(gripper_width_m)
        self.gripper_target_m = float(gripper_width_m)
        self.gripper_max_width_m = float(gripper_max_width_m)
        self.gripper_speed_mps = float(gripper_speed_mps)
        self.grasp_width_m = float(grasp_width_m)
        self.faults = faults or KinematicFaults()
        self.record_calls = record_calls
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.connected = False
        self.stopped = False
        self.commands_after_stop = 0
        self._n_commands = 0
        self._n_steps = 0
        self._lock = threading.Lock()

    def _record(self, name: str, *args: Any) -> None:
        if self.record_calls:
            self.calls.append((name, args))

    # -- RobotBackend ------------------------------------------------------------------------
    def connect(self) -> None:
        """Idempotent; re-arms a stopped arm (like re-enabling after an e-stop)."""
        self._record("connect")
        self.connected = True
        self.stopped = False

    def state(self) -> RobotState:
        self._record("state")
        with self._lock:
            return RobotState(q=self.q.copy(), dq=self.dq.copy(), t_s=self.t_s, gripper_width_m=self.gripper_width_m)

    def command_joint_positions(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        self._record("command_joint_positions", q.copy())
        k = self._n_commands
        self._n_commands += 1
        if self.faults.hang_on_command is not None and k == self.faults.hang_on_command:
            self.faults.release.wait()
        if self.faults.raise_on_command is not None and k == self.faults.raise_on_command:
            raise self.faults.exception
        if q.shape != (7,):
            raise InvalidInput(f"kinematic backend: command must be [7], got {list(q.shape)}")
        with self._lock:
            if self.stopped:
                self.commands_after_stop += 1
                return
            self.q_cmd = q.copy()

    def gripper(self, width_m: float | None = None, grasp: bool = False) -> None:
        self._record("gripper", width_m, grasp)
        with self._lock:
            if grasp:
                self.gripper_target_m = self.grasp_width_m
            elif width_m is not None:
                self.gripper_target_m = float(np.clip(width_m, 0.0, self.gripper_max_width_m))

    def step(self, dt_s: float) -> None:
        self._record("step", dt_s)
        k = self._n_steps
        self._n_steps += 1
        if self.faults.freeze_after_steps is not None and k >= self.faults.freeze_after_steps:
            return
        with self._lock:
            q_old = self.q
            if self.tau_s == 0.0:
                q_new = self.q_cmd.copy()
            else:
                q_new = self.q_cmd + (q_old - self.q_cmd) * np.exp(-dt_s / self.tau_s)
            self.dq = (q_new - q_old) / dt_s if dt_s > 0 else np.zeros(7)
            self.q = q_new
            self.t_s += dt_s
            dw = self.gripper_target_m - self.gripper_width_m
            self.gripper_width_m += float(np.clip(dw, -self.gripper_speed_mps * dt_s, self.gripper_speed_mps * dt_s))

    def stop(self) -> None:
        """Hold the current measured position (thread-safe)."""
        self._record("stop")
        with self._lock:
            self.stopped = True
            self.q_cmd = self.q.copy()

    def close(self) -> None:
        self._record("close")
        self.connected = False

    # -- test helpers ------------------------------------------------------------------------
    def call_names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def commands(self) -> np.ndarray:
        """Every joint command received, [N,7]."""
        rows = [a[0] for n, a in self.calls if n == "command_joint_positions"]
        return np.array(rows).reshape(-1, 7)
