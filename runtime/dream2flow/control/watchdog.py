"""Watchdog and pacing for the control loop.

- ``StaleStateMonitor``: the robot's state clock (``state().t_s``) must advance within
  ``stale_timeout_s``. Measured on the loop's own simulated time for simulated backends
  (deterministic) and on the wall clock for real robots.
- ``CallGuard`` + ``supervise``: on a real robot the loop runs in a worker thread while the
  calling thread supervises it. A backend call that does not return within ``hang_timeout_s``
  (or an e-stop while the worker is blocked in a call for more than one period) makes the
  supervisor stop the robot from its own thread and report the failure; the worker checks the
  abort flag under the command lock before every command, so nothing is sent after ``stop()``.
- ``WallClockPacer``: absolute deadlines t0 + k/rate; it waits on the e-stop event, so an e-stop
  wakes it immediately (an e-stop takes effect within one period).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable


class StaleStateMonitor:
    """Reports when the state timestamp stops advancing for longer than ``timeout_s``."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = float(timeout_s)
        self._last_t: float | None = None
        self._since: float | None = None

    def update(self, state_t_s: float, clock_s: float) -> str | None:
        """Feed the state's own timestamp and the watchdog clock (s); returns a reason when stale."""
        if self._last_t is None or state_t_s != self._last_t:
            self._last_t = state_t_s
            self._since = clock_s
            return None
        assert self._since is not None
        age = clock_s - self._since
        if age > self.timeout_s:
            return (f"robot state is stale: its timestamp ({state_t_s:.3f} s) has not advanced for {age:.3f} s "
                    f"(limit {self.timeout_s:g} s)")
        return None


class CallGuard:
    """Shared between the loop worker and its supervisor: which backend call is in flight and
    since when, the abort flag, and the lock under which a command is checked and sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abort_reason: str | None = None
        self.abort_kind: str | None = None
        self._call: str | None = None
        self._since = 0.0
        self._allow = 0.0

    def call(self, name: str, fn: Callable[..., Any], *args: Any, allow_s: float = 0.0) -> Any:
        """``fn(*args)`` as backend call ``name``; ``allow_s``: seconds this call may take beyond
        the hang timeout (a call that waits for the robot by design, bounded by the backend)."""
        self._since = time.monotonic()
        self._allow = max(0.0, float(allow_s))
        self._call = name
        try:
            return fn(*args)
        finally:
            self._call = None

    def in_call(self) -> tuple[str | None, float]:
        """(call in flight, seconds it has run beyond what it is allowed); (None, 0) when idle."""
        name = self._call
        return name, (time.monotonic() - self._since - self._allow) if name else 0.0

    @property
    def aborted(self) -> bool:
        return self.abort_reason is not None


def supervise(worker: Callable[[], None], guard: CallGuard, stop_backend: Callable[[], None], *,
              hang_timeout_s: float, period_s: float, stop_event: threading.Event | None) -> None:
    """Run ``worker`` in a daemon thread and watch it until it finishes or hangs. On a hang (or an
    e-stop while blocked) the abort flag is set, a command being sent is given one period to
    finish, then ``stop_backend`` is called (bounded by ``hang_timeout_s``) and this returns; the
    worker thread is left to exit when its blocked call returns, and sends nothing more."""
    done = threading.Event()
    error: list[BaseException] = []

    def body() -> None:
        try:
            worker()
        except BaseException as exc:  # surfaced in the caller's thread below
            error.append(exc)
        finally:
            done.set()

    th = threading.Thread(target=body, name="d2f-control-loop", daemon=True)
    th.start()
    poll = min(max(period_s, 0.005), hang_timeout_s / 4.0)   # light on the GIL at high loop rates
    while True:
        try:
            if done.wait(poll):
                break
        except BaseException:  # KeyboardInterrupt in the supervising thread: stop the robot first
            guard.abort_kind, guard.abort_reason = "estop", "interrupted"
            if guard.lock.acquire(timeout=max(period_s, 0.01)):
                guard.lock.release()
            _quiet(stop_backend)()
            raise
        name, elapsed = guard.in_call()
        if name is None:
            continue
        estop = stop_event is not None and stop_event.is_set()
        if elapsed > hang_timeout_s or (estop and elapsed > period_s):
            guard.abort_kind = "estop" if estop and elapsed <= hang_timeout_s else "execution"
            guard.abort_reason = (f"e-stop while backend call {name}() was blocked for {elapsed:.3f} s"
                                  if guard.abort_kind == "estop" else
                                  f"backend call {name}() did not return within {hang_timeout_s:g} s")
            # Give a command that is being sent right now one period to finish (it holds the lock),
            # so stop() normally comes after it; a hung send does not delay the stop any further.
            if guard.lock.acquire(timeout=max(period_s, 0.01)):
                guard.lock.release()
            stopper = threading.Thread(target=_quiet(stop_backend), name="d2f-control-stop", daemon=True)
            stopper.start()
            stopper.join(hang_timeout_s)
            return
    if error:
        raise error[0]


def _quiet(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:  # best effort: the failure is already being reported
            pass
    return run


class WallClockPacer:
    """Absolute-deadline pacing on ``time.monotonic``: sleep (waking on e-stop), then spin the last
    ``spin_s`` for precision."""

    def __init__(self, spin_s: float = 0.0) -> None:
        self.spin_s = float(spin_s)

    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, deadline: float, stop_event: threading.Event | None) -> bool:
        """Wait until ``deadline`` (monotonic s). Returns True if the e-stop event fired meanwhile."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bool(stop_event and stop_event.is_set())
            if remaining > self.spin_s:
                if stop_event is not None:
                    if stop_event.wait(remaining - self.spin_s):
                        return True
                else:
                    time.sleep(remaining - self.spin_s)
            else:
                if stop_event is not None and stop_event.is_set():
                    return True
                while time.monotonic() < deadline:
                    pass
                return bool(stop_event and stop_event.is_set())
