"""``libfranka``: a Franka Research 3 through libfranka's Python bindings (``pylibfranka``).

libfranka wants one joint command every millisecond, each continuous with the last in velocity,
acceleration and jerk, or the robot stops with a reflex. The control loop sends targets at
50–1000 Hz. So the backend streams from a dedicated **1 kHz process** (``libfranka_proc``: the
only owner of the ``pylibfranka.Robot`` connection and of ``readOnce``/``writeOnce``, with no
GIL to share) a path it has prepared and checked *before anything moves*:

1. ``prepare_stream`` (called by the loop's pre-flight with the whole command stream):
   interpolate it to 1 kHz (``franka_stream.interpolate_stream``: quintic, exact at the loop's
   samples, at rest at both ends) and check every 1 ms sample against what libfranka enforces
   (``franka_stream.check_1khz``: joint range, the FR3's position-based velocity envelope,
   acceleration, jerk, rest at the end). A violation refuses the run with nothing sent. The loop's
   safety layer stays the authority on limits (margins, workspace, deviation, e-stop); this check
   only guarantees the continuity libfranka demands.
2. ``command_joint_positions(q)``: each loop target must be the next sample of the prepared
   stream (anything else is refused); it *releases* the path up to its time. The first one starts
   ``start_joint_position_control(JointImpedance)`` in the 1 kHz process, which then writes one
   sample per cycle (the first exactly ``q_d``: the loop's first target may be up to its start
   tolerance away, that offset is blended out over 0.1 s and checked). If the loop stops releasing
   (stalled for ``max_lead_s``) the process stops the arm smoothly on its own. Scheduling gaps of
   a few cycles are rejoined without a discontinuity (``StreamPlayer``).
3. ``stop()`` (e-stop, a failed safety check, close): the process brakes every joint to rest with
   bounded acceleration and jerk (``franka_stream.SmoothStop``) and ends the motion with
   ``motion_finished = True``. ``finish()`` waits for the path's end (sent with
   ``motion_finished``) and for the gripper.

The loop's clock is the robot's: ``pacer()`` gives the loop deadlines on the 1 kHz stream's own
progress, so the loop and the stream cannot drift apart (a simulator running slower than real
time slows the loop with it).

Reflexes. A ``ControlException`` from libfranka (a reflex, e.g. ``communication_constraints_violation``
when the process stalls) ends the motion; the backend then reads the robot's state and raises
``RobotReflex`` (exit 7) from every later call, naming libfranka's error, the robot mode and the
joints. The fault is **latched** (a small file per robot address under ``fault_dir``) so that
nothing resumes by itself — not in this process, not in the next: ``connect()`` refuses while a
fault is latched or the robot reports errors, until an operator recovers explicitly
(``recover()``: ``automatic_error_recovery()``; CLI ``dream2flow robot recover --robot IP --yes``,
service ``Reset``). Recovery never happens automatically.

Gripper (Franka Hand, ``pylibfranka.Gripper``): its calls block until the fingers stop (and hold
the GIL meanwhile), so they run in a child process too (``GripperProcess``), fed by a thread;
``gripper(grasp=True)`` grasps with the configured width/epsilons and ``report()`` says whether it
held (``is_grasped``) and the width. Homing moves the fingers, so it is an operator's explicit
action (``home_gripper()``; ``dream2flow robot home-gripper --yes``), never part of connecting.

``pylibfranka`` (x86_64 wheels on PyPI, extra ``franka``; built from libfranka's sources on the
Jetson image) is imported only in the child processes. libfranka ≥ 0.10 speaks to the FR3 only; a Panda
needs libfranka < 0.10 (no Python bindings): use the ``polymetis`` backend for the Panda.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.control.backends.libfranka_proc import (GripperProcess, RobotProcess, describe_state, error_names,
                                                         first_line)
from dream2flow.control.backends.arm_config import parse_keys
from dream2flow.errors import ExecutionFailed, InvalidInput, NotReady, SafetyViolation
from dream2flow.types import RobotState

log = logging.getLogger("dream2flow.control.libfranka")

RELEASE_AHEAD_S = 0.005        # the loop releases each target this long before the 1 kHz stream needs it

NOT_INSTALLED = ("pylibfranka is not installed: pip install 'dream2flow[franka]' (x86_64 wheels), or build it "
                 "from libfranka's sources (Dockerfile.jetson does, for aarch64)")


class RobotReflex(ExecutionFailed):
    """libfranka stopped the motion with a reflex (or the 1 kHz stream failed); latched until an
    explicit recovery."""


@dataclass(frozen=True)
class LibfrankaConfig:
    """Connection, streaming and gripper settings (``hw/robot/libfranka.toml``)."""

    robot_ip: str = ""                  # the FCI address (Desk: "Activate FCI"); --robot IP
    realtime: str = "ignore"            # "enforce" on a PREEMPT_RT kernel (libfranka's kEnforce)
    model: str = "fr3"                  # libfranka >= 0.10 drives the FR3
    rate_hz: float = 100.0              # default control-loop rate for this backend
    max_rate_hz: float = 1000.0
    max_lead_s: float = 0.1             # 1 kHz stream ahead of the last released target by more: stop
    stop_fraction: float = 0.9          # smooth stops use this fraction of the acceleration/jerk limits
    joint_impedance: tuple[float, ...] = ()   # Robot.set_joint_impedance (N·m/rad); empty: the robot's own
    rt_priority: int = 80               # SCHED_FIFO priority of the 1 kHz process when allowed (0: normal)
    fault_dir: str = ""                 # latched faults; empty: $D2F_STATE_DIR or ~/.local/state/dream2flow
    gripper_enabled: bool = True
    gripper_speed_mps: float = 0.1
    gripper_force_n: float = 20.0
    grasp_width_m: float = 0.04         # grasp() succeeds if the fingers stop within
    grasp_epsilon_inner_m: float = 0.038  #   [width - epsilon_inner, width + epsilon_outer]
    grasp_epsilon_outer_m: float = 0.04
    gripper_timeout_s: float = 10.0
    source: str = "defaults"

    def __post_init__(self) -> None:
        w = self.source
        if self.realtime not in ("ignore", "enforce"):
            raise InvalidInput(f"{w}: 'realtime' must be \"ignore\" or \"enforce\", got {self.realtime!r}")
        if self.model != "fr3":
            raise InvalidInput(f"{w}: 'model' must be \"fr3\": libfranka >= 0.10 (pylibfranka) drives the FR3; "
                               "a Panda needs libfranka < 0.10, use the polymetis backend for it")
        if not 1.0 <= float(self.max_rate_hz) <= 1000.0 or not 1.0 <= float(self.rate_hz) <= float(self.max_rate_hz):
            raise InvalidInput(f"{w}: need 1 <= rate_hz <= max_rate_hz <= 1000, got {self.rate_hz}, {self.max_rate_hz}")
        if not 0.005 <= float(self.max_lead_s) <= 1.0:
            raise InvalidInput(f"{w}: 'max_lead_s' must be in [0.005, 1] s, got {self.max_lead_s}")
        if not isinstance(self.rt_priority, int) or isinstance(self.rt_priority, bool) or not 0 <= self.rt_priority <= 99:
            raise InvalidInput(f"{w}: 'rt_priority' must be an integer in [0, 99], got {self.rt_priority!r}")
        if not 0.1 <= float(self.stop_fraction) <= 1.0:
            raise InvalidInput(f"{w}: 'stop_fraction' must be in [0.1, 1], got {self.stop_fraction}")
        if self.joint_impedance and (len(self.joint_impedance) != 7 or any(
                not isinstance(x, (int, float)) or x <= 0 for x in self.joint_impedance)):
            raise InvalidInput(f"{w}: 'joint_impedance' must be empty or 7 positive numbers (N·m/rad)")
        object.__setattr__(self, "joint_impedance", tuple(float(x) for x in self.joint_impedance))
        for k in ("gripper_speed_mps", "gripper_force_n", "gripper_timeout_s"):
            if not float(getattr(self, k)) > 0:
                raise InvalidInput(f"{w}: '{k}' must be positive, got {getattr(self, k)!r}")
        for k in ("grasp_width_m", "grasp_epsilon_inner_m", "grasp_epsilon_outer_m"):
            if not 0.0 <= float(getattr(self, k)) <= 0.1:
                raise InvalidInput(f"{w}: '{k}' must be in [0, 0.1] m, got {getattr(self, k)!r}")

    def fault_path(self) -> Path:
        base = self.fault_dir or os.environ.get("D2F_STATE_DIR") or str(Path.home() / ".local" / "state" / "dream2flow")
        return Path(base).expanduser() / f"libfranka-{self.robot_ip or 'unset'}.fault.json"


_KEYS = {"robot_ip": str, "realtime": str, "model": str, "rate_hz": float, "max_rate_hz": float,
         "max_lead_s": float, "stop_fraction": float, "joint_impedance": list, "rt_priority": int, "fault_dir": str}
_GRIPPER_KEYS = {
    "enabled": ("gripper_enabled", bool),
    "speed_mps": ("gripper_speed_mps", float), "force_n": ("gripper_force_n", float),
    "grasp_width_m": ("grasp_width_m", float), "epsilon_inner_m": ("grasp_epsilon_inner_m", float),
    "epsilon_outer_m": ("grasp_epsilon_outer_m", float), "timeout_s": ("gripper_timeout_s", float),
}


def libfranka_config_from_dict(d: dict[str, Any], where: str, base: LibfrankaConfig | None = None) -> LibfrankaConfig:
    """Top-level keys (``_KEYS``) and a ``[gripper]`` table; unknown keys are errors."""
    values = parse_keys(d, where, _KEYS, _GRIPPER_KEYS)
    if "joint_impedance" in values:
        values["joint_impedance"] = tuple(values["joint_impedance"])
    return replace(base or LibfrankaConfig(), source=where, **values)


def load_libfranka_config(path: str | Path | None = None) -> LibfrankaConfig:
    """``hw/robot/libfranka.toml`` (built-in defaults when absent), then the ``[libfranka]`` table
    of ``path`` (if given) on top."""
    from dream2flow.config import hw_dir, load_toml

    default = hw_dir() / "robot" / "libfranka.toml"
    cfg = libfranka_config_from_dict(load_toml(default), str(default)) if default.is_file() else LibfrankaConfig()
    if path is not None:
        table = load_toml(path).get("libfranka", {})
        if not isinstance(table, dict):
            raise InvalidInput(f"{path}: [libfranka] must be a table")
        cfg = libfranka_config_from_dict(table, str(path), base=cfg)
    return cfg


def _state_line(d: dict[str, Any]) -> str:
    errs = d.get("current_errors") or d.get("last_motion_errors") or []
    q = ", ".join(f"{x:.4f}" for x in d.get("q", []))
    return f"robot mode {d.get('robot_mode')}, errors [{', '.join(errs) or 'none'}], q = [{q}] rad"


class _Prepared:
    """One prepared run: the loop's stream and the checked 1 kHz path."""

    def __init__(self, t_s: np.ndarray, q: np.ndarray, path: np.ndarray) -> None:
        self.t_s = t_s
        self.q = q
        self.path = path
        self.next_index = 0          # the next stream sample the loop is expected to send
        self.released_t = -1.0       # plan time of the last released sample (-1: none)
        self.all_released = False


