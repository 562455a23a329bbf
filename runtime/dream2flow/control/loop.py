"""The deterministic fixed-rate control loop: ``execute_plan`` and ``replay_log``.

One path from a ``Plan`` to any ``RobotBackend``:

1. read the measured joints, build the reference (move-to-start + clamped cubic spline + settle,
   ``interpolation.py``) and sample it at ``t_k = k / rate`` — the whole command stream exists
   before anything moves;
2. pre-flight: the safety layer checks every command of the stream (and that the first one is
   within ``start_tolerance_rad`` of the measured joints); a violation sends nothing;
3. run: each tick reads the state (watchdog: stale timestamp, backend errors; deviation between
   measured and the last command), checks e-stop, checks the command again, issues gripper
   events, sends the command and logs it. A failure holds position (``backend.stop()``) and
   nothing more is sent; the result says why.

Time. Simulated backends (``backend.simulated``) are advanced with ``backend.step(1/rate)`` per
tick and nothing reads the wall clock — faster than real time and bit-reproducible. Real robots
(or ``realtime=True``) run on absolute wall-clock deadlines ``t0 + k/rate``: a tick that starts
late but within its period runs at once; whole periods that were missed are skipped (counted,
logged), never sent in a burst; the plan time of a tick is always ``k/rate``.

Optional backend extensions (duck-typed, beyond ``RobotBackend``): ``max_rate_hz`` (the loop
refuses faster rates), ``tracking_lag_s`` ([7] s: the deviation check allows that many seconds
of commanded velocity on top of ``max_deviation_rad``, for impedance control without velocity
feed-forward), ``mode == "trajectory"`` with ``send_trajectory(q[M,7], dq[M,7], hz)`` and
``trajectory_hz`` (the whole resampled trajectory is sent once, then the loop only monitors),
``finish()`` (called after a successful run, e.g. to end a streaming controller),
``prepare_stream(t_s[N], q[N,7], q_measured[7]) -> reason | None`` (pre-flight: the backend
checks the whole stream against its own interface's rules, e.g. libfranka's 1 kHz continuity,
and returns a refusal reason; runs for dry runs too), ``pacer(spin_s)`` (a real robot's own
clock to pace the loop on, instead of the wall clock).

Consent. A backend that moves a real arm says so (``moves_real_arm = True``: polymetis, and any
other real-arm backend). The loop, the one path every motion takes, refuses to run such a backend
(dry runs excepted) unless the caller passes ``consent=True`` (``--yes``) or the cell's
``control.toml`` sets ``[safety] real_arm_consent = true`` (``control.consent``); nothing is
connected or sent then.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dream2flow.config import RobotLimits, load_robot_limits
from dream2flow.control.backend import RobotBackend
from dream2flow.control.command_log import LOG_DTYPE, CommandLog, CommandLogBuilder, make_log, save_command_log
from dream2flow.control.consent import require_consent
from dream2flow.control.interpolation import CommandStream, build_trajectory, dense_trajectory, sample_stream
from dream2flow.control.safety import SafetyLayer
from dream2flow.control.settings import LoopConfig, load_loop_config
from dream2flow.control.watchdog import CallGuard, StaleStateMonitor, WallClockPacer, supervise
from dream2flow.errors import Dream2FlowError, ExecutionFailed, InvalidInput, NotReady, SafetyViolation
from dream2flow.types import Plan

log = logging.getLogger("dream2flow.control.loop")

OnTick = Callable[[int, float, RobotBackend], None]


@dataclass
class ExecutionResult:
    """Outcome of one run. ``ok`` False comes with ``failure`` ("safety" | "execution" | "estop")
    and a one-sentence ``reason``. ``command_log`` [N] of ``LOG_DTYPE``: every command sent, logged
    just before it leaves (so a command whose send raised is in it; for a dry run: every command
    that would be sent). Tracking error: measured joints at tick k+1 vs the command of tick k (the
    robot has one period to follow; rad)."""

    ok: bool
    reason: str
    commands_sent: int
    missed_periods: int
    command_log: np.ndarray
    max_tracking_error_rad: float
    duration_s: float                      # plan time of the last command sent (s)
    failure: str | None = None
    tracking_error_per_joint_rad: np.ndarray = field(default_factory=lambda: np.zeros(7))
    final_error_rad: float = float("nan")  # |measured after the last tick - plan.q[-1]|, max over joints
    rate_hz: float = 100.0
    backend: str = ""
    mode: str = "stream"
    dry_run: bool = False
    start_segment_s: float = 0.0           # move-to-start duration (0 when none was needed)
    gripper_events: list[dict[str, Any]] = field(default_factory=list)
    measured_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    measured_q: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    tick_wall_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # real-time ticks: start - t0 (s)
    wall_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def raise_for_failure(self) -> None:
        """Raise ``SafetyViolation`` (safety) or ``ExecutionFailed`` (execution, e-stop) if not ok."""
        if self.ok:
            return
        if self.failure == "safety":
            raise SafetyViolation(self.reason, stage="execute")
        raise ExecutionFailed(self.reason, stage="execute")

    def save_log(self, path: str | Path) -> Path:
        """Write ``command_log`` (byte-deterministic .npz, see ``command_log.py``)."""
        return save_command_log(path, self.command_log, rate_hz=self.rate_hz, meta=self.meta)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (no arrays)."""
        return {
            "ok": self.ok, "reason": self.reason, "failure": self.failure, "backend": self.backend,
            "mode": self.mode, "dry_run": self.dry_run, "rate_hz": self.rate_hz,
            "commands_sent": self.commands_sent, "missed_periods": self.missed_periods,
            "duration_s": self.duration_s, "wall_s": self.wall_s, "start_segment_s": self.start_segment_s,
            "max_tracking_error_rad": self.max_tracking_error_rad,
            "tracking_error_per_joint_rad": [float(x) for x in self.tracking_error_per_joint_rad],
            "final_error_rad": self.final_error_rad, "gripper_events": self.gripper_events,
        }


