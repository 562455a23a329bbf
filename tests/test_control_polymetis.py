"""The polymetis backend against a test double of Polymetis' Python client.

The double (``install_polymetis_double``) is injected as the modules ``polymetis``,
``torchcontrol`` and ``torch`` (a tiny fake tensor; the real torch must never be imported by
the runtime). Its methods have the exact signatures of fairo's ``RobotInterface`` /
``GripperInterface`` / ``JointTrajectoryExecutor``, and every call is bound against that
signature, so a wrong argument name or shape fails the test. It simulates a robot whose joints
follow the desired positions, and can raise, hang, slow down or freeze on demand.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

from dream2flow.config import load_robot_limits
from dream2flow.control.backends import make_backend
from dream2flow.control.backends.polymetis import FRANKA_KQ, FRANKA_KQD, NOT_INSTALLED, PolymetisBackend, PolymetisConfig
from dream2flow.control.loop import execute_plan as _execute_plan
from dream2flow.control.loop import replay_log as _replay_log


# Every run below moves the (simulated) real arm: each one is given the operator's consent (--yes).
def execute_plan(*args: Any, **kwargs: Any) -> Any:
    return _execute_plan(*args, consent=True, **kwargs)


def replay_log(*args: Any, **kwargs: Any) -> Any:
    return _replay_log(*args, consent=True, **kwargs)
from dream2flow.control.command_log import LOG_DTYPE, CommandLog
from dream2flow.control.settings import LoopConfig
from dream2flow.errors import NotReady
from dream2flow.types import Plan

LIM = load_robot_limits()


# ---------------------------------------------------------------------------------------------
# fakes shared with the other control tests
# ---------------------------------------------------------------------------------------------
class FakePacer:
    """A fake clock for real-time loops: waiting jumps the clock to the deadline. ``inline``
    makes the loop run in the calling thread (no supervisor), so tests are instant and exact."""

    inline = True

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt

    def wait_until(self, deadline: float, stop_event: threading.Event | None) -> bool:
        if stop_event is not None and stop_event.is_set():
            return True
        self.t = max(self.t, deadline)
        return bool(stop_event and stop_event.is_set())


class FakeTensor:
    """Enough of torch.Tensor for the backend and the double: wraps a float32 array."""

    def __init__(self, data: Any) -> None:
        self.data = np.array(data, dtype=np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self) -> int:
        return len(self.data)

    def tolist(self) -> list:
        return self.data.tolist()


def _fake_torch() -> types.ModuleType:
    m = types.ModuleType("torch")
    m.Tensor = FakeTensor  # type: ignore[attr-defined]
    m.float32 = np.float32  # type: ignore[attr-defined]

    def from_numpy(a: np.ndarray) -> FakeTensor:
        assert isinstance(a, np.ndarray), "torch.from_numpy needs an ndarray"
        return FakeTensor(a)

    m.from_numpy = from_numpy  # type: ignore[attr-defined]
    m.tensor = lambda x, dtype=None: FakeTensor(x)  # type: ignore[attr-defined]
    m.__d2f_fake__ = True  # type: ignore[attr-defined]
    return m


@dataclass
class World:
    """The simulated robot behind the double, and the call record."""

    clock: Callable[[], float] = time.monotonic
    q: np.ndarray = field(default_factory=lambda: LIM.q_ready.copy())
    hz: int = 1000
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    policy: str | None = None            # None | "impedance" | "trajectory"
    traj: np.ndarray | None = None
    traj_t0: float = 0.0
    gripper_width: float = 0.08
    version: str = "0.2.2"
    server_version: str = "0.2.2"
    fail_connect: bool = False
    raise_on: dict[str, int] = field(default_factory=dict)     # method -> call index that raises
    hang_on: dict[str, int] = field(default_factory=dict)      # method -> call index that blocks
    slow_on: dict[str, tuple[int, float, Any]] = field(default_factory=dict)  # method -> (index, seconds, pacer)
    freeze_after_states: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    on_hang: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, int] = field(default_factory=dict)
    frozen_t: float | None = None

    def record(self, name: str, fn: Callable, *args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(fn).bind(*args, **kwargs)   # wrong names / arity raise TypeError here
        bound.apply_defaults()
        args_ = {k: v for k, v in bound.arguments.items() if k != "self"}
        with self.lock:
            k = self.counts.get(name, 0)
            self.counts[name] = k + 1
            self.calls.append((name, args_))
        if self.hang_on.get(name) == k:
            if self.on_hang is not None:
                self.on_hang()
            self.release.wait()
        if self.raise_on.get(name) == k:
            raise RuntimeError(f"injected gRPC failure in {name}")
        slow = self.slow_on.get(name)
        if slow is not None and slow[0] == k:
            slow[2].advance(slow[1])

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def current_q(self) -> np.ndarray:
        if self.policy == "trajectory" and self.traj is not None:
            i = int((self.clock() - self.traj_t0) * self.hz)
            return self.traj[min(max(i, 0), len(self.traj) - 1)].astype(np.float64)
        return self.q


def _check_vec7(x: Any, what: str) -> np.ndarray:
    assert isinstance(x, FakeTensor), f"{what} must be a torch tensor, got {type(x).__name__}"
    assert x.shape == (7,) and x.data.dtype == np.float32, f"{what} must be float32 [7], got {x.shape} {x.data.dtype}"
    return x.data.astype(np.float64)


def install_polymetis_double(monkeypatch: pytest.MonkeyPatch, world: World) -> World:
    """Inject ``polymetis``, ``torchcontrol`` and a fake ``torch`` into sys.modules (undone after the test)."""
    w = world

    class RobotInterface:
        # fairo robot_interface.py: RobotInterface(time_to_go_default=1.0, use_grav_comp=True, *args, **kwargs)
        # -> BaseRobotInterface(ip_address="localhost", port=50051, enforce_version=True, use_mirror_sim=False, ...)
        def __init__(self, time_to_go_default: float = 1.0, use_grav_comp: bool = True, *args: Any, **kwargs: Any) -> None:
            self._base_init(*args, **kwargs)
            w.record("RobotInterface", self._base_init, *args, **kwargs)
            if w.fail_connect:
                raise RuntimeError("failed to connect to all addresses")
            if kwargs.get("enforce_version", True):
                assert w.version == w.server_version, "Version mismatch between client & server detected!"
            self.hz = w.hz
            self.Kq_default = FakeTensor(FRANKA_KQ)
            self.Kqd_default = FakeTensor(FRANKA_KQD)
            self.Kx_default = FakeTensor([150, 150, 150, 10, 10, 10])
            self.Kxd_default = FakeTensor([25, 25, 25, 7, 7, 7])
            self.robot_model = object()
            self.use_grav_comp = use_grav_comp

        def _base_init(self, ip_address: str = "localhost", port: int = 50051, enforce_version: bool = True,
                       use_mirror_sim: bool = False, mirror_cfg: Any = None, mirror_ip: str = "",
                       mirror_port: int = -1, mirror_metadata: Any = None) -> None:
            assert isinstance(ip_address, str) and isinstance(port, int)

        def get_robot_state(self) -> Any:
            w.record("get_robot_state", RobotInterface.get_robot_state, self)
            with w.lock:
                n = w.counts["get_robot_state"]
                if w.freeze_after_states is not None and n > w.freeze_after_states:
                    if w.frozen_t is None:
                        w.frozen_t = w.clock()
                    t = w.frozen_t
                else:
                    t = w.clock()
            q = w.current_q()
            return types.SimpleNamespace(
                timestamp=types.SimpleNamespace(seconds=int(t), nanos=int(round((t - int(t)) * 1e9))),
                joint_positions=[float(x) for x in q.astype(np.float32)],
                joint_velocities=[0.0] * 7)

        def get_joint_positions(self) -> FakeTensor:
            w.record("get_joint_positions", RobotInterface.get_joint_positions, self)
            return FakeTensor(w.current_q())

        def start_joint_impedance(self, Kq: Any = None, Kqd: Any = None, adaptive: bool = True, **kwargs: Any) -> Any:
            w.record("start_joint_impedance", RobotInterface.start_joint_impedance, self, Kq=Kq, Kqd=Kqd,
                     adaptive=adaptive, **kwargs)
            _check_vec7(Kq, "Kq"), _check_vec7(Kqd, "Kqd")
            w.policy = "impedance"
            return None

        def update_desired_joint_positions(self, positions: Any) -> int:
            w.record("update_desired_joint_positions", RobotInterface.update_desired_joint_positions, self, positions)
            q = _check_vec7(positions, "positions")
            if w.policy != "impedance":
                raise RuntimeError("Unable to update desired joint positions. Use 'start_joint_impedance' first.")
            w.q = q
            return 0

        def send_torch_policy(self, torch_policy: Any, blocking: bool = True, timeout: float | None = None,
                              use_mirror: bool = False) -> Any:
            w.record("send_torch_policy", RobotInterface.send_torch_policy, self, torch_policy, blocking=blocking,
                     timeout=timeout, use_mirror=use_mirror)
            assert isinstance(torch_policy, JointTrajectoryExecutor)
            w.policy, w.traj, w.traj_t0 = "trajectory", torch_policy.q, w.clock()
            return None

        def terminate_current_policy(self, return_log: bool = True, timeout: float | None = None) -> Any:
            w.record("terminate_current_policy", RobotInterface.terminate_current_policy, self, return_log=return_log,
                     timeout=timeout)
            if w.policy == "trajectory":
                w.q = w.current_q()
            w.policy = None
            return [] if return_log else None

        def is_running_policy(self) -> bool:
            w.record("is_running_policy", RobotInterface.is_running_policy, self)
            if w.policy == "trajectory" and w.traj is not None and (w.clock() - w.traj_t0) * w.hz >= len(w.traj):
                w.q = w.current_q()
                w.policy = None
            return w.policy is not None

        def move_to_joint_positions(self, positions: Any, time_to_go: float | None = None, delta: bool = False,
                                    Kq: Any = None, Kqd: Any = None, **kwargs: Any) -> Any:
            w.record("move_to_joint_positions", RobotInterface.move_to_joint_positions, self, positions,
                     time_to_go=time_to_go, delta=delta, Kq=Kq, Kqd=Kqd, **kwargs)
            w.q = _check_vec7(positions, "positions")
            return []

    class GripperInterface:
        def __init__(self, ip_address: str = "localhost", port: int = 50052) -> None:
            w.record("GripperInterface", GripperInterface.__init__, self, ip_address=ip_address, port=port)

        def get_state(self) -> Any:
            w.record("gripper.get_state", GripperInterface.get_state, self)
            return types.SimpleNamespace(width=w.gripper_width, max_width=0.08, is_grasped=False, is_moving=False)

        def goto(self, width: float, speed: float, force: float, blocking: bool = True) -> None:
            w.record("gripper.goto", GripperInterface.goto, self, width, speed, force, blocking=blocking)
            w.gripper_width = float(width)

        def grasp(self, speed: float, force: float, grasp_width: float = 0.0, epsilon_inner: float = -1.0,
                  epsilon_outer: float = -1.0, blocking: bool = True) -> None:
            w.record("gripper.grasp", GripperInterface.grasp, self, speed, force, grasp_width=grasp_width,
                     epsilon_inner=epsilon_inner, epsilon_outer=epsilon_outer, blocking=blocking)
            w.gripper_width = float(grasp_width)

    class JointTrajectoryExecutor:
        # torchcontrol/policies/trajectory.py
        def __init__(self, joint_pos_trajectory: list, joint_vel_trajectory: list, Kq: Any, Kqd: Any, Kx: Any, Kxd: Any,
                     robot_model: Any, ignore_gravity: bool = True) -> None:
            w.record("JointTrajectoryExecutor", JointTrajectoryExecutor.__init__, self, joint_pos_trajectory,
                     joint_vel_trajectory, Kq, Kqd, Kx, Kxd, robot_model, ignore_gravity=ignore_gravity)
            assert len(joint_pos_trajectory) == len(joint_vel_trajectory)
            self.q = np.stack([_check_vec7(x, "waypoint") for x in joint_pos_trajectory])
            self.dq = np.stack([_check_vec7(x, "velocity") for x in joint_vel_trajectory])

    poly = types.ModuleType("polymetis")
    poly.RobotInterface = RobotInterface  # type: ignore[attr-defined]
    poly.GripperInterface = GripperInterface  # type: ignore[attr-defined]
    poly.__version__ = w.version  # type: ignore[attr-defined]
    toco = types.ModuleType("torchcontrol")
    toco.policies = types.SimpleNamespace(JointTrajectoryExecutor=JointTrajectoryExecutor)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "polymetis", poly)
    monkeypatch.setitem(sys.modules, "torchcontrol", toco)
    monkeypatch.setitem(sys.modules, "torch", _fake_torch())
    return w


def small_plan(q0: np.ndarray | None = None, *, seconds: float = 1.0, amp: float = 0.1, dt: float = 0.1,
               grip_at: float | None = None) -> Plan:
    q0 = LIM.q_ready if q0 is None else q0
    H = int(round(seconds / dt)) + 1
    s = np.linspace(0, 1, H)
    prof = s ** 3 * (10 - 15 * s + 6 * s ** 2)
    q = q0 + amp * prof[:, None] * np.array([1.0, 0.5, -0.5, 0.5, 1.0, 0.5, 1.0])
    g = np.zeros(H)
    if grip_at is not None:
        g[int(round(grip_at / dt)):] = 1.0
    return Plan(q=q, dt_s=dt, gripper=g, predicted_points=np.zeros((H, 1, 3)))


def fast_cfg(**kw: Any) -> LoopConfig:
    return LoopConfig(**{"settle_s": 0.1, **kw})


def _after(names: list[str], name: str) -> list[str]:
    return names[len(names) - names[::-1].index(name):] if name in names else []


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
def test_missing_polymetis_is_a_clear_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "polymetis", None)   # import polymetis -> ImportError
    b = make_backend("polymetis", config=PolymetisConfig())
    with pytest.raises(NotReady, match="polymetis is not installed: it ships via conda"):
        b.connect()
    assert NOT_INSTALLED.startswith("polymetis is not installed")


def test_connect_uses_real_constructor_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    w = install_polymetis_double(monkeypatch, World())
    b = PolymetisBackend(PolymetisConfig(host="10.0.0.2", robot_port=50061, gripper_port=50062, enforce_version=False))
    b.connect()
    b.connect()  # idempotent
    ctor = [a for n, a in w.calls if n == "RobotInterface"]
    assert ctor == [{"ip_address": "10.0.0.2", "port": 50061, "enforce_version": False, "use_mirror_sim": False,
                     "mirror_cfg": None, "mirror_ip": "", "mirror_port": -1, "mirror_metadata": None}]
    assert [a for n, a in w.calls if n == "GripperInterface"] == [{"ip_address": "10.0.0.2", "port": 50062}]
    st = b.state()
    assert st.q.shape == (7,) and np.allclose(st.q, LIM.q_ready, atol=1e-6) and st.gripper_width_m == pytest.approx(0.08)


def test_connect_failures_are_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    w = install_polymetis_double(monkeypatch, World(fail_connect=True))
    with pytest.raises(NotReady, match="could not connect to the Polymetis robot server at localhost:50051"):
        PolymetisBackend(PolymetisConfig()).connect()
    w.fail_connect, w.server_version = False, "0.1.0"
    with pytest.raises(NotReady, match="versions differ"):
        PolymetisBackend(PolymetisConfig()).connect()


def test_stream_mode_calls_follow_the_polymetis_api(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = FakePacer()
    w = install_polymetis_double(monkeypatch, World(clock=pacer.now))
    b = PolymetisBackend(PolymetisConfig())
    plan = small_plan(grip_at=0.5)
    r = execute_plan(plan, b, rate_hz=50, config=fast_cfg(), pacer=pacer)
    assert r.ok, r.reason
    names = w.names()
    # one impedance controller, started before the first update, with Franka's default gains
    starts = [a for n, a in w.calls if n == "start_joint_impedance"]
    assert len(starts) == 1 and names.index("start_joint_impedance") < names.index("update_desired_joint_positions")
    assert np.allclose(np.asarray(starts[0]["Kq"]), FRANKA_KQ) and np.allclose(np.asarray(starts[0]["Kqd"]), FRANKA_KQD)
    assert starts[0]["adaptive"] is True
    updates = np.array([np.asarray(a["positions"]) for n, a in w.calls if n == "update_desired_joint_positions"])
    assert updates.shape == (r.commands_sent, 7)
    assert np.allclose(updates, r.command_log["q"], atol=1e-6)            # float32 tensors of the logged commands
    grasps = [a for n, a in w.calls if n == "gripper.grasp"]
    assert len(grasps) == 1 and grasps[0]["blocking"] is False and grasps[0]["force"] == 20.0
    # the run ends by terminating our controller (Polymetis' default controller then holds)
    assert names[-2:] == ["is_running_policy", "terminate_current_policy"]
    assert [a for n, a in w.calls if n == "terminate_current_policy"] == [{"return_log": False, "timeout": None}]
    assert r.max_tracking_error_rad < 1e-5 and r.missed_periods == 0


def test_trajectory_mode_sends_the_resampled_plan_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = FakePacer()
    w = install_polymetis_double(monkeypatch, World(clock=pacer.now))
    b = PolymetisBackend(PolymetisConfig(mode="trajectory"))
    plan = small_plan(seconds=0.8)
    r = execute_plan(plan, b, rate_hz=50, config=fast_cfg(), pacer=pacer)
    assert r.ok, r.reason
    names = w.names()
    assert names.count("send_torch_policy") == 1 and "update_desired_joint_positions" not in names
    send = [a for n, a in w.calls if n == "send_torch_policy"][0]
    assert send["blocking"] is False
    ex = [a for n, a in w.calls if n == "JointTrajectoryExecutor"][0]
    q = np.stack([np.asarray(x) for x in ex["joint_pos_trajectory"]])
    dq = np.stack([np.asarray(x) for x in ex["joint_vel_trajectory"]])
    assert q.shape == dq.shape and q.shape[1] == 7
    assert q.shape[0] == pytest.approx((plan.duration_s + 0.1) * 1000, abs=2)   # resampled at the server's 1 kHz
    assert np.allclose(q[-1], plan.q[-1], atol=1e-6) and np.allclose(dq[[0, -1]], 0, atol=1e-6)
    assert ex["ignore_gravity"] is True and np.allclose(np.asarray(ex["Kq"]), FRANKA_KQ)
    # the loop monitored at 50 Hz and logged the reference it expected the server to follow
    assert r.commands_sent == len(r.command_log) > 40 and r.max_tracking_error_rad < 0.01


def test_backend_error_mid_run_stops_and_sends_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = FakePacer()
    w = install_polymetis_double(monkeypatch, World(clock=pacer.now, raise_on={"update_desired_joint_positions": 10}))
    r = execute_plan(small_plan(), PolymetisBackend(PolymetisConfig()), rate_hz=50, config=fast_cfg(), pacer=pacer)
    assert not r.ok and r.failure == "execution" and "injected gRPC failure" in r.reason
    names = w.names()
    assert names.count("update_desired_joint_positions") == 11
    assert "update_desired_joint_positions" not in _after(names, "terminate_current_policy")
    assert _after(names, "update_desired_joint_positions") == ["is_running_policy", "terminate_current_policy"]


def test_stale_state_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = FakePacer()
    w = install_polymetis_double(monkeypatch, World(clock=pacer.now, freeze_after_states=15))
    r = execute_plan(small_plan(), PolymetisBackend(PolymetisConfig()), rate_hz=50,
                     config=fast_cfg(stale_timeout_s=0.05), pacer=pacer)
    assert not r.ok and r.failure == "execution" and "stale" in r.reason
    names = w.names()
    # frozen from the 16th state on; 0.05 s at 50 Hz = 2.5 periods -> stopped at the 3rd frozen read
    assert names.count("update_desired_joint_positions") == 17
    assert _after(names, "update_desired_joint_positions")[-1] == "terminate_current_policy"


def test_missed_periods_are_skipped_not_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = FakePacer()
    # the 20th update (tick 20, at 0.40 s) takes 70 ms at 50 Hz: it returns at 0.47 s, inside tick 23's
    # period, so ticks 21 and 22 are lost and tick 23 runs (late by 10 ms) — no catching up
    install_polymetis_double(monkeypatch, World(clock=pacer.now,
                                                slow_on={"update_desired_joint_positions": (20, 0.07, pacer)}))
    r = execute_plan(small_plan(), PolymetisBackend(PolymetisConfig()), rate_hz=50, config=fast_cfg(), pacer=pacer)
    assert r.ok, r.reason
    assert r.missed_periods == 2
    ticks = r.command_log["tick"]
    assert list(ticks[19:23]) == [19, 20, 23, 24]                      # skipped, not sent late
    assert np.array_equal(r.command_log["seq"], np.arange(len(ticks)))
    assert np.allclose(r.command_log["t_s"], ticks / 50.0)               # plan time follows the clock
    assert len(np.unique(ticks)) == len(ticks)                           # never two commands in one period


def _join_control_loop() -> None:
    """Wait (<= 5 s) for a control-loop thread a test abandoned to a hung backend call."""
    for th in threading.enumerate():
        if th.name == "d2f-control-loop":
            th.join(5.0)


def test_hung_backend_call_is_stopped_by_the_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    w = install_polymetis_double(monkeypatch, World(hang_on={"update_desired_joint_positions": 5}))
    cfg = fast_cfg(hang_timeout_s=0.2, stale_timeout_s=0.5)
    try:
        r = execute_plan(small_plan(seconds=0.6), PolymetisBackend(PolymetisConfig()), rate_hz=50, config=cfg)
        assert not r.ok and r.failure == "execution" and "did not return within 0.2 s" in r.reason
        assert "terminate_current_policy" in w.names()
    finally:
        w.release.set()
    _join_control_loop()
    names = w.names()
    assert names.count("update_desired_joint_positions") == 6            # the hung one, then nothing
    assert "update_desired_joint_positions" not in _after(names, "terminate_current_policy")


def test_a_finish_that_waits_by_design_gets_the_time_its_backend_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """finish() may wait for the robot (libfranka: the rest of the 1 kHz path and the gripper); the
    hang watchdog allows what the backend's ``finish_bound_s()`` says, and no more."""
    install_polymetis_double(monkeypatch, World())
    cfg = fast_cfg(hang_timeout_s=0.2, stale_timeout_s=0.5)

    def backend(bound_s: float | None) -> PolymetisBackend:
        b = PolymetisBackend(PolymetisConfig())
        inner = b.finish
        b.finish = lambda: (time.sleep(0.5), inner())          # a 0.5 s wait, over the 0.2 s hang timeout
        if bound_s is not None:
            b.finish_bound_s = lambda: bound_s
        return b

    r = execute_plan(small_plan(seconds=0.4), backend(1.0), rate_hz=50, config=cfg)
    assert r.ok, r.reason
    for bound_s in (None, 0.1):
        r = execute_plan(small_plan(seconds=0.4), backend(bound_s), rate_hz=50, config=cfg)
        assert not r.ok and "finish() did not return within 0.2 s" in r.reason
        for th in threading.enumerate():          # the abandoned worker ends when its wait does
            if th.name == "d2f-control-loop":
                th.join(5.0)