class LibfrankaBackend:
    """RobotBackend over ``pylibfranka.Robot`` / ``Gripper`` in child processes (``simulated = False``)."""

    name = "libfranka"
    simulated = False
    moves_real_arm = True           # real-arm consent is required before the first motion
    robot_model = "fr3"

    def __init__(self, config: LibfrankaConfig | None = None, *, robot_ip: str | None = None,
                 config_path: str | Path | None = None, limits: Any = None) -> None:
        cfg = config or load_libfranka_config(config_path)
        if robot_ip:
            cfg = replace(cfg, robot_ip=robot_ip)
        if not cfg.robot_ip:
            raise InvalidInput("libfranka backend: give the robot's FCI address (--robot IP, or robot_ip in "
                               "hw/robot/libfranka.toml)")
        self.config = cfg
        if limits is None:
            from dream2flow.config import load_robot_limits

            limits = load_robot_limits(model=cfg.model)
        self.limits = limits
        self._robot: RobotProcess | None = None
        self._gripper: GripperProcess | None = None
        self._prepared: _Prepared | None = None
        self._stop_req = False
        self._anchor = (0.0, time.monotonic())         # (path time the loop may be at, wall time) for the pacer
        self._fault: RobotReflex | None = None
        self._fault_detail: dict[str, Any] = {}
        self._stopped_reason = ""
        self._last_state: RobotState | None = None
        self.stats: dict[str, Any] = {}
        self._gq: queue.Queue[Any] = queue.Queue()
        self._gthread: threading.Thread | None = None
        self._gripper_width = float("nan")
        self.gripper_events: list[dict[str, Any]] = []
        self._gripper_busy = threading.Event()

    # -- optional loop extensions -----------------------------------------------------------
    @property
    def max_rate_hz(self) -> float:
        return float(self.config.max_rate_hz)

    @property
    def fault(self) -> str | None:
        """The latched fault (libfranka's reason), or None."""
        return self._fault.message if self._fault is not None else None

    @property
    def moving(self) -> bool:
        return self._robot is not None and self._robot.moving

    def clock_anchor(self) -> tuple[float, float]:
        """(path time the loop may be at, the wall time it was so): from the running stream, else the
        last known (the pacer extrapolates on the wall clock)."""
        robot = self._robot
        if robot is not None and robot.moving:
            _, _, _, t_path, wall, active = robot.snapshot()
            if active:
                self._anchor = (t_path + RELEASE_AHEAD_S, wall)
        return self._anchor

    def pacer(self, spin_s: float = 0.0) -> "RobotClockPacer":
        """Deadlines on the 1 kHz stream's progress, for the control loop."""
        return RobotClockPacer(self, spin_s)

    def prepare_stream(self, t_s: np.ndarray, q: np.ndarray, q_measured: np.ndarray) -> str | None:
        """Interpolate the loop's whole stream (``t_s`` [N] s from 0, ``q`` [N,7] rad) to 1 kHz and
        check it as libfranka would (module docstring). Returns the refusal reason or None."""
        from dream2flow.control.franka_stream import check_1khz, interpolate_stream, start_blend

        self._poll_motion()
        self._raise_fault()
        if self.moving:
            raise NotReady("libfranka backend: a motion is still running; wait for it to finish")
        t_s = np.asarray(t_s, dtype=np.float64)
        q = np.asarray(q, dtype=np.float64)
        if t_s.size == 0:
            return "the command stream is empty"
        if abs(float(t_s[0])) > 1e-12:
            raise InvalidInput("libfranka backend: the command stream must start at t = 0")
        path = interpolate_stream(t_s, q)
        q_measured = np.asarray(q_measured, dtype=np.float64)
        blend = start_blend(q_measured - path[0])
        n = min(len(blend), len(path))
        checked = path.copy()
        checked[:n] += blend[:n]
        bad = check_1khz(checked, self.limits, q_start=q_measured)
        self._prepared = None
        if bad is not None:
            return f"libfranka check of the 1 kHz stream: {bad.describe()}"
        self._prepared = _Prepared(t_s.copy(), q.copy(), path)
        self._anchor = (0.0, time.monotonic())
        self._stop_req = False
        self._stopped_reason = ""
        self.stats = {}
        return None

    # -- RobotBackend ------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the connection (idempotent); refuses while a fault is latched or the robot reports errors."""
        self._check_latch()
        if self._robot is not None and self._robot.alive():
            if self._fault is not None:
                raise NotReady(self._latched_message(self._fault.message))
            self._stop_req = False
            return
        cfg = self.config
        robot = self._open_process()
        d = robot.initial
        try:
            if d["current_errors"] or d["robot_mode"] == "Reflex":
                self._write_latch(f"the robot reported {_state_line(d)} on connect", d)
                raise NotReady(self._latched_message(f"the robot is not ready: {_state_line(d)}"))
            if d["robot_mode"] not in ("Idle", "Move"):
                raise NotReady(f"the robot is not ready for FCI motion: {_state_line(d)} (release the user stop / "
                               "guiding button, unlock the joints and activate FCI in Desk)")
            if cfg.joint_impedance:
                robot.call("impedance", list(cfg.joint_impedance))
        except BaseException:
            robot.close()
            raise
        gripper = None
        if cfg.gripper_enabled:
            try:
                gripper = GripperProcess(cfg.robot_ip)
                self._gripper_width = float(gripper.call("read")["width"])
            except Exception as exc:
                if gripper is not None:
                    gripper.close()
                robot.close()
                raise NotReady(f"could not connect to the Franka Hand at {cfg.robot_ip}: {type(exc).__name__}: "
                               f"{first_line(exc)} (set [gripper] enabled = false to run without)") from None
        self._robot, self._gripper = robot, gripper
        if gripper is not None:
            self._gthread = threading.Thread(target=self._gripper_loop, name="d2f-franka-gripper", daemon=True)
            self._gthread.start()

    def state(self) -> RobotState:
        self._require()
        self._poll_motion()
        self._raise_fault()
        robot = self._robot
        assert robot is not None
        if robot.moving:
            q, dq, t_robot, _, _, _ = robot.snapshot()
            st = RobotState(q=q, dq=dq, t_s=t_robot, gripper_width_m=self._gripper_width)
        else:
            try:
                d = robot.call("read", timeout_s=2.0)
            except RuntimeError as exc:
                raise NotReady(f"could not read the robot's state: {exc}") from None
            st = RobotState(q=np.asarray(d["q_arr"], dtype=np.float64), dq=np.asarray(d["dq_arr"], dtype=np.float64),
                            t_s=float(d["time_s"]), gripper_width_m=self._gripper_width)
            self._anchor = (self._anchor[0], time.monotonic()) if self._prepared is None else self._anchor
        self._last_state = st
        return st

    def command_joint_positions(self, q: np.ndarray) -> None:
        """Release the prepared path up to this target's time (starts the motion on the first)."""
        self._require()
        self._poll_motion()
        self._raise_fault()
        p = self._prepared
        if p is None:
            raise NotReady("libfranka backend: no prepared stream (the control loop prepares one in its pre-flight)")
        if self._stop_req:
            raise ExecutionFailed(f"libfranka backend: the motion was stopped ({self._stopped_reason or 'stop()'}); "
                                  "nothing more is sent")
        q = np.asarray(q, dtype=np.float64)
        i = p.next_index
        n = p.q.shape[0]
        while i < n and not np.array_equal(p.q[i], q):
            i += 1
        if i >= n:
            raise SafetyViolation("libfranka backend: a command that is not the next sample of the checked stream "
                                  "was refused (only prepared, pre-checked streams are sent)")
        first = p.next_index == 0
        p.next_index = i + 1
        p.released_t = float(p.t_s[i])
        p.all_released = i == n - 1
        robot = self._robot
        assert robot is not None
        if first:
            last = self._last_state if self._last_state is not None else self.state()
            robot.start_motion(p.path, None, self.limits, stop_fraction=self.config.stop_fraction,
                               max_lead_s=self.config.max_lead_s, released_t=p.released_t,
                               all_released=p.all_released, state_now=(last.q, last.dq, last.t_s))
        else:
            robot.release(p.released_t, p.all_released)

    def gripper(self, width_m: float | None = None, grasp: bool = False) -> None:
        """Queue a grasp (``grasp=True``) or an opening to ``width_m``; runs on the gripper thread."""
        self._raise_fault()
        self._require()
        if self._gripper is None:
            raise NotReady("the plan moves the gripper but the gripper is disabled in hw/robot/libfranka.toml")
        if not grasp and width_m is None:
            raise InvalidInput("gripper(): give width_m or grasp=True")
        self._gripper_busy.set()
        self._gq.put(("grasp", None) if grasp else ("move", float(width_m)))

    def step(self, dt_s: float) -> None:
        """Real time runs itself: nothing to advance."""

    def stop(self) -> None:
        """End the motion smoothly now (thread-safe, idempotent); waits up to 0.8 s for the arm to rest."""
        if not self._stopped_reason:
            self._stopped_reason = "stop() requested"
        self._stop_req = True
        self._drain_gripper_queue()
        robot = self._robot
        if robot is not None and robot.moving:
            robot.request_stop()
            self._poll_motion(0.8)

    def _remaining_path_s(self) -> float:
        robot, p = self._robot, self._prepared
        if robot is None or not robot.moving or p is None:
            return 0.0
        _, _, _, t_path, _, _ = robot.snapshot()
        return max(0.0, float(p.path.shape[0]) * 1e-3 - t_path)

    def finish_bound_s(self) -> float:
        """How long ``finish()`` may wait (s): the rest of the 1 kHz path, 2 s for it to end, and the
        gripper's timeout — the control loop's hang watchdog allows this much for it."""
        return self._remaining_path_s() + 2.0 + float(self.config.gripper_timeout_s)

    def finish(self) -> None:
        """After the loop's last target: wait for the path's end (``motion_finished``) and the gripper."""
        robot = self._robot
        if robot is not None and robot.moving:
            self._poll_motion(self._remaining_path_s() + 2.0)
            if robot.moving:
                self.stop()
                raise ExecutionFailed("libfranka backend: the 1 kHz stream did not finish in time; stopped")
        self._raise_fault()
        deadline = time.monotonic() + self.config.gripper_timeout_s
        while self._gripper_busy.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._gq.put(None)
            if self._gthread is not None:
                self._gthread.join(2.0)
            if self._gripper is not None:
                self._gripper.close()
            if self._robot is not None:
                self._robot.close()
            self._robot = None
            self._gripper = None
            self._gthread = None

    # -- operator actions --------------------------------------------------------------------
    def recover(self) -> dict[str, Any]:
        """Explicit operator recovery: ``automatic_error_recovery()`` and clear the latched fault.
        Returns the robot state afterwards. Never called automatically."""
        if self.moving:
            raise NotReady("libfranka backend: a motion is running; stop it before recovering")
        keep = self._robot is not None
        if keep:
            # A reflex ended the last motion mid-stream (often because this side stalled): that
            # session may still hold stale state packets, which would make the next motion's first
            # answers late. Recover on a fresh connection, as a new process would.
            self._robot.close()
            self._robot = None
        robot = self._open_process()
        try:
            d = robot.call("recover", timeout_s=30.0)
            if keep and self.config.joint_impedance:
                robot.call("impedance", list(self.config.joint_impedance))
        except RuntimeError as exc:
            robot.close()
            raise ExecutionFailed(f"automatic error recovery failed at {self.config.robot_ip}: {exc} (check the robot "
                                  "in Desk: brakes, user stop, errors)") from None
        if keep:
            self._robot = robot
        else:
            robot.close()
        if d["current_errors"] or d["robot_mode"] not in ("Idle", "Move"):
            raise ExecutionFailed(f"the robot still reports {_state_line(d)} after recovery")
        self.clear_fault()
        return d

    def home_gripper(self) -> dict[str, Any]:
        """Franka Hand ``homing()`` (the fingers open and close to measure the width): an operator's
        action, once after the hand was powered on. Returns the gripper state."""
        self._require()
        if self._gripper is None:
            raise NotReady("the gripper is disabled in hw/robot/libfranka.toml")
        try:
            out = self._gripper.call("homing", timeout_s=max(30.0, self.config.gripper_timeout_s))
        except RuntimeError as exc:
            raise ExecutionFailed(f"gripper homing failed: {exc}") from None
        if not out["result"]:
            raise ExecutionFailed("gripper homing failed (homing() returned false)")
        self._gripper_width = float(out["width"])
        return out

    def latched_fault(self) -> dict[str, Any] | None:
        """The latched fault record (message, time, robot state then), or None."""
        path = self.config.fault_path()
        if not path.is_file():
            return None if self._fault is None else {"message": self._fault.message, "state": self._fault_detail}
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {"message": f"unreadable latch file {path}"}

    def read_robot_state(self) -> dict[str, Any]:
        """The robot's state (mode, errors, joints), read without arming anything: works while a
        fault is latched (for an operator deciding whether to recover)."""
        if self._robot is not None:
            return self.robot_state()
        robot = self._open_process()
        try:
            return robot.initial
        finally:
            robot.close()

    def clear_fault(self) -> None:
        self._fault = None
        self._fault_detail = {}
        try:
            self.config.fault_path().unlink()
        except FileNotFoundError:
            pass

    def robot_state(self) -> dict[str, Any]:
        """The robot's state (mode, errors, joints) as a dict; from the stream while a motion runs."""
        self._require()
        robot = self._robot
        assert robot is not None
        if robot.moving:
            q, dq, t_robot, _, _, _ = robot.snapshot()
            return {"robot_mode": "Move", "q": [round(float(x), 5) for x in q],
                    "dq": [round(float(x), 5) for x in dq], "time_s": t_robot}
        d = robot.call("read", timeout_s=2.0)
        return {k: v for k, v in d.items() if not k.endswith("_arr") and k != "q_d"}

    def report(self) -> dict[str, Any]:
        """What happened: robot state, 1 kHz stream statistics, gripper results, the fault if any."""
        self._poll_motion()
        out: dict[str, Any] = {"backend": self.name, "model": self.config.model, "robot": self.config.robot_ip,
                               "stream": dict(self.stats), "gripper": list(self.gripper_events),
                               "fault": self.fault}
        try:
            if self._robot is not None:
                out["state"] = self.robot_state() if self._fault is None else self._fault_detail.get("state")
        except Exception as exc:  # report what we can
            out["state_error"] = f"{type(exc).__name__}: {first_line(exc)}"
        return out

    # -- the 1 kHz process -------------------------------------------------------------------
    def _open_process(self) -> RobotProcess:
        try:
            import pylibfranka  # noqa: F401  (checked here for a clear message; the child imports it)
        except ImportError:
            raise NotReady(NOT_INSTALLED) from None
        cfg = self.config
        try:
            return RobotProcess(cfg.robot_ip, cfg.realtime, cfg.rt_priority)
        except RuntimeError as exc:
            hint = (" (realtime = \"enforce\" needs a PREEMPT_RT kernel; use \"ignore\" elsewhere)"
                    if "realtime" in str(exc).lower() else "")
            raise NotReady(f"could not connect to the robot's FCI at {cfg.robot_ip}: {exc}{hint}") from None

    def _poll_motion(self, timeout_s: float = 0.0) -> None:
        """Collect a finished motion's outcome (and the pacer's anchor while it runs)."""
        robot = self._robot
        if robot is None or not robot.moving:
            return
        _, _, _, t_path, wall, _ = robot.snapshot()
        self._anchor = (t_path + RELEASE_AHEAD_S, wall)
        res = robot.motion_result(timeout_s)
        if res is None:
            return
        self.stats = dict(res["stats"])
        if res["error"]:
            detail = res.get("state") or {}
            errs = detail.get("last_motion_errors") or detail.get("current_errors") or []
            msg = (f"libfranka stopped the motion: {res['error']}"
                   + (f"; {_state_line(detail)}" if "robot_mode" in detail else f"; {detail.get('state_error', '')}"))
            if errs and not any(e in res["error"] for e in errs):
                msg += f" (libfranka errors: {', '.join(errs)})"
            self._set_fault(RobotReflex(msg, stage="execute"), detail)
        elif res["stopped"] and not self._stop_req:
            self._stopped_reason = res["reason"]      # the stream stopped on its own: nothing more is sent
            self._stop_req = True

    def _set_fault(self, fault: RobotReflex, detail: dict[str, Any] | None) -> None:
        self._fault = fault
        self._fault_detail = {"state": detail} if detail else {}
        log.error("%s", fault.message)
        self._write_latch(fault.message, detail)

    # -- gripper thread ----------------------------------------------------------------------
    def _gripper_loop(self) -> None:
        cfg = self.config
        while True:
            try:
                item = self._gq.get(timeout=0.2)
            except queue.Empty:
                item = "poll"
            if item is None:
                return
            g = self._gripper
            if g is None:
                return
            if item == "poll":
                try:
                    self._gripper_width = float(g.call("read", timeout_s=2.0)["width"])
                except Exception:
                    pass
                continue
            action, width = item
            t0 = time.monotonic()
            ev: dict[str, Any] = {"action": action, "t_wall_s": round(t0, 3)}
            try:
                if action == "grasp":
                    out = g.call("grasp", (cfg.grasp_width_m, cfg.gripper_speed_mps, cfg.gripper_force_n,
                                           cfg.grasp_epsilon_inner_m, cfg.grasp_epsilon_outer_m),
                                 timeout_s=cfg.gripper_timeout_s)
                else:
                    out = g.call("move", (width, cfg.gripper_speed_mps), timeout_s=cfg.gripper_timeout_s)
                self._gripper_width = float(out["width"])
                ev.update(ok=bool(out["result"]), width_m=round(float(out["width"]), 5),
                          is_grasped=bool(out["is_grasped"]))
            except Exception as exc:
                ev.update(ok=False, error=f"{type(exc).__name__}: {first_line(exc)}")
            ev["seconds"] = round(time.monotonic() - t0, 3)
            self.gripper_events.append(ev)
            log.info("gripper %s: %s", action, ev)
            if self._gq.empty():
                self._gripper_busy.clear()

    def _drain_gripper_queue(self) -> None:
        try:
            while True:
                item = self._gq.get_nowait()
                if item is None:
                    self._gq.put(None)
                    break
        except queue.Empty:
            pass

    # -- fault latch -------------------------------------------------------------------------
    def _write_latch(self, message: str, detail: dict[str, Any] | None) -> None:
        path = self.config.fault_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"robot": self.config.robot_ip, "message": message, "state": detail,
                                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1) + "\n")
        except OSError as exc:  # the in-process latch still holds; say that the file could not be kept
            log.error("could not write the fault latch %s: %s", path, exc)

    def _check_latch(self) -> None:
        path = self.config.fault_path()
        if path.is_file():
            try:
                msg = json.loads(path.read_text()).get("message", "")
            except (OSError, ValueError):
                msg = f"(unreadable latch file {path})"
            raise NotReady(self._latched_message(msg))

    def _latched_message(self, msg: str) -> str:
        return (f"a robot fault is latched: {msg}. Nothing moves until an operator checks the cell and recovers "
                f"explicitly: dream2flow robot recover --robot {self.config.robot_ip} --yes")

    def _raise_fault(self) -> None:
        if self._fault is not None:
            raise RobotReflex(self._fault.message, stage="execute")

    def _require(self) -> None:
        if self._robot is None:
            raise NotReady("libfranka backend is not connected (call connect())")