class _Aborted(Exception):
    """The supervisor aborted the run while the worker was blocked; exit without sending."""


def plan_digest(plan: Plan) -> str:
    h = hashlib.sha256()
    for arr in (plan.q, np.float64(plan.dt_s), plan.gripper):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _check_rate(rate_hz: float, backend: Any) -> float:
    rate = float(rate_hz)
    if not (math.isfinite(rate) and 1.0 <= rate <= 1000.0):
        raise InvalidInput(f"control rate must be in [1, 1000] Hz, got {rate_hz}")
    max_rate = getattr(backend, "max_rate_hz", None)
    if max_rate is not None and rate > float(max_rate):
        raise InvalidInput(f"backend '{getattr(backend, 'name', '?')}' accepts at most {float(max_rate):g} Hz, "
                           f"got --rate {rate:g}")
    return rate


def check_consent(backend: Any, config: LoopConfig, consent: bool, dry_run: bool) -> None:
    """Raise ``InvalidInput`` when ``backend`` would move a real arm without consent (module
    docstring; ``control.consent``); called before anything is connected or sent."""
    if dry_run:
        return
    require_consent(backend, yes=consent, config_consent=config.real_arm_consent,
                    how=f"--yes (or [safety] real_arm_consent = true in {config.source} for an unattended cell)")


def _initial_state(backend: Any) -> Any:
    try:
        backend.connect()
        st = backend.state()
    except Dream2FlowError:
        raise
    except Exception as exc:
        raise NotReady(f"could not read the robot state from backend '{getattr(backend, 'name', '?')}': "
                       f"{type(exc).__name__}: {exc}") from None
    q = np.asarray(st.q, dtype=np.float64)
    if q.shape != (7,) or not np.isfinite(q).all():
        raise NotReady(f"backend '{getattr(backend, 'name', '?')}' reports joints that are not 7 finite numbers: {q}")
    return st