def test_estop_while_a_call_is_blocked_stops_without_waiting_for_the_hang_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    w = install_polymetis_double(monkeypatch, World(hang_on={"update_desired_joint_positions": 5}, on_hang=stop.set))
    try:
        r = execute_plan(small_plan(seconds=1.0), PolymetisBackend(PolymetisConfig()), rate_hz=50,
                         config=fast_cfg(hang_timeout_s=30.0, stale_timeout_s=30.0), stop_event=stop)
        assert not r.ok and r.failure == "estop" and "blocked" in r.reason
        assert "terminate_current_policy" in w.names()
    finally:
        w.release.set()
    _join_control_loop()
    assert w.names().count("update_desired_joint_positions") == 6


def test_estop_from_another_thread_takes_effect_within_one_period(monkeypatch: pytest.MonkeyPatch) -> None:
    w = install_polymetis_double(monkeypatch, World())
    stop = threading.Event()
    marks: dict[str, int] = {}

    def press() -> None:                 # an operator thread, once the arm is moving
        while w.counts.get("update_desired_joint_positions", 0) < 10:
            time.sleep(0.001)
        with w.lock:
            marks["at"] = len(w.calls)
        stop.set()

    operator = threading.Thread(target=press, daemon=True)
    operator.start()
    r = execute_plan(small_plan(seconds=2.0), PolymetisBackend(PolymetisConfig()), rate_hz=50, config=fast_cfg(),
                     stop_event=stop)
    operator.join(5.0)
    assert not r.ok and r.failure == "estop" and "e-stop" in r.reason
    after_press = [n for n, _ in w.calls[marks["at"]:]]
    assert after_press.count("update_desired_joint_positions") <= 1       # at most the one in flight
    assert "terminate_current_policy" in after_press
    assert "update_desired_joint_positions" not in _after(w.names(), "terminate_current_policy")


