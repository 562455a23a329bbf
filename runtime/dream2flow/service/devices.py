"""The server's hardware: one camera and the robot backends, behind an e-stop gate.

Why a gate around the backend: the emergency stop must hold even if a control loop ignored
its stop event. ``GuardedBackend`` refuses every motion command (joints and gripper) while
the e-stop flag is set, so after ``EmergencyStop`` the next command of any loop fails within
one control period; it also counts commands (GetRobotState shows that nothing moved).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, Callable

import numpy as np

from dream2flow.errors import ExecutionFailed, InvalidInput, NotReady
from dream2flow.log import get_logger

log = get_logger("service.devices")


class GuardedBackend:
    """A ``RobotBackend`` wrapper: e-stop gate, command counter, optional shared lock (the
    simulated camera and the MuJoCo backend share one simulation) and optional real-time pacing
    of simulated backends."""

    def __init__(self, inner: Any, estop: threading.Event, *, lock: threading.RLock | None = None,
                 realtime: bool = False) -> None:
        self.inner = inner
        self.estop = estop
        self.lock = lock or threading.RLock()
        self.realtime = realtime and bool(getattr(inner, "simulated", False))
        self.commands_sent = 0
        self.last_command_monotonic_s = 0.0  # when the last joint command went to the backend
        self._deadline: float | None = None

    @property
    def name(self) -> str:
        return str(getattr(self.inner, "name", "backend"))

    @property
    def simulated(self) -> bool:
        return bool(getattr(self.inner, "simulated", False))

    def __getattr__(self, item: str) -> Any:  # extras of a backend (e.g. the env) stay reachable
        if item == "inner":
            raise AttributeError(item)
        return getattr(self.inner, item)

    def _gate(self) -> None:
        if self.estop.is_set():
            raise ExecutionFailed("emergency stop is active: motion command refused")

    def connect(self) -> None:
        with self.lock:
            self.inner.connect()

    def state(self) -> Any:
        with self.lock:
            return self.inner.state()

    def command_joint_positions(self, q: np.ndarray) -> None:
        self._gate()
        with self.lock:
            self._gate()
            self.inner.command_joint_positions(q)
            self.commands_sent += 1
            self.last_command_monotonic_s = time.monotonic()

    def gripper(self, width_m: float | None = None, grasp: bool = False) -> None:
        self._gate()
        with self.lock:
            self._gate()
            self.inner.gripper(width_m=width_m, grasp=grasp)

    def send_trajectory(self, q: np.ndarray, dq: np.ndarray, hz: float) -> None:
        """Whole-trajectory backends (Polymetis trajectory mode): gated like single commands; an
        e-stop during it reaches the robot through ``stop()``."""
        self._gate()
        with self.lock:
            self._gate()
            self.inner.send_trajectory(q, dq, hz)
            self.commands_sent += int(np.asarray(q).shape[0])

    def step(self, dt_s: float) -> None:
        with self.lock:
            self.inner.step(dt_s)
        if self.realtime:
            now = time.monotonic()
            if self._deadline is None or now - self._deadline > 0.5:
                self._deadline = now
            self._deadline += dt_s
            delay = self._deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def stop(self) -> None:
        # No lock: stop() must get through even while another thread holds it (it is thread-safe
        # by the RobotBackend contract).
        self.inner.stop()

    def settle(self, rate_hz: float, max_s: float = 2.0, tol_rad_s: float = 1e-3) -> float:
        """Simulated arms only: step the physics (holding the current target; no command is sent)
        until every joint is still or ``max_s`` of simulated time passed → seconds stepped. A real
        arm's controller keeps holding by itself; a simulation stands still between tasks unless
        stepped, and would keep reporting its last velocity."""
        if not self.simulated or not hasattr(self.inner, "step"):
            return 0.0
        dt = 1.0 / rate_hz
        t = 0.0
        with self.lock:
            while t < max_s:
                dq = np.asarray(self.inner.state().dq, dtype=np.float64)
                if dq.size == 0 or float(np.max(np.abs(dq))) < tol_rad_s:
                    break
                self.inner.step(dt)
                t += dt
        return t

    def close(self) -> None:
        with self.lock:
            self.inner.close()


class Devices:
    """Camera + backends, created lazily from the config (or injected by tests)."""

    def __init__(self, cfg: Any, *, camera: Any = None,
                 backend_factory: Callable[[str, Any], Any] | None = None) -> None:
        self.cfg = cfg
        self.estop = threading.Event()
        self.estop_monotonic_s = 0.0  # when the e-stop flag was last set (time.monotonic)
        self.sim_lock = threading.RLock()
        self._camera = camera
        self._cam_exec = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="d2f-camera")
        self._backends: dict[str, GuardedBackend] = {}
        self._backends_lock = threading.Lock()
        self._backend_factory = backend_factory

    # -- camera -----------------------------------------------------------------------------
    # Every camera call runs on one dedicated thread: OpenGL/EGL contexts (the simulated camera)
    # and most device SDKs belong to the thread that opened them, and captures must not overlap.
    def _on_camera_thread(self, fn: Callable[[], Any], timeout_s: float | None) -> Any:
        fut = self._cam_exec.submit(fn)
        try:
            return fut.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise CameraBusy(f"the camera did not answer within {timeout_s:.0f} s; retry") from None

    def _open_camera(self) -> Any:
        if self._camera is None:
            from dream2flow.camera.configs import make_camera
            from dream2flow.service.config import camera_config

            self._camera = make_camera(camera_config(self.cfg))
        return self._camera

    def camera(self, timeout_s: float | None = 300.0) -> Any:
        """The camera object (opened on the camera thread on first use)."""
        return self._on_camera_thread(self._open_camera, timeout_s)

    def capture(self, timeout_s: float = 10.0) -> Any:
        """One RGB-D frame; ``CameraBusy`` (UNAVAILABLE) if the camera takes longer than ``timeout_s``."""

        def grab() -> Any:
            cam = self._open_camera()
            if hasattr(cam, "env"):  # a simulated camera: the MuJoCo backend may be stepping its env
                with self.sim_lock:
                    return cam.capture()
            return cam.capture()

        return self._on_camera_thread(grab, timeout_s)

    def camera_model(self) -> Any:
        return self._on_camera_thread(lambda: self._open_camera().model(), 300.0)

    # -- robot ------------------------------------------------------------------------------
    def backend(self, name: str | None = None) -> GuardedBackend:
        name = name or self.cfg.robot.backend
        if name not in self.cfg.backends:
            raise InvalidInput(f"backend {name!r} is not allowed here (allowed: {', '.join(self.cfg.backends)})")
        with self._backends_lock:
            b = self._backends.get(name)
            if b is None:
                inner = self._make_backend(name)
                b = GuardedBackend(inner, self.estop, lock=self.sim_lock if name == "mujoco" else None,
                                   realtime=self.cfg.robot.realtime)
                b.connect()
                self._backends[name] = b
            return b

    def _make_backend(self, name: str) -> Any:
        if self._backend_factory is not None:
            return self._backend_factory(name, self)
        try:
            from dream2flow.control.backends import make_backend
        except ImportError as exc:  # pragma: no cover - the control package is part of the runtime
            raise NotReady(f"robot backends are not available: {exc}") from None
        if name == "mujoco":
            env = getattr(self.camera(), "env", None)
            if env is None:
                raise NotReady("the mujoco backend needs the simulated camera's environment")
            return make_backend("mujoco", env=env)
        if name == "kinematic":
            return make_backend(name, record_calls=False)  # a long-running server must not keep every call
        if name == "libfranka":  # consent: the control loop checks the cell's [safety] real_arm_consent
            return make_backend(name, robot_ip=self.cfg.robot.robot_ip or None)
        return make_backend(name)

    # -- simulation ---------------------------------------------------------------------------
    def _sim_env(self) -> Any:
        return getattr(self._camera, "env", None)

    def reset_scene(self) -> bool:
        """A simulated scene goes back to its seeded start (objects, and the arm of the mujoco
        backend that lives in it) so that every task starts alike → whether it was reset."""
        env = self._sim_env()
        if env is None or not hasattr(env, "reset"):
            return False

        def reset() -> None:
            with self.sim_lock:
                env.reset()

        self._on_camera_thread(reset, 60.0)  # the env's renderer belongs to the camera thread
        return True

    def settle(self) -> None:
        """Every simulated backend comes to rest (``GuardedBackend.settle``)."""
        for b in self.existing_backends():
            b.settle(float(self.cfg.robot.rate_hz))

    def success_check(self, backend_name: str, rate_hz: float, settle_s: float = 1.0) -> dict[str, Any] | None:
        """The simulated task's success check after ``settle_s`` of physics (a released piece
        falls) when ``backend_name`` moves that simulated scene (mujoco); None when nothing here can
        judge the outcome (a real arm, or a backend that does not act on the scene)."""
        env = self._sim_env()
        if env is None or backend_name != "mujoco" or not hasattr(env, "success"):
            return None
        b = self.backend(backend_name)
        with b.lock:
            for _ in range(int(round(settle_s * rate_hz))):
                b.inner.step(1.0 / rate_hz)
            res = env.success()
        return {"success": bool(res.success), "value": float(res.value), "reason": str(res.reason),
                "checker": f"sim:{getattr(env, 'task', '?')} success check"}

    def trip_estop(self) -> None:
        """Set the e-stop flag (the gate refuses every motion command from now on); the time of
        the first trip is kept until Reset clears the flag."""
        t = time.monotonic()
        first = not self.estop.is_set()
        self.estop.set()
        if first:
            self.estop_monotonic_s = t

    def robot_faults(self) -> list[str]:
        """Faults latched by backends (a libfranka reflex): each holds the service like an e-stop."""
        return [f"{b.name}: {b.inner.fault}" for b in self.existing_backends() if getattr(b.inner, "fault", None)]

    def recover_faults(self) -> None:
        """Explicit recovery (an operator's Reset) of every backend with a latched fault; raises if
        one cannot recover (the robot still reports errors)."""
        for b in self.existing_backends():
            if getattr(b.inner, "fault", None) and callable(getattr(b.inner, "recover", None)):
                with b.lock:
                    b.inner.recover()

    def existing_backends(self) -> list[GuardedBackend]:
        with self._backends_lock:
            return list(self._backends.values())

    def commands_sent(self) -> int:
        return sum(b.commands_sent for b in self.existing_backends())

    def stop_all(self) -> None:
        """backend.stop() on every backend made so far (errors logged, never raised)."""
        for b in self.existing_backends():
            try:
                b.stop()
            except Exception:
                log.exception("backend %s: stop() failed", b.name)

    def close(self) -> None:
        self.stop_all()
        for b in self.existing_backends():
            try:
                b.close()
            except Exception:
                log.exception("backend %s: close() failed", b.name)
        cam = self._camera
        if cam is not None and hasattr(cam, "close"):
            try:
                self._on_camera_thread(cam.close, 30.0)
            except Exception:
                log.exception("camera close() failed")
        self._cam_exec.shutdown(wait=False, cancel_futures=True)


class CameraBusy(NotReady):
    grpc_code = "UNAVAILABLE"

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("reason", "CAMERA_BUSY")
        kw.setdefault("retry_after_s", 1.0)
        super().__init__(message, **kw)