def execute_plan(plan: Plan, backend: RobotBackend, *, rate_hz: float | None = None, dry_run: bool = False,
                 config: LoopConfig | None = None, stop_event: threading.Event | None = None,
                 on_tick: OnTick | None = None, realtime: bool = False, limits: RobotLimits | None = None,
                 pacer: Any = None, consent: bool = False) -> ExecutionResult:
    """Execute ``plan`` on ``backend`` through the safety layer (module docstring).

    ``rate_hz`` defaults to ``config.rate_hz`` (``hw/robot/control.toml``). ``dry_run``: connect and
    read the state, build and pre-flight-check the stream, send nothing (the result's log holds
    what would be sent). ``stop_event``: set it from any thread to e-stop (takes effect within one
    period). ``on_tick(tick, t_s, backend)`` runs after each command. ``realtime`` paces a simulated
    backend on the wall clock too (benchmarks). ``pacer``: clock/wait object (tests). ``consent``:
    the operator's ``--yes`` for a real-arm backend (module docstring).
    Raises ``NotReady`` (cannot connect/read state) or ``InvalidInput`` (bad rate, no consent);
    every other failure is a result with ``ok=False``."""
    if not isinstance(plan, Plan):
        raise InvalidInput(f"execute_plan needs a Plan, got {type(plan).__name__}")
    cfg = config or load_loop_config()
    check_consent(backend, cfg, consent, dry_run)
    rate = _check_rate(rate_hz if rate_hz is not None else cfg.rate_hz, backend)
    lim = limits or load_robot_limits()
    st0 = _initial_state(backend)
    traj = build_trajectory(plan, st0.q, lim, cfg)
    safety = SafetyLayer(lim, cfg)
    refused = safety.check_start(st0.q, plan.q[0], traj.start_segment_s)
    stream = sample_stream(traj, rate)
    trajectory_mode = getattr(backend, "mode", "stream") == "trajectory" and hasattr(backend, "send_trajectory")
    meta = {"backend": getattr(backend, "name", "?"), "mode": "trajectory" if trajectory_mode else "stream",
            "rate_hz": rate, "plan_sha256_16": plan_digest(plan), "plan_horizon": plan.horizon,
            "plan_dt_s": float(plan.dt_s), "start_segment_s": traj.start_segment_s}
    dense = None
    if trajectory_mode:
        hz = float(getattr(backend, "trajectory_hz", 1000.0))
        dq_, dv_ = dense_trajectory(traj, hz)
        dense = (dq_, dv_, hz)
    if refused is not None:
        return _failed_preflight(f"pre-flight: {refused}; nothing was sent", rate, backend, meta)
    runner = _Runner(backend, stream, safety, cfg, q_rest=np.asarray(st0.q, dtype=np.float64),
                     stop_event=stop_event, on_tick=on_tick, realtime=realtime, pacer=pacer, dense=dense,
                     open_width_m=lim.gripper_max_width_m, meta=meta, q_final=plan.q[-1])
    return runner.execute(dry_run=dry_run)


def preflight(plan: Plan, q_start: np.ndarray, *, rate_hz: float | None = None, config: LoopConfig | None = None,
              limits: RobotLimits | None = None) -> str | None:
    """The loop's pre-flight check without a robot: the first violation the safety layer would
    refuse for ``plan`` started from joints ``q_start`` [7] rad (interpolated stream included),
    or None. Planners call it so that a plan they return is one the loop will run."""
    return preflight_usage(plan, q_start, rate_hz=rate_hz, config=config, limits=limits, usage=False)[0]


def preflight_usage(plan: Plan, q_start: np.ndarray, *, rate_hz: float | None = None,
                    config: LoopConfig | None = None, limits: RobotLimits | None = None,
                    usage: bool = True) -> tuple[str | None, dict[str, float] | None]:
    """``preflight`` and, with ``usage``, the stream's largest velocity / acceleration / jerk as
    fractions of the loop's limits (``SafetyLayer.stream_usage``): a planner computes from them the
    time scaling that passes, instead of guessing (``None`` when the move-to-start is refused)."""
    cfg = config or load_loop_config()
    lim = limits or load_robot_limits()
    rate = float(rate_hz if rate_hz is not None else cfg.rate_hz)
    q_start = np.asarray(q_start, dtype=np.float64)
    traj = build_trajectory(plan, q_start, lim, cfg)
    safety = SafetyLayer(lim, cfg)
    refused = safety.check_start(q_start, plan.q[0], traj.start_segment_s)
    if refused is not None:
        return refused, None
    stream = sample_stream(traj, rate)
    violation = safety.check_stream(stream.t_s, stream.q, q_start, cfg.start_tolerance_rad, 1.0 / rate)
    return violation, (safety.stream_usage(stream.t_s, stream.q, 1.0 / rate) if usage else None)