def test_violating_plan_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = FakePacer()
    w = install_polymetis_double(monkeypatch, World(clock=pacer.now))
    plan = small_plan()
    plan.q[6, 3] = LIM.q_max[3] + 0.01                                  # joint 4 above its limit mid-plan
    r = execute_plan(plan, PolymetisBackend(PolymetisConfig()), rate_hz=50, config=fast_cfg(), pacer=pacer)
    assert not r.ok and r.failure == "safety" and r.reason.startswith("pre-flight: joint 4")
    assert r.commands_sent == 0
    assert not {"start_joint_impedance", "update_desired_joint_positions", "send_torch_policy"} & set(w.names())


def test_rate_above_the_stream_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    install_polymetis_double(monkeypatch, World())
    from dream2flow.errors import InvalidInput

    with pytest.raises(InvalidInput, match="at most 100 Hz"):
        execute_plan(small_plan(), PolymetisBackend(PolymetisConfig()), rate_hz=200)


def test_real_arm_needs_consent_before_anything_is_connected(monkeypatch: pytest.MonkeyPatch) -> None:
    from dream2flow.control.backends import backend_moves_real_arm
    from dream2flow.errors import InvalidInput

    w = install_polymetis_double(monkeypatch, World())
    assert backend_moves_real_arm("polymetis") and not backend_moves_real_arm("kinematic")
    for run in (lambda b: _execute_plan(small_plan(), b, rate_hz=50, config=fast_cfg()),
                lambda b: _replay_log(CommandLog(np.zeros(0, LOG_DTYPE), 50.0), b, config=fast_cfg())):
        with pytest.raises(InvalidInput, match="moves a real arm: .* confirm with --yes"):
            run(PolymetisBackend(PolymetisConfig()))
    assert w.calls == []                                    # refused before connecting
    # the cell's own consent flag (control.toml [safety] real_arm_consent) is consent too
    pacer = FakePacer()
    w.clock = pacer.now
    r = _execute_plan(small_plan(), PolymetisBackend(PolymetisConfig()), rate_hz=50,
                      config=fast_cfg(real_arm_consent=True), pacer=pacer)
    assert r.ok, r.reason
    # a dry run moves nothing and needs no consent
    assert _execute_plan(small_plan(), PolymetisBackend(PolymetisConfig()), rate_hz=50, config=fast_cfg(),
                         dry_run=True).ok


