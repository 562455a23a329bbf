"""The 1 kHz joint-position path a Franka streams through libfranka, and libfranka's checks on it.

Why a separate 1 kHz path: the control loop sends targets at 50–1000 Hz and checks them with
its own finite differences at that rate, but the robot judges every 1 ms command (FCI "Joint
trajectory requirements"): position inside the joint range, velocity inside the limit (the
FR3's position-based envelope), acceleration and jerk under the limits, all by backward
differences of consecutive commands, and rest (zero velocity and acceleration) at the start
and at the end. A step that is harmless at 100 Hz can be a 10x larger jerk at 1 kHz, so the
backend interpolates the loop's whole stream before it moves and refuses it when a 1 ms
sample would break what libfranka enforces (``check_1khz``) — the robot's reflex is never the
check. Interpolation: a quintic spline through the loop's samples (C4, exact at every sample)
with zero velocity and acceleration at both ends; at 1 kHz the samples are used as they are.

Also here, pure NumPy so it is tested without a robot: ``start_blend`` (the first 1 kHz
command must be exactly where the robot is: the loop's first target may differ from it by up
to its start tolerance) and ``SmoothStop`` (ends a motion from any commanded state with
bounded acceleration and jerk, per joint, so ``motion_finished`` is sent at rest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dream2flow.config import RobotLimits

if TYPE_CHECKING:
    from jaxtyping import Float

DT_S = 1e-3                    # the FCI's control period
START_BLEND_S = 0.1            # the measured-vs-first-target offset is blended out over this
REST_TOL = 1e-9                # |dq| (rad/s) and |ddq| counted as "at rest" at the end of a path
# the robot's reference (q_d, dq_d, ddq_d) comes back as float32: what "the same" means per field
Q_D_TOL_RAD = 3e-7             # half an ulp at |q| < 4 rad is 2.4e-7 rad
DQ_D_TOL = 1e-6                # rad/s (|dq| < 3 rad/s: float32 error < 2e-7)
DDQ_D_TOL = 2e-5               # rad/s^2 (the acceleration differenced from float64 commands, then rounded)
DROPPED_MAX = 3                # how many of our latest commands the robot may have dropped (searched)

# libfranka's reflex names for each check (franka::Errors members), so a refusal names what the
# robot would have raised.
REFLEX = {
    "position": "joint_motion_generator_position_limits_violation",
    "velocity": "joint_motion_generator_velocity_limits_violation",
    "acceleration": "joint_motion_generator_velocity_discontinuity",
    "jerk": "joint_motion_generator_acceleration_discontinuity",
}


def interpolate_stream(t_s: Float[np.ndarray, "N"], q: Float[np.ndarray, "N 7"]) -> np.ndarray:
    """The loop's stream (samples ``q`` [N,7] rad at times ``t_s`` [N] s, t_s[0] = 0, evenly
    spaced) resampled every 1 ms: [M,7] with M = round(t_s[-1] / 1 ms) + 1. A stream already at
    1 kHz is returned as it is."""
    t_s = np.asarray(t_s, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if t_s.ndim != 1 or q.shape != (t_s.size, 7) or t_s.size == 0:
        raise ValueError(f"stream must be t [N] and q [N,7], got {list(t_s.shape)} and {list(q.shape)}")
    m = int(round(float(t_s[-1]) / DT_S)) + 1
    if t_s.size == m and np.allclose(t_s, np.arange(m) * DT_S, rtol=0.0, atol=1e-9):
        return q.copy()
    if t_s.size < 6:  # too short for a quintic: the loop never sends this little, pad by holding
        t_s = np.concatenate([t_s, t_s[-1] + np.arange(1, 7 - t_s.size) * (t_s[-1] - t_s[0] + 1.0)])
        q = np.concatenate([q, np.repeat(q[-1:], t_s.size - q.shape[0], axis=0)])
    from scipy.interpolate import make_interp_spline

    zero = [(1, np.zeros(7)), (2, np.zeros(7))]
    spline = make_interp_spline(t_s, q, k=5, bc_type=(zero, zero), axis=0)
    out = spline(np.arange(m) * DT_S)
    # the spline is exact at the samples up to rounding; make the 1 kHz samples that coincide
    # with a loop sample bit-equal to it (the loop's targets are what it checked)
    idx = np.rint(t_s / DT_S).astype(np.int64)
    ok = (idx >= 0) & (idx < m) & (np.abs(idx * DT_S - t_s) < 1e-9)
    out[idx[ok]] = q[ok]
    return out


def start_blend(offset: Float[np.ndarray, "7"], n: int | None = None) -> np.ndarray:
    """Offsets [n,7] to add to the first n 1 kHz samples so that the path starts at
    ``path[0] + offset`` (where the robot is) and joins the path with zero velocity and
    acceleration: a min-jerk fade of ``offset`` to 0 over ``START_BLEND_S``."""
    return fade(offset, np.zeros(7), np.zeros(7), START_BLEND_S if n is None else n * DT_S)


def fade(e0: np.ndarray, ev: np.ndarray, ea: np.ndarray, duration_s: float) -> np.ndarray:
    """Offsets [n,7] (n = duration / 1 ms) of the quintic that starts at offset ``e0`` [7] with
    velocity ``ev`` and acceleration ``ea`` and reaches zero offset, velocity and acceleration at
    ``duration_s``: how a command stream rejoins the path smoothly."""
    n = max(1, int(round(duration_s / DT_S)))
    T = n * DT_S
    e0, ev, ea = (np.asarray(x, dtype=np.float64)[None, :] for x in (e0, ev, ea))
    c3 = (-20.0 * e0 - 12.0 * ev * T - 3.0 * ea * T * T) / (2.0 * T ** 3)
    c4 = (30.0 * e0 + 16.0 * ev * T + 3.0 * ea * T * T) / (2.0 * T ** 4)
    c5 = (-12.0 * e0 - 6.0 * ev * T - ea * T * T) / (2.0 * T ** 5)
    t = (np.arange(n, dtype=np.float64) * DT_S)[:, None]
    return e0 + ev * t + 0.5 * ea * t * t + c3 * t ** 3 + c4 * t ** 4 + c5 * t ** 5


@dataclass(frozen=True)
class Violation:
    """What libfranka would reject: ``kind`` (position | velocity | acceleration | jerk | rest),
    1 kHz sample index, joint (0-based), the value and the limit (SI units)."""

    kind: str
    index: int
    joint: int
    value: float
    limit: float

    def describe(self, t0_s: float = 0.0) -> str:
        unit = {"position": "rad", "velocity": "rad/s", "acceleration": "rad/s^2", "jerk": "rad/s^3",
                "rest": "rad/s"}[self.kind]
        name = REFLEX.get(self.kind, "motion must end at rest")
        t = t0_s + self.index * DT_S
        if self.kind == "rest":
            return (f"the 1 kHz path does not end at rest (joint {self.joint + 1} still moves at {self.value:.3g} rad/s): "
                    f"libfranka needs zero velocity and acceleration when the motion finishes")
        return (f"joint {self.joint + 1} {self.kind} {self.value:.4g} {unit} at t={t:.3f} s breaks libfranka's limit "
                f"{self.limit:.4g} {unit} at 1 kHz (the robot would stop with {name})")


def check_1khz(path: Float[np.ndarray, "M 7"], limits: RobotLimits, *, q_start: np.ndarray | None = None,
               history: np.ndarray | None = None, require_rest: bool = True, eps: float = 1e-3) -> Violation | None:
    """First sample of a 1 kHz command path ``path`` [M,7] that libfranka would reject, or None.

    The robot differences consecutive commands: velocity v_k = (q_k - q_{k-1})/1 ms, acceleration
    and jerk likewise, with the robot at rest at ``q_start`` (default ``path[0]``) before the first
    command. ``eps`` (libfranka's ``kLimitEps``) keeps the stream that much inside each limit, as
    libfranka's own rate limiter aims. The path must end at rest. Position limits are Franka's
    published joint range; the velocity limit is the FR3's position-based envelope (evaluated at
    the previous command) or the Panda's constant limit. ``history`` [3,7]: the three commands
    sent before ``path`` (instead of rest at ``q_start``); ``require_rest`` False checks a piece
    of a path that goes on."""
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != 7 or path.shape[0] == 0:
        raise ValueError(f"path must be [M,7], got {list(path.shape)}")
    if history is None:
        q0 = path[0] if q_start is None else np.asarray(q_start, dtype=np.float64)
        history = np.repeat(q0[None], 3, axis=0)                         # 3 samples of rest first
    full = np.concatenate([np.asarray(history, dtype=np.float64).reshape(3, 7), path])
    if not np.isfinite(full).all():
        k = int(np.argmax(~np.isfinite(full).all(axis=1)))
        return Violation("position", max(k - 3, 0), int(np.argmax(~np.isfinite(full[k]))), float("nan"), 0.0)
    hits: list[Violation] = []
    bad = (path < limits.q_min) | (path > limits.q_max)
    if bad.any():
        i, j = _first(bad)
        lim = limits.q_max[j] if path[i, j] > limits.q_max[j] else limits.q_min[j]
        hits.append(Violation("position", i, j, float(path[i, j]), float(lim)))
    v = np.diff(full, axis=0) / DT_S                       # v[r]: command r+1 of full (r >= 2: path sample r-2)
    a = np.diff(v, axis=0) / DT_S
    jk = np.diff(a, axis=0) / DT_S
    lo, hi = limits.velocity_bounds(full[:-1])             # at the previous command
    vp, lop, hip = v[2:], lo[2:], hi[2:]
    bad = (vp > hip - eps) & (vp > 0) | (vp < lop + eps) & (vp < 0)
    if bad.any():
        i, j = _first(bad)
        hits.append(Violation("velocity", i, j, float(vp[i, j]), float(hip[i, j] if vp[i, j] > 0 else lop[i, j])))
    ap = a[1:]
    bad = np.abs(ap) > limits.ddq_max - eps
    if bad.any():
        i, j = _first(bad)
        hits.append(Violation("acceleration", i, j, float(ap[i, j]), float(limits.ddq_max[j])))
    bad = np.abs(jk) > limits.dddq_max - eps
    if bad.any():
        i, j = _first(bad)
        hits.append(Violation("jerk", i, j, float(jk[i, j]), float(limits.dddq_max[j])))
    if hits:
        return min(hits, key=lambda h: h.index)
    if not require_rest:
        return None
    end_v, end_a = v[-1], a[-1]
    if (np.abs(end_v) > REST_TOL).any() or (np.abs(end_a) > REST_TOL / DT_S).any():
        j = int(np.argmax(np.abs(end_v)))
        return Violation("rest", path.shape[0] - 1, j, float(end_v[j]), 0.0)
    return None


class SmoothStop:
    """Brings each joint from a commanded state (q, dq, ddq) to rest with |ddq| <= ``acc`` and
    |dddq| <= ``jerk`` (per joint [7]), one 1 kHz command per ``step()``.

    The integrator makes the robot's backward differences of the commands exactly the state:
    ddq_k = ddq_{k-1} + j_k·dt, dq_k = dq_{k-1} + ddq_k·dt, q_k = q_{k-1} + dq_k·dt, so the jerk
    the robot sees is |j_k| <= ``jerk``. Each step picks, per joint, the acceleration (within one
    jerk step of the last, and within ``acc``) after which ramping the acceleration back to zero
    at full jerk lands the velocity exactly on zero; when no such acceleration is reachable yet it
    brakes as hard as allowed. ``done`` once every joint is at rest."""

    def __init__(self, q: np.ndarray, dq: np.ndarray, ddq: np.ndarray, acc: np.ndarray, jerk: np.ndarray) -> None:
        self.q = [float(x) for x in np.asarray(q, dtype=np.float64)]
        self.dq = [float(x) for x in np.asarray(dq, dtype=np.float64)]
        self.ddq = [float(x) for x in np.asarray(ddq, dtype=np.float64)]
        self.acc = [float(x) for x in np.broadcast_to(np.asarray(acc, dtype=np.float64), (7,))]
        self.jerk = [float(x) for x in np.broadcast_to(np.asarray(jerk, dtype=np.float64), (7,))]
        self.steps = 0

    @property
    def done(self) -> bool:
        return all(v == 0.0 for v in self.dq) and all(a == 0.0 for a in self.ddq)

    def step(self) -> np.ndarray:
        """The next 1 kHz command [7] (rad)."""
        dt = DT_S
        for j in range(7):
            v, a = self.dq[j], self.ddq[j]
            if v == 0.0 and a == 0.0:
                continue
            a_new = _brake_accel(v, a, dt, self.jerk[j], self.acc[j])
            v_new = v + a_new * dt
            if abs(v_new) < 1e-12 and abs(a_new) < 1e-9:
                v_new, a_new = 0.0, 0.0
            self.q[j] += v_new * dt
            self.dq[j], self.ddq[j] = v_new, a_new
        self.steps += 1
        return np.array(self.q)


def _ramp_end_velocity(v: float, x: float, dt: float, d: float) -> float:
    """Velocity after setting the acceleration to ``x`` now and then ramping it to zero by ``d``
    per step (the last step straight to zero)."""
    ax = abs(x)
    n = int(ax // d)
    if n > 0 and n * d >= ax:       # exact multiple: the n-th ramp step is already zero
        n -= 1
    g = dt * (n * ax - d * n * (n + 1) / 2.0)
    return v + x * dt + (g if x >= 0 else -g)


def _brake_accel(v: float, a: float, dt: float, jerk: float, acc: float) -> float:
    """The next acceleration of one braking joint (see ``SmoothStop``)."""
    d = jerk * dt
    cap = max(acc, abs(a))                      # an acceleration above the cap may only shrink
    lo, hi = max(a - d, -cap), min(a + d, cap)
    f_lo, f_hi = _ramp_end_velocity(v, lo, dt, d), _ramp_end_velocity(v, hi, dt, d)
    if f_lo >= 0.0:
        return lo
    if f_hi <= 0.0:
        return hi
    # f is continuous, increasing and linear between multiples of d: find the root exactly
    pts = [lo] + [k * d for k in range(math.ceil(lo / d), math.floor(hi / d) + 1) if lo < k * d < hi] + [hi]
    x0, f0 = pts[0], f_lo
    for x1 in pts[1:]:
        f1 = _ramp_end_velocity(v, x1, dt, d)
        if f1 >= 0.0:
            return x0 if f1 == f0 else x0 + (x1 - x0) * (-f0) / (f1 - f0)
        x0, f0 = x1, f1
    return hi


class StreamPlayer:
    """Turns a checked 1 kHz path into the command of each FCI cycle — the logic of the libfranka
    backend's 1 kHz process, without any I/O (so it is tested without a robot).

    It keeps the backward differences of what it has commanded (q, dq, ddq). Per cycle
    (``next(n, released_t, all_released, stop)``, ``n`` = cycles since the last one):

    - start: the first command is ``q_start`` (the robot's ``q_d``); the offset to the path is
      faded out (``fade``, zero velocity and acceleration at both ends) and checked;
    - normal: the path sample at the elapsed time (plus a fading offset, if any);
    - a gap (``n`` > 1: this process missed cycles, the robot extrapolated them at constant
      acceleration) or a command the robot never took (it arrived after its 1 ms window: the FCI
      drops it and extrapolates that cycle too): continue the robot's extrapolation for this
      cycle — so the robot sees no jump — and fade the difference to the path out over
      ``rejoin_s``; the rejoin is checked like the path, and if it would break a limit the arm is
      stopped instead. Which commands the robot took is read from the state's ``q_d`` (the
      reference it applied last, float32 on the wire) when it is given: a micro-radian mismatch
      in the assumed history is a jerk of thousands of rad/s^3 at 1 kHz;
    - the loop stopped releasing targets (``max_lead_s`` past the last released one), or
      ``stop``: ``SmoothStop`` from the current state; ``finished`` when at rest;
    - the end of the path (at rest): ``finished``.
    ``reason`` says why it stopped, ``t_s`` is the path time reached."""

    def __init__(self, path: Float[np.ndarray, "M 7"], q_start: np.ndarray, limits: RobotLimits, *,
                 stop_fraction: float = 0.9, max_lead_s: float = 0.1, rejoin_s: float = 0.1) -> None:
        path = np.asarray(path, dtype=np.float64)
        hold = int(round(rejoin_s / DT_S)) + 3          # room for a rejoin that starts at the very end
        self.path = np.concatenate([path, np.repeat(path[-1:], hold, axis=0)])
        self.limits = limits
        self.acc, self.jerk = stop_limits(limits, stop_fraction)
        self.max_lead_s = float(max_lead_s)
        self.rejoin_s = float(rejoin_s)
        self.m_end = self.path.shape[0] - 1
        self.m = 0
        self.q = np.asarray(q_start, dtype=np.float64).copy()
        self.dq = np.zeros(7)
        self.ddq = np.zeros(7)
        self.offset: np.ndarray | None = None      # [k,7] offsets for path samples offset_m0..
        self.offset_m0 = 0
        self.stopper: SmoothStop | None = None
        self.reason = ""
        self.gaps = 0
        self.max_gap = 1
        self.started = False
        self.primed = False
        self.dropped = 0                           # commands the robot did not take (q_d said so)
        self.unexplained = 0                       # cycles whose q_d no candidate history explained
        self._pending: tuple | None = None         # a rejoin whose fade settle() has yet to prepare
        self.cycle = 0                             # FCI cycles since the first command
        # (cycle, q, dq, ddq) after each of our latest commands, oldest first
        self._past: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = [(0, self.q.copy(), self.dq, self.ddq)]

    @property
    def t_s(self) -> float:
        return self.m * DT_S

    def prime(self) -> None:
        """Prepare (and check) the fade from ``q_start`` onto the path: the first cycle's work,
        done before the motion starts so that the first 1 ms stays short."""
        self.primed = True
        bad = self._set_offset(0, self.q, np.zeros(7), np.zeros(7))
        if bad is not None:
            self._begin_stop(f"start refused: {bad}")

    def start_at(self, q_d: np.ndarray) -> bool:
        """The first cycle's ``q_d`` (where the robot's motion generator starts) → whether the
        start had to be prepared again: the fade was primed from the ``q_d`` read before the
        motion, and the robot may start the motion elsewhere (after a reflex and its recovery the
        idle ``q_d`` can be stale), so the first command is this one and the fade starts from it."""
        q_d = np.asarray(q_d, dtype=np.float64)
        if self.primed and np.array_equal(q_d, self.q):
            return False
        self.q = q_d.copy()
        self.prime()
        return True

    @property
    def stopping(self) -> bool:
        return self.stopper is not None

    def _history(self) -> np.ndarray:
        """The last three commands, rebuilt from (q, dq, ddq) (backward differences)."""
        q1 = self.q - self.dq * DT_S
        q2 = q1 - (self.dq - self.ddq * DT_S) * DT_S
        return np.stack([q2, q1, self.q])

    def _begin_stop(self, reason: str) -> None:
        if self.stopper is None:
            self.reason = reason
            self.stopper = SmoothStop(self.q, self.dq, self.ddq, self.acc, self.jerk)

    def _set_offset(self, m: int, target: np.ndarray, ev: np.ndarray, ea: np.ndarray,
                    history: np.ndarray | None = None) -> str | None:
        """Fade from command ``target`` at path sample ``m`` back to the path (``history`` [3,7]:
        the commands before ``target``; default the last three); None if checked ok."""
        e = fade(target - self.path[m], ev, ea, self.rejoin_s)
        k = e.shape[0]
        short = m + k + 3 - self.path.shape[0]
        if short > 0:                                   # the path ends at rest: hold it longer
            self.path = np.concatenate([self.path, np.repeat(self.path[-1:], short, axis=0)])
            self.m_end = self.path.shape[0] - 1
        seg = self.path[m: m + k] + e
        tail = self.path[m + k: m + k + 3]
        bad = check_1khz(np.concatenate([seg, tail]), self.limits,
                         history=self._history() if history is None else history, require_rest=False)
        if bad is not None:
            return bad.describe(t0_s=m * DT_S)
        self.offset, self.offset_m0 = e, m
        return None

    def _path_cmd(self, m: int) -> np.ndarray:
        off = self.offset
        if off is not None:
            i = m - self.offset_m0
            if 0 <= i < off.shape[0]:
                return self.path[m] + off[i]
            if i >= off.shape[0]:
                self.offset = None
        return self.path[m]

    def _commit(self, cmd: np.ndarray) -> None:
        dq = (cmd - self.q) / DT_S
        self.ddq = (dq - self.dq) / DT_S
        self.dq = dq
        self.q = cmd
        self._past.append((self.cycle, cmd, dq, self.ddq))
        if len(self._past) > DROPPED_MAX + 1:
            del self._past[0]

    def _robot_reference(self, n: int, ref: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> bool:
        """Set (q, dq, ddq) to the reference the robot applied in the cycle before this one,
        ``n`` cycles after our last command; True if that is not simply our last command.

        The robot extrapolates every cycle it got no command for (constant acceleration: v += a·dt,
        q += v·dt, from the last two commands it took). Without ``ref`` we assume it took our last
        command. With the state's (q_d, dq_d, ddq_d) we find which of our latest commands it took
        last (0..``DROPPED_MAX`` dropped): the candidate whose extrapolation to this cycle matches
        all three to float32 precision (a dropped command moves the position by nanoradians but the
        acceleration by far more), kept in double precision so the history stays exact. A reference
        that no candidate explains (not the FCI's behaviour; franka-sim's handling of a late answer
        can publish one) is counted and the history stays ours."""
        if ref is not None:
            q_d, dq_d, ddq_d = (np.asarray(x, dtype=np.float64) for x in ref)
            if n == 1 and _reference_mismatch(self.q, self.dq, self.ddq, q_d, dq_d, ddq_d) <= 1.0:
                return False                                      # the usual cycle: it took our command
            best, best_score = None, 1.0
            for dropped, (cycle, q, dq, ddq) in enumerate(reversed(self._past)):
                for _ in range(self.cycle - cycle - 1):
                    dq = dq + ddq * DT_S
                    q = q + dq * DT_S
                score = _reference_mismatch(q, dq, ddq, q_d, dq_d, ddq_d)
                if score <= best_score:
                    best, best_score = (dropped, q, dq, ddq), score
            if best is not None:
                dropped, self.q, self.dq, self.ddq = best
                self.dropped += dropped
                return dropped > 0 or n > 1
            self.unexplained += 1
        for _ in range(n - 1):
            self.dq = self.dq + self.ddq * DT_S
            self.q = self.q + self.dq * DT_S
        return n > 1

    def next(self, n: int, released_t: float, all_released: bool, stop: bool,
             ref: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, bool]:
        """(command [7] rad, finished) for a cycle ``n`` >= 1 cycles after the previous one;
        ``ref``: the robot state's (q_d, dq_d, ddq_d), the reference it applied last (rad, rad/s,
        rad/s^2)."""
        if not self.started:
            self.started = True
            if not self.primed:
                self.prime()
            self.cycle = 0
            self._past = [(0, self.q.copy(), self.dq, self.ddq)]
            return self.q.copy(), False
        self.settle()                          # the caller may not have (tests, simple loops)
        n = max(1, int(n))
        if n > 1:
            self.gaps += 1
            self.max_gap = max(self.max_gap, n)
        # what the robot did meanwhile (extrapolated the cycles it had no command for)
        self.cycle += n
        rejoin = self._robot_reference(n, ref)
        if self.stopper is None:
            if stop:
                self._begin_stop(self.reason or "stop requested")
            elif not all_released and (self.m + n) * DT_S > released_t + self.max_lead_s:
                self._begin_stop(f"the control loop stopped releasing targets ({self.max_lead_s:g} s behind the "
                                 "1 kHz stream): stopped smoothly")
        if self.stopper is not None:
            if rejoin:                         # restart the brake from the robot's reference
                self.stopper = SmoothStop(self.q, self.dq, self.ddq, self.acc, self.jerk)
            cmd = self.stopper.step()
            self._commit(cmd)
            return cmd, self.stopper.done
        m = min(self.m + n, self.m_end)
        if rejoin:
            # this cycle continues the robot's own extrapolation (no jump, and cheap: an answer that
            # is late right after a gap is a dropped one); the fade back onto the path and its check
            # are prepared by ``settle()`` once the command is out
            dq = self.dq + self.ddq * DT_S
            target = self.q + dq * DT_S
            vpath = (self.path[m] - self.path[m - 1]) / DT_S if m >= 1 else np.zeros(7)
            apath = ((self.path[m] - 2 * self.path[m - 1] + self.path[m - 2]) / DT_S ** 2 if m >= 2 else np.zeros(7))
            self._pending = (m, n, target, dq - vpath, self.ddq - apath, self._history())
            self.offset = None
            self.m = m
            self._commit(target)
            return target, False
        self.m = m
        cmd = self._path_cmd(m)
        self._commit(cmd)
        return cmd, m == self.m_end and self.offset is None

    def settle(self) -> None:
        """Prepare and check the fade back onto the path after a rejoin (the work ``next`` leaves
        for after the command was sent); a fade that would break a limit starts a smooth stop."""
        if self._pending is None:
            return
        m, n, target, ev, ea, history = self._pending
        self._pending = None
        bad = self._set_offset(m, target, ev, ea, history)
        if bad is not None:
            self._begin_stop(f"a {n}-cycle gap in the 1 kHz stream ({self.dropped} command(s) dropped so far) "
                             f"could not be rejoined within limits ({bad})")


def _reference_mismatch(q: np.ndarray, dq: np.ndarray, ddq: np.ndarray, q_d: np.ndarray, dq_d: np.ndarray,
                        ddq_d: np.ndarray) -> float:
    """How far a candidate history is from the robot's reference, in units of float32 precision
    (<= 1: the same reference)."""
    return max(float(np.max(np.abs(q - q_d))) / Q_D_TOL_RAD, float(np.max(np.abs(dq - dq_d))) / DQ_D_TOL,
               float(np.max(np.abs(ddq - ddq_d))) / DDQ_D_TOL)


def stop_limits(limits: RobotLimits, fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """(acceleration [7], jerk [7]) a ``SmoothStop`` uses: ``fraction`` of Franka's limits."""
    return limits.ddq_max * fraction, limits.dddq_max * fraction


def _first(mask: np.ndarray) -> tuple[int, int]:
    flat = int(np.argmax(mask.reshape(-1)))
    return flat // mask.shape[1], flat % mask.shape[1]


__all__ = ["DT_S", "START_BLEND_S", "REFLEX", "Violation", "SmoothStop", "StreamPlayer", "check_1khz", "fade",
           "interpolate_stream", "start_blend", "stop_limits"]