def replay_log(log_: CommandLog, backend: RobotBackend, *, rate_hz: float | None = None, dry_run: bool = False,
               config: LoopConfig | None = None, stop_event: threading.Event | None = None,
               on_tick: OnTick | None = None, realtime: bool = False, limits: RobotLimits | None = None,
               pacer: Any = None, consent: bool = False) -> ExecutionResult:
    """Re-send the commands of a log at their ticks through the same loop and safety layer
    (always streamed). The robot must be at the log's first command (within ``start_tolerance_rad``);
    from the same start, the replay's own log equals the original bit for bit."""
    cfg = config or load_loop_config()
    check_consent(backend, cfg, consent, dry_run)
    rate = _check_rate(rate_hz if rate_hz is not None else log_.rate_hz, backend)
    lim = limits or load_robot_limits()
    rec = np.asarray(log_.records)
    if rec.dtype != LOG_DTYPE or rec.size == 0:
        raise InvalidInput("replay needs a non-empty command log")
    if (np.diff(rec["tick"]) <= 0).any():
        raise InvalidInput("command log ticks must increase")
    st0 = _initial_state(backend)
    meta = dict(log_.meta)
    meta.update({"backend": getattr(backend, "name", "?"), "mode": "stream", "rate_hz": rate, "replay": True})
    tick = rec["tick"] - rec["tick"][0]
    stream = CommandStream(rate_hz=rate, tick=tick, t_s=tick / rate, q=rec["q"].copy(),
                           gripper=rec["gripper"].copy())
    runner = _Runner(backend, stream, SafetyLayer(lim, cfg), cfg, q_rest=np.asarray(st0.q, dtype=np.float64),
                     stop_event=stop_event, on_tick=on_tick, realtime=realtime, pacer=pacer, dense=None,
                     open_width_m=lim.gripper_max_width_m, meta=meta, q_final=rec["q"][-1])
    return runner.execute(dry_run=dry_run)


def _failed_preflight(reason: str, rate: float, backend: Any, meta: dict[str, Any]) -> ExecutionResult:
    return ExecutionResult(ok=False, reason=reason, failure="safety", commands_sent=0, missed_periods=0,
                           command_log=np.zeros(0, dtype=LOG_DTYPE), max_tracking_error_rad=0.0, duration_s=0.0,
                           rate_hz=rate, backend=getattr(backend, "name", "?"), meta=meta)