class RobotClockPacer:
    """Paces the control loop on the 1 kHz stream's own progress instead of the wall clock.

    ``now()`` is the path time the 1 kHz stream has reached plus ``RELEASE_AHEAD_S`` (the loop
    releases each target that much before the stream needs it), extrapolated on the wall clock
    between cycles and never going back; with no stream running it is the wall clock continued
    from the last such reading. A robot (or simulator) whose cycles run slower than real time
    slows the loop with it, so the two never drift apart. Waiting sleeps on the wall clock and
    re-checks: the loop wakes a few times per tick, never once per 1 kHz cycle, which would
    cost CPU for nothing."""

    inline = False

    def __init__(self, backend: "LibfrankaBackend", spin_s: float = 0.0) -> None:
        self.b = backend
        self.spin_s = float(spin_s)
        self._last = 0.0

    def now(self) -> float:
        t_path, wall = self.b._anchor
        t = t_path + max(0.0, time.monotonic() - wall)
        if t < self._last:
            t = self._last
        self._last = t
        return t

    def wait_until(self, deadline: float, stop_event: threading.Event | None) -> bool:
        """Wait until ``now()`` reaches ``deadline``; True if the e-stop event fired meanwhile."""
        while True:
            if stop_event is not None and stop_event.is_set():
                return True
            remaining = deadline - self.now()
            if remaining <= 0:
                return bool(stop_event and stop_event.is_set())
            if stop_event is not None:
                if stop_event.wait(remaining):
                    return True
            else:
                time.sleep(remaining)


__all__ = ["LibfrankaBackend", "LibfrankaConfig", "RobotReflex", "RobotClockPacer", "describe_state",
           "error_names", "load_libfranka_config", "libfranka_config_from_dict"]
