"""``polymetis``: the real Franka through Polymetis (facebookresearch/fairo) on the robot computer.

Polymetis' server runs the 1 kHz torque loop; this client never streams at 1 kHz. Two modes
(``hw/robot/polymetis.toml`` ``mode``):

- ``stream``: ``RobotInterface.start_joint_impedance(Kq=, Kqd=, adaptive=)`` once, then
  ``update_desired_joint_positions(positions)`` per loop tick at 20–100 Hz. Each update re-scripts
  and uploads a parameter dict (``update_current_policy``), which is why the rate is capped.
- ``trajectory``: the whole reference, resampled at the server's rate (``metadata.hz``), is sent
  once as a ``torchcontrol.policies.JointTrajectoryExecutor`` through ``send_torch_policy(...,
  blocking=False)`` — what ``RobotInterface.move_to_joint_positions`` does for its min-jerk
  path — and the loop then only monitors (state, deviation, e-stop) and drives the gripper.

``stop()`` = ``terminate_current_policy(return_log=False)``: Polymetis falls back to its default
controller, a joint PD holding the position at the switch. Gripper: ``GripperInterface.goto(width,
speed, force, blocking=False)`` / ``grasp(speed, force, grasp_width, epsilon_inner, epsilon_outer,
blocking=False)``. API names and argument shapes follow fairo's ``polymetis/python/polymetis/
robot_interface.py`` and ``gripper_interface.py`` (2022–2023 releases; older releases named the
trajectory executor's gains ``Kp``/``Kd`` and had ``grasp(speed, force)`` only).

``polymetis`` and ``torch`` (which ships with it) are imported lazily in ``connect()``: the
runtime never imports torch otherwise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.control.backends.arm_config import parse_keys
from dream2flow.errors import InvalidInput, NotReady
from dream2flow.types import RobotState

NOT_INSTALLED = "polymetis is not installed: it ships via conda (fairo); install on the robot computer"

# Franka hardware defaults of Polymetis (conf/robot_client/franka_hardware.yaml: default_Kq / default_Kqd).
FRANKA_KQ = (80.0, 120.0, 100.0, 100.0, 70.0, 50.0, 20.0)
FRANKA_KQD = (10.0, 10.0, 10.0, 10.0, 5.0, 5.0, 5.0)


@dataclass(frozen=True)
class PolymetisConfig:
    """Connection and controller settings (``hw/robot/polymetis.toml``)."""

    host: str = "localhost"
    robot_port: int = 50051
    gripper_port: int = 50052
    enforce_version: bool = True
    mode: str = "stream"               # "stream" | "trajectory"
    rate_hz: float = 50.0              # default loop rate for this backend (stream: 20–100 Hz)
    max_rate_hz: float = 100.0
    adaptive: bool = True              # start_joint_impedance(adaptive=...): HybridJointImpedanceControl
    Kq: tuple[float, ...] = FRANKA_KQ
    Kqd: tuple[float, ...] = FRANKA_KQD
    gripper_enabled: bool = True
    gripper_speed_mps: float = 0.1
    gripper_force_n: float = 20.0
    grasp_width_m: float = 0.0
    grasp_epsilon_inner_m: float = -1.0   # -1: Polymetis' default (keep force on whatever is grasped)
    grasp_epsilon_outer_m: float = -1.0
    gripper_poll_s: float = 0.2        # refresh the gripper width in state() at most this often (robot clock)
    source: str = "defaults"

    def __post_init__(self) -> None:
        w = self.source
        if self.mode not in ("stream", "trajectory"):
            raise InvalidInput(f"{w}: 'mode' must be \"stream\" or \"trajectory\", got {self.mode!r}")
        for k in ("robot_port", "gripper_port"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 65536:
                raise InvalidInput(f"{w}: '{k}' must be a TCP port number, got {v!r}")
        if not 1.0 <= float(self.max_rate_hz) <= 1000.0 or not 1.0 <= float(self.rate_hz) <= float(self.max_rate_hz):
            raise InvalidInput(f"{w}: need 1 <= rate_hz <= max_rate_hz <= 1000, got {self.rate_hz}, {self.max_rate_hz}")
        for k in ("Kq", "Kqd"):
            v = getattr(self, k)
            if len(v) != 7 or any((not isinstance(x, (int, float))) or x < 0 for x in v):
                raise InvalidInput(f"{w}: '{k}' must be 7 numbers >= 0, got {v!r}")
            object.__setattr__(self, k, tuple(float(x) for x in v))
        for k in ("gripper_speed_mps", "gripper_force_n", "gripper_poll_s"):
            if not float(getattr(self, k)) > 0:
                raise InvalidInput(f"{w}: '{k}' must be positive, got {getattr(self, k)!r}")
        if not self.host:
            raise InvalidInput(f"{w}: 'host' must not be empty")


_KEYS = {
    "host": str, "robot_port": int, "gripper_port": int, "enforce_version": bool, "mode": str,
    "rate_hz": float, "max_rate_hz": float, "adaptive": bool, "Kq": list, "Kqd": list,
}
_GRIPPER_KEYS = {
    "enabled": ("gripper_enabled", bool), "speed_mps": ("gripper_speed_mps", float),
    "force_n": ("gripper_force_n", float), "grasp_width_m": ("grasp_width_m", float),
    "epsilon_inner_m": ("grasp_epsilon_inner_m", float), "epsilon_outer_m": ("grasp_epsilon_outer_m", float),
    "poll_s": ("gripper_poll_s", float),
}


def polymetis_config_from_dict(d: dict[str, Any], where: str, base: PolymetisConfig | None = None) -> PolymetisConfig:
    """Top-level keys (see ``_KEYS``) and a ``[gripper]`` table; unknown keys are errors."""
    values = parse_keys(d, where, _KEYS, _GRIPPER_KEYS)
    for k in ("Kq", "Kqd"):
        if k in values:
            values[k] = tuple(values[k])
    return replace(base or PolymetisConfig(), source=where, **values)


def load_polymetis_config(path: str | Path | None = None) -> PolymetisConfig:
    """The hw folder's ``robot/polymetis.toml`` (missing: an error naming the folder), then the
    ``[polymetis]`` table of ``path`` (if given) on top."""
    from dream2flow.config import hw_file, load_toml

    default = hw_file("robot/polymetis.toml")
    cfg = polymetis_config_from_dict(load_toml(default), str(default))
    if path is not None:
        table = load_toml(path).get("polymetis", {})
        if not isinstance(table, dict):
            raise InvalidInput(f"{path}: [polymetis] must be a table")
        cfg = polymetis_config_from_dict(table, str(path), base=cfg)
    return cfg


class PolymetisBackend:
    """RobotBackend over ``polymetis.RobotInterface`` / ``GripperInterface`` (``simulated = False``)."""

    name = "polymetis"
    simulated = False
    moves_real_arm = True   # the control loop needs the operator's consent (--yes / real_arm_consent)

    def __init__(self, config: PolymetisConfig | None = None, *, host: str | None = None,
                 mode: str | None = None, config_path: str | Path | None = None) -> None:
        cfg = config or load_polymetis_config(config_path)
        changes: dict[str, Any] = {}
        if host:
            changes["host"] = host
        if mode:
            changes["mode"] = mode
        self.config = replace(cfg, **changes) if changes else cfg
        self._robot: Any = None
        self._gripper: Any = None
        self._torch: Any = None
        self._lock = threading.Lock()
        self._impedance_running = False
        self._gripper_width = float("nan")
        self._gripper_read_at = -1e9
        self._Kq: Any = None
        self._Kqd: Any = None

    # -- optional loop extensions -------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.config.mode

    @property
    def max_rate_hz(self) -> float:
        return self.config.max_rate_hz if self.config.mode == "stream" else 1000.0

    @property
    def tracking_lag_s(self) -> np.ndarray:
        """[7] s. Streaming sets only ``joint_pos_desired`` (desired velocity 0), so the impedance
        controller trails a target moving at v by about Kqd/Kq·v; the loop's deviation check allows
        it (the trajectory mode feeds velocities and gets no allowance)."""
        kq = np.asarray(self.config.Kq, dtype=np.float64)
        kqd = np.asarray(self.config.Kqd, dtype=np.float64)
        return np.where(kq > 0, kqd / np.maximum(kq, 1e-9), 0.0)

    @property
    def trajectory_hz(self) -> float:
        self._require()
        return float(getattr(self._robot, "hz", 1000))

    # -- RobotBackend ------------------------------------------------------------------------
    def connect(self) -> None:
        if self._robot is not None:
            return
        try:
            import polymetis
        except ImportError:
            raise NotReady(NOT_INSTALLED) from None
        try:
            import torch
        except ImportError:
            raise NotReady("torch is missing: it comes with polymetis (conda); reinstall polymetis on the robot computer") from None
        cfg = self.config
        try:
            robot = polymetis.RobotInterface(ip_address=cfg.host, port=cfg.robot_port, enforce_version=cfg.enforce_version)
        except AssertionError as exc:  # Polymetis' version check is an assert
            raise NotReady(f"Polymetis client/server versions differ at {cfg.host}:{cfg.robot_port} ({exc}); "
                           "set enforce_version = false in hw/robot/polymetis.toml only if you know they are compatible") from None
        except Exception as exc:
            raise NotReady(f"could not connect to the Polymetis robot server at {cfg.host}:{cfg.robot_port}: "
                           f"{type(exc).__name__}: {_first_line(exc)}") from None
        gripper = None
        if cfg.gripper_enabled:
            try:
                gripper = polymetis.GripperInterface(ip_address=cfg.host, port=cfg.gripper_port)
            except Exception as exc:
                raise NotReady(f"could not connect to the Polymetis gripper server at {cfg.host}:{cfg.gripper_port}: "
                               f"{type(exc).__name__}: {_first_line(exc)} (set [gripper] enabled = false to run without)") from None
        self._torch = torch
        self._Kq = self._tensor(np.asarray(cfg.Kq))
        self._Kqd = self._tensor(np.asarray(cfg.Kqd))
        self._robot, self._gripper = robot, gripper
        self._impedance_running = False

    def state(self) -> RobotState:
        self._require()
        s = self._robot.get_robot_state()
        q = np.asarray(list(s.joint_positions), dtype=np.float64)
        dq = np.asarray(list(s.joint_velocities), dtype=np.float64)
        ts = s.timestamp
        t_s = float(ts.seconds) + 1e-9 * float(ts.nanos)
        if self._gripper is not None and not (0.0 <= t_s - self._gripper_read_at < self.config.gripper_poll_s):
            self._gripper_read_at = t_s          # polled on the robot's clock: one gRPC call per poll_s
            self._gripper_width = float(self._gripper.get_state().width)
        return RobotState(q=q, dq=dq, t_s=t_s, gripper_width_m=self._gripper_width)

    def command_joint_positions(self, q: np.ndarray) -> None:
        """Stream one target (starts the joint impedance controller on first use)."""
        self._require()
        with self._lock:
            if not self._impedance_running:
                self._robot.start_joint_impedance(Kq=self._Kq, Kqd=self._Kqd, adaptive=self.config.adaptive)
                self._impedance_running = True
        self._robot.update_desired_joint_positions(self._tensor(q))

    def send_trajectory(self, q: np.ndarray, dq: np.ndarray, hz: float) -> None:
        """Send the whole trajectory (positions/velocities [M,7] at the server's ``hz``) once."""
        self._require()
        try:
            import torchcontrol as toco
        except ImportError:
            raise NotReady("torchcontrol (part of polymetis) is missing: reinstall polymetis on the robot computer") from None

        robot_hz = float(getattr(self._robot, "hz", hz))
        if abs(robot_hz - float(hz)) > 1e-6:
            raise InvalidInput(f"trajectory sampled at {hz} Hz but the Polymetis server runs at {robot_hz} Hz")
        q = np.asarray(q, dtype=np.float64)
        dq = np.asarray(dq, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 7 or q.shape != dq.shape:
            raise InvalidInput(f"trajectory must be positions and velocities [M,7], got {list(q.shape)} / {list(dq.shape)}")
        policy = toco.policies.JointTrajectoryExecutor(
            joint_pos_trajectory=[self._tensor(row) for row in q],
            joint_vel_trajectory=[self._tensor(row) for row in dq],
            Kq=self._Kq, Kqd=self._Kqd, Kx=self._robot.Kx_default, Kxd=self._robot.Kxd_default,
            robot_model=self._robot.robot_model, ignore_gravity=self._robot.use_grav_comp)
        with self._lock:
            self._impedance_running = False
        self._robot.send_torch_policy(policy, blocking=False)

    def gripper(self, width_m: float | None = None, grasp: bool = False) -> None:
        self._require()
        cfg = self.config
        if self._gripper is None:
            raise NotReady("the plan moves the gripper but the gripper is disabled in hw/robot/polymetis.toml")
        if grasp:
            self._gripper.grasp(speed=cfg.gripper_speed_mps, force=cfg.gripper_force_n, grasp_width=cfg.grasp_width_m,
                                epsilon_inner=cfg.grasp_epsilon_inner_m, epsilon_outer=cfg.grasp_epsilon_outer_m,
                                blocking=False)
        else:
            if width_m is None:
                raise InvalidInput("gripper(): give width_m or grasp=True")
            self._gripper.goto(width=float(width_m), speed=cfg.gripper_speed_mps, force=cfg.gripper_force_n,
                               blocking=False)

    def step(self, dt_s: float) -> None:
        """Real time runs itself: nothing to advance."""

    def stop(self) -> None:
        """Hold position now: end the running policy (Polymetis' default controller holds). Thread-safe."""
        robot = self._robot
        if robot is None:
            return
        with self._lock:
            self._impedance_running = False
        if robot.is_running_policy():
            robot.terminate_current_policy(return_log=False)

    def finish(self) -> None:
        """After a completed run: end our controller; the default controller holds the final pose."""
        self.stop()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._robot = None
            self._gripper = None

    # -- helpers -----------------------------------------------------------------------------
    def _require(self) -> None:
        if self._robot is None:
            raise NotReady("polymetis backend is not connected (call connect())")

    def _tensor(self, x: np.ndarray) -> Any:
        """float32 torch tensor (Polymetis' own dtype: ``torch.Tensor(list)``)."""
        return self._torch.from_numpy(np.array(x, dtype=np.float32))  # a copy: the tensor owns its data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