class _Runner:
    """One run's state. ``execute`` does pre-flight, then the tick loop (inline for simulated
    backends, in a supervised worker thread for real-time runs)."""

    def __init__(self, backend: Any, stream: CommandStream, safety: SafetyLayer, cfg: LoopConfig, *,
                 q_rest: np.ndarray, stop_event: threading.Event | None, on_tick: OnTick | None, realtime: bool,
                 pacer: Any, dense: tuple[np.ndarray, np.ndarray, float] | None, open_width_m: float,
                 meta: dict[str, Any], q_final: np.ndarray) -> None:
        self.backend = backend
        self.stream = stream
        self.safety = safety
        self.cfg = cfg
        self.q_rest = q_rest
        self.stop_event = stop_event
        self.on_tick = on_tick
        self.simulated = bool(getattr(backend, "simulated", False))
        self.paced = (not self.simulated) or realtime or pacer is not None
        backend_pacer = getattr(backend, "pacer", None) if (pacer is None and not self.simulated) else None
        self.pacer = pacer if pacer is not None else (
            backend_pacer(cfg.spin_s) if callable(backend_pacer) else WallClockPacer(cfg.spin_s) if self.paced else None)
        self.dense = dense
        self.open_width_m = open_width_m
        self.meta = meta
        self.q_final = np.asarray(q_final, dtype=np.float64)
        self.rate = stream.rate_hz
        # Known steady lag of the backend behind a moving target (s, per joint); 0 unless declared.
        lag = getattr(backend, "tracking_lag_s", 0.0) if dense is None else 0.0
        self.lag_s = np.broadcast_to(np.asarray(lag, dtype=np.float64), (7,)).copy()
        n = len(stream)
        self.guard = CallGuard()
        self.log = CommandLogBuilder(n)
        self.measured_t = np.full(n + 1, np.nan)
        self.measured_q = np.full((n + 1, 7), np.nan)
        self.n_measured = 0
        self.tick_wall = np.full(n, np.nan)
        self.n_wall = 0
        self.track_err = np.zeros(7)
        self.missed = 0
        self.skip_events = 0
        self.gripper_events: list[dict[str, Any]] = []
        self.failure: str | None = None
        self.reason = ""
        self.final_error = float("nan")

    # -- helpers ---------------------------------------------------------------------------
    def _call(self, name: str, *args: Any, allow_s: float = 0.0) -> Any:
        if self.guard.aborted:
            raise _Aborted()
        out = self.guard.call(name, getattr(self.backend, name), *args, allow_s=allow_s)
        if self.guard.aborted:
            raise _Aborted()
        return out

    def _fail(self, kind: str, reason: str) -> None:
        """Record the failure and hold position; nothing is sent after this."""
        self.failure, self.reason = kind, reason
        log.warning("control loop stopped (%s): %s", kind, reason)
        if self.guard.aborted:
            return
        with self.guard.lock:
            try:
                self.guard.call("stop", self.backend.stop)
            except Exception as exc:  # the robot side must also stop on its own; report both
                self.reason = f"{reason}; and stop() raised {type(exc).__name__}: {exc}"
        # The robot's own verdict comes first: a reflex (libfranka) that ended the motion while
        # the loop stopped for a symptom of it (e.g. the stale state of a stalled stream) is the
        # reason the operator must see.
        fault = getattr(self.backend, "fault", None)
        if isinstance(fault, str) and fault and fault not in self.reason:
            self.failure, self.reason = "execution", f"{fault} (the control loop stopped on: {self.reason})"

    def _measure(self, t_s: float, last_cmd: np.ndarray | None) -> Any:
        st = self._call("state")
        q = np.asarray(st.q, dtype=np.float64)
        k = self.n_measured
        self.measured_t[k] = t_s
        if q.shape == (7,):
            self.measured_q[k] = q
        self.n_measured += 1
        if last_cmd is not None and q.shape == (7,) and np.isfinite(q).all():
            np.maximum(self.track_err, self.safety.deviation(q, last_cmd), out=self.track_err)
        return st

    # -- the run ---------------------------------------------------------------------------
    def execute(self, *, dry_run: bool) -> ExecutionResult:
        s = self.stream
        tol = self.cfg.start_tolerance_rad
        violation = self.safety.check_stream(s.t_s, s.q, self.q_rest, tol, 1.0 / self.rate)
        if violation is None and self.dense is not None:
            dq, _, hz = self.dense
            violation = self.safety.check_stream(np.arange(len(dq)) / hz, dq, self.q_rest, tol, 1.0 / hz)
        prepare = getattr(self.backend, "prepare_stream", None)
        if violation is None and callable(prepare):
            try:
                violation = prepare(s.t_s, s.q, self.q_rest)
            except Dream2FlowError:
                raise
            except Exception as exc:
                raise NotReady(f"backend '{getattr(self.backend, 'name', '?')}' could not prepare the stream: "
                               f"{type(exc).__name__}: {exc}") from None
        if violation is not None:
            return _failed_preflight(f"pre-flight: {violation}; nothing was sent", self.rate, self.backend, self.meta)
        if dry_run:
            res = self._result(wall_s=0.0)
            res.command_log = make_log(s.tick, s.t_s, s.q, s.gripper)
            res.commands_sent = 0
            res.dry_run = True
            res.duration_s = float(s.t_s[-1])
            res.reason = f"dry run: {len(s)} commands passed pre-flight; nothing was sent"
            return res
        wall0 = time.perf_counter()
        if self.paced and not getattr(self.pacer, "inline", False):
            supervise(self._run_quietly, self.guard, self.backend.stop, hang_timeout_s=self.cfg.hang_timeout_s,
                      period_s=1.0 / self.rate, stop_event=self.stop_event)
            if self.guard.aborted and self.failure is None:
                self.failure, self.reason = self.guard.abort_kind or "execution", self.guard.abort_reason or "aborted"
                log.warning("control loop aborted by its supervisor: %s", self.reason)
        else:
            self._run_quietly()
        return self._result(wall_s=time.perf_counter() - wall0)

    def _run_quietly(self) -> None:
        try:
            self._run()
        except _Aborted:
            return

    def _run(self) -> None:
        s, rate, cfg = self.stream, self.rate, self.cfg
        n = len(s)
        period = 1.0 / rate
        t_h, q_h = SafetyLayer.history(float(s.t_s[0]), s.q[0], period)
        hist_t = np.append(t_h, 0.0)           # 3 commands sent + a slot for the candidate
        hist_q = np.vstack([q_h, q_h[-1]])
        monitor = StaleStateMonitor(cfg.stale_timeout_s)
        gripper_state = 0.0
        last_cmd: np.ndarray | None = None
        try:
            if self.dense is not None:
                dq, dv, hz = self.dense
                with self.guard.lock:
                    self._call("send_trajectory", dq, dv, hz)
            t0 = self.pacer.now() if self.paced else 0.0
        except _Aborted:
            raise
        except Exception as exc:
            self._fail("execution", _describe(exc, "send_trajectory"))
            return
        i = 0
        while True:
            t_plan = float(s.t_s[i])
            clock = (self.pacer.now() - t0) if self.paced else float(s.tick[i]) / rate
            if self.paced and self.n_wall < self.tick_wall.size:
                self.tick_wall[self.n_wall] = clock
                self.n_wall += 1
            try:
                st = self._measure(t_plan, last_cmd)
            except _Aborted:
                raise
            except Exception as exc:
                self._fail("execution", _describe(exc, "state"))
                return
            if self.stop_event is not None and self.stop_event.is_set():
                self._fail("estop", f"e-stop requested at t={t_plan:.3f} s")
                return
            stale = monitor.update(float(st.t_s), clock)
            if stale:
                self._fail("execution", f"{stale} at t={t_plan:.3f} s")
                return
            if last_cmd is not None:
                bad = self.safety.check_deviation(st.q, last_cmd, t_plan,
                                                  SafetyLayer.lag_allowance(self.lag_s, hist_t[1:3], hist_q[1:3]))
                if bad:
                    self._fail("safety", bad)
                    return
            q = s.q[i]
            hist_t[3], hist_q[3] = t_plan, q
            bad = self.safety.check_next(hist_t, hist_q)
            if bad:
                self._fail("safety", bad)
                return
            g = float(s.gripper[i])
            try:
                with self.guard.lock:
                    if self.guard.aborted:
                        raise _Aborted()
                    if g != gripper_state:
                        grasp = g > 0.5
                        self.gripper_events.append({"tick": int(s.tick[i]), "t_s": t_plan,
                                                    "action": "grasp" if grasp else "open"})
                        if grasp:
                            self._call("gripper", None, True)
                        else:
                            self._call("gripper", self.open_width_m, False)
                        gripper_state = g
                    self.log.append(int(s.tick[i]), t_plan, q, g)
                    if self.dense is None:
                        self._call("command_joint_positions", q.copy())
            except _Aborted:
                raise
            except Exception as exc:
                self._fail("execution", _describe(exc, "command"))
                return
            last_cmd = q
            hist_t[:3], hist_q[:3] = hist_t[1:], hist_q[1:]     # shift: the candidate became the last sent
            if self.on_tick is not None:
                try:
                    self.on_tick(int(s.tick[i]), t_plan, self.backend)
                except Exception as exc:
                    self._fail("execution", f"on_tick callback raised {type(exc).__name__}: {exc}")
                    return
            # -- advance time -------------------------------------------------------------
            last = i == n - 1
            nxt = i + 1
            try:
                if not self.paced:
                    self._call("step", period * float((s.tick[nxt] - s.tick[i]) if not last else 1))
                else:
                    target_tick = s.tick[nxt] if not last else s.tick[i] + 1
                    # An e-stop wakes the wait; the next tick sees it before it sends anything.
                    self.pacer.wait_until(t0 + float(target_tick) / rate, self.stop_event)
                    if not last:
                        now_tick = math.floor((self.pacer.now() - t0) * rate)
                        if now_tick > s.tick[nxt]:
                            j = int(np.searchsorted(s.tick, now_tick, side="right") - 1)
                            j = min(max(j, nxt), n - 1)
                            skipped = j - nxt
                            if skipped > 0:
                                self.missed += skipped
                                self.skip_events += 1
                                (log.warning if self.skip_events <= 10 else log.debug)(
                                    "control loop late: skipped %d period(s) before tick %d", skipped, int(s.tick[j]))
                                nxt = j
                    if self.simulated:
                        dt = (float(s.tick[nxt] - s.tick[i]) if not last else 1.0) * period
                        self._call("step", dt)
            except _Aborted:
                raise
            except Exception as exc:
                self._fail("execution", _describe(exc, "step"))
                return
            if last:
                break
            i = nxt
        # final measurement: one period after the last command
        t_end = float(s.t_s[-1]) + period
        try:
            st = self._measure(t_end, last_cmd)
        except _Aborted:
            raise
        except Exception as exc:
            self._fail("execution", _describe(exc, "state"))
            return
        q_end = np.asarray(st.q, dtype=np.float64)
        if last_cmd is not None:
            bad = self.safety.check_deviation(q_end, last_cmd, t_end,
                                              SafetyLayer.lag_allowance(self.lag_s, hist_t[1:3], hist_q[1:3]))
            if bad:
                self._fail("safety", bad)
                return
        self.final_error = float(np.abs(q_end - self.q_final).max())
        if self.stop_event is not None and self.stop_event.is_set():
            self._fail("estop", f"e-stop requested at t={t_end:.3f} s (after the last command)")
            return
        finish = getattr(self.backend, "finish", None)
        if callable(finish):
            try:
                # finish() waits for the robot by design (a streamed path's end, the gripper); the
                # backend bounds that wait and says how long it may take beyond the hang timeout
                bound = getattr(self.backend, "finish_bound_s", None)
                with self.guard.lock:
                    self._call("finish", allow_s=float(bound()) if callable(bound) else 0.0)
            except _Aborted:
                raise
            except Exception as exc:
                self._fail("execution", _describe(exc, "finish"))

    def _result(self, wall_s: float) -> ExecutionResult:
        recs = self.log.records()
        ok = self.failure is None
        return ExecutionResult(
            ok=ok, reason="completed" if ok else self.reason, failure=self.failure,
            commands_sent=int(recs.size), missed_periods=self.missed, command_log=recs,
            max_tracking_error_rad=float(self.track_err.max()), duration_s=float(recs["t_s"][-1]) if recs.size else 0.0,
            tracking_error_per_joint_rad=self.track_err.copy(), final_error_rad=self.final_error, rate_hz=self.rate,
            backend=str(getattr(self.backend, "name", "?")), mode=self.meta.get("mode", "stream"),
            start_segment_s=float(self.stream.start_segment_s), gripper_events=list(self.gripper_events),
            measured_t_s=self.measured_t[: self.n_measured].copy(), measured_q=self.measured_q[: self.n_measured].copy(),
            tick_wall_s=self.tick_wall[: self.n_wall].copy(), wall_s=wall_s, meta=dict(self.meta))


def _describe(exc: BaseException, where: str) -> str:
    msg = exc.message if isinstance(exc, Dream2FlowError) else str(exc)
    return f"backend error in {where}: {type(exc).__name__}: {msg}".rstrip(": ")