def test_replay_streams_the_log_again(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = FakePacer()
    w = install_polymetis_double(monkeypatch, World(clock=pacer.now))
    r1 = execute_plan(small_plan(), PolymetisBackend(PolymetisConfig()), rate_hz=50, config=fast_cfg(), pacer=pacer)
    assert r1.ok
    w.q = r1.command_log["q"][0].astype(np.float32).astype(np.float64)
    r2 = replay_log(CommandLog(r1.command_log, 50.0), PolymetisBackend(PolymetisConfig()), config=fast_cfg(), pacer=pacer)
    assert r2.ok, r2.reason
    assert r2.command_log.tobytes() == r1.command_log.tobytes()


def test_config_file_overrides(tmp_path) -> None:
    from dream2flow.control.backends.polymetis import load_polymetis_config
    from dream2flow.errors import InvalidInput

    p = tmp_path / "o.toml"
    p.write_text('[polymetis]\nhost = "172.16.0.1"\nmode = "trajectory"\n[polymetis.gripper]\nforce_n = 30.0\n')
    cfg = load_polymetis_config(p)
    assert (cfg.host, cfg.mode, cfg.gripper_force_n, cfg.robot_port) == ("172.16.0.1", "trajectory", 30.0, 50051)
    assert cfg.Kq == FRANKA_KQ
    p.write_text('[polymetis]\nhots = "x"\n')
    with pytest.raises(InvalidInput, match="unknown key 'hots'"):
        load_polymetis_config(p)
    p.write_text('[polymetis]\nmode = "fast"\n')
    with pytest.raises(InvalidInput, match="'mode' must be"):
        load_polymetis_config(p)
