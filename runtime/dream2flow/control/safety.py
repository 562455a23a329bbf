"""Safety layer: every joint command is checked before it leaves the process.

Checks (limits of the configured arm, ``hw/robot/panda_limits.toml`` or ``fr3_limits.toml``,
scaled by ``hw/robot/control.toml``):
- joint positions inside [q_min + margin, q_max - margin];
- velocity, acceleration and jerk of the *commanded stream* (finite differences over plan time,
  so a skipped period is a longer interval, not a faster motion) under the scaled Franka limits;
  on the FR3 the velocity also inside its position-based envelope (evaluated where the joint
  is at the start of each interval, as the robot does);
- the TCP and the flange inside the workspace box (NumPy forward kinematics);
- measured joints within ``max_deviation_rad`` of the last command (plus a backend's declared
  lag allowance, never more than ``deviation_cap_rad`` in all, whatever the speed);
- the move-to-start segment (an unplanned joint-space motion) no longer than
  ``start_max_joint_distance_rad`` on any joint and ``start_max_duration_s``.
A violation is reported as one sentence; the loop then holds position and sends nothing more.
Nothing is ever clipped: a command that breaks a limit is not sent at all.

The same finite differences check the whole stream before the first command (pre-flight) and
each command at run time, so both give identical answers on identical data (the per-tick
workspace check uses a scalar FK that agrees with the vectorised one to float rounding).
"""

from __future__ import annotations

import numpy as np

from dream2flow.config import RobotLimits
from dream2flow.control.kinematics import fk_links, fk_points
from dream2flow.control.settings import LoopConfig

_WORKSPACE_POINTS = ((8, "TCP"), (7, "flange"))


class SafetyLayer:
    """Limits for one run. ``check_stream`` / ``check_next`` return ``None`` or a reason."""

    def __init__(self, limits: RobotLimits, config: LoopConfig) -> None:
        self.limits = limits
        self.config = config
        m = config.joint_margin_rad
        self.q_lo = limits.q_min + m
        self.q_hi = limits.q_max - m
        self.v_max = limits.dq_max * config.velocity_fraction
        self.a_max = limits.ddq_max * config.acceleration_fraction
        self.j_max = limits.dddq_max * config.jerk_fraction
        self.ws_lo = np.asarray(config.workspace_min, dtype=np.float64)
        self.ws_hi = np.asarray(config.workspace_max, dtype=np.float64)
        self.max_deviation = config.max_deviation_rad
        self.deviation_cap = config.deviation_cap_rad
        self.envelope = limits.velocity_envelope is not None
        self._ws_lo_t = tuple(float(x) for x in self.ws_lo)
        self._ws_hi_t = tuple(float(x) for x in self.ws_hi)

    # -- whole stream ---------------------------------------------------------------------
    def check_stream(self, t_s: np.ndarray, q: np.ndarray, q_measured: np.ndarray, start_tolerance_rad: float,
                     period_s: float) -> str | None:
        """First violation (earliest in time) of the commands ``q`` [N,7] at plan times ``t_s`` [N], or
        ``None``. The stream is taken to start from rest at its first command (``history``), and that
        first command must be within ``start_tolerance_rad`` of the measured joints ``q_measured`` [7]:
        the step from measured to first command is a position step for the robot's impedance
        controller, not part of the stream's finite differences (measurement noise would otherwise
        read as huge accelerations at high rates)."""
        t_s = np.asarray(t_s, dtype=np.float64)
        q = np.asarray(q, dtype=np.float64)
        if t_s.size == 0:
            return None
        if not np.isfinite(q).all():
            i = int(np.argmax(~np.isfinite(q).all(axis=1)))
            return f"command {i} at t={t_s[i]:.3f} s contains NaN or inf"
        step = np.abs(q[0] - np.asarray(q_measured, dtype=np.float64))
        j = int(np.argmax(step))
        if not step[j] <= start_tolerance_rad:
            return (f"the first command is {step[j]:.4f} rad from the measured joint {j + 1} "
                    f"(max {start_tolerance_rad:g} rad); move the robot to the start first")
        t_hist, q_hist = self.history(t_s[0], q[0], period_s)
        return self._check(np.concatenate([t_hist, t_s]), np.concatenate([q_hist, q]), first=3)

    @staticmethod
    def history(t0: float, q0: np.ndarray, period_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Virtual history before the first command: at rest at ``q0`` for 3 periods."""
        t_hist = t0 - period_s * np.arange(3, 0, -1)
        return t_hist, np.repeat(np.asarray(q0, dtype=np.float64)[None, :], 3, axis=0)

    def check_next(self, t_hist: np.ndarray, q_hist: np.ndarray) -> str | None:
        """Check the last row of a 4-row history (3 commands already sent + the candidate): the
        per-tick check. A lean path computes exactly the values ``_check`` computes for that row
        (same operations, same order) and defers to ``_check`` only to word a violation."""
        t = np.asarray(t_hist, dtype=np.float64)
        q = np.asarray(q_hist, dtype=np.float64)
        if t.shape != (4,) or q.shape != (4, 7):
            return self._check(t, q, first=len(t) - 1)
        c = q[3]
        dt = np.diff(t)
        if not (np.isfinite(c).all() and (dt > 0).all()) or ((c < self.q_lo) | (c > self.q_hi)).any():
            return self._check(t, q, first=3)
        v = np.diff(q, axis=0) / dt[:, None]
        m = 0.5 * (t[1:] + t[:-1])
        a = np.diff(v, axis=0) / np.diff(m)[:, None]
        ma = 0.5 * (m[1:] + m[:-1])
        jerk = np.diff(a, axis=0) / np.diff(ma)[:, None]
        if (np.abs(v[2]) > self.v_max).any() or (np.abs(a[1]) > self.a_max).any() or (np.abs(jerk[0]) > self.j_max).any():
            return self._check(t, q, first=3)
        if self.envelope:
            lo, hi = self.limits.velocity_bounds(q[2])
            frac = self.config.velocity_fraction
            if ((v[2] > hi * frac) | (v[2] < lo * frac)).any():
                return self._check(t, q, first=3)
        tcp, flange = fk_points(c)
        lo, hi = self._ws_lo_t, self._ws_hi_t
        for p in (tcp, flange):
            if not (lo[0] <= p[0] <= hi[0] and lo[1] <= p[1] <= hi[1] and lo[2] <= p[2] <= hi[2]):
                return self._check(t, q, first=3) or f"TCP/flange at {p} leaves the workspace box"
        return None

    def _check(self, t: np.ndarray, q: np.ndarray, first: int) -> str | None:
        """Rows ``first:`` of (t, q) are candidates; earlier rows are history. Earliest violation wins."""
        hits: list[tuple[int, str]] = []
        cand = q[first:]
        tc = t[first:]
        if not np.isfinite(cand).all():
            i = int(np.argmax(~np.isfinite(cand).all(axis=1)))
            return f"command at t={tc[i]:.3f} s contains NaN or inf"

        bad = (cand < self.q_lo) | (cand > self.q_hi)
        if bad.any():
            i, j = _first(bad)
            hits.append((i, f"joint {j + 1} position {cand[i, j]:.4f} rad is outside its limits with "
                            f"{self.config.joint_margin_rad:g} rad margin [{self.q_lo[j]:.4f}, {self.q_hi[j]:.4f}] "
                            f"at t={tc[i]:.3f} s"))

        dt = np.diff(t)
        if (dt <= 0).any():
            k = int(np.argmax(dt <= 0))
            return f"command times do not increase at t={t[k + 1]:.3f} s"
        v, a, jerk = _differences(t, q)
        for name, arr, lim, unit, offset in (("velocity", v, self.v_max, "rad/s", 1), ("acceleration", a, self.a_max, "rad/s^2", 2),
                                             ("jerk", jerk, self.j_max, "rad/s^3", 3)):
            # row r of arr involves q rows r..r+offset; it belongs to candidate (r + offset - first)
            start = max(0, first - offset)
            sub = np.abs(arr[start:]) > lim
            if sub.any():
                r, j = _first(sub)
                i = r + start + offset - first
                frac = {"velocity": self.config.velocity_fraction, "acceleration": self.config.acceleration_fraction,
                        "jerk": self.config.jerk_fraction}[name]
                hits.append((i, f"joint {j + 1} commanded {name} {abs(arr[r + start, j]):.3g} {unit} exceeds the allowed "
                                f"{lim[j]:.3g} {unit} ({frac:g} x Franka's limit) at t={tc[i]:.3f} s"))

        if self.envelope:
            # FR3: velocity of interval r (q rows r, r+1) inside the envelope at q row r.
            lo, hi = self.limits.velocity_bounds(q[:-1])
            frac = self.config.velocity_fraction
            start = max(0, first - 1)
            sub = (v[start:] > hi[start:] * frac) | (v[start:] < lo[start:] * frac)
            if sub.any():
                r, j = _first(sub)
                k = r + start
                bound = hi[k, j] if v[k, j] > 0 else lo[k, j]
                hits.append((k + 1 - first, f"joint {j + 1} commanded velocity {v[k, j]:.3g} rad/s leaves the "
                                            f"{self.limits.model.upper()}'s position-based limit {frac * bound:.3g} rad/s at "
                                            f"q{j + 1}={q[k, j]:.4f} rad ({frac:g} x Franka's envelope) at "
                                            f"t={t[k + 1]:.3f} s"))

        T = fk_links(cand[0])[None] if len(cand) == 1 else fk_links(cand)
        for idx, label in _WORKSPACE_POINTS:
            p = T[:, idx, :3, 3]
            out = (p < self.ws_lo) | (p > self.ws_hi)
            if out.any():
                i = int(np.argmax(out.any(axis=1)))
                x, y, z = p[i]
                hits.append((i, f"{label} at ({x:.3f}, {y:.3f}, {z:.3f}) m leaves the workspace box "
                                f"{tuple(round(float(v), 3) for v in self.ws_lo)}..{tuple(round(float(v), 3) for v in self.ws_hi)} "
                                f"at t={tc[i]:.3f} s"))
        if not hits:
            return None
        return min(hits, key=lambda h: h[0])[1]

    def stream_usage(self, t_s: np.ndarray, q: np.ndarray, period_s: float) -> dict[str, float]:
        """Largest |velocity|, |acceleration| and |jerk| of a stream (with ``check_stream``'s rest
        history) as fractions of the allowed limits (1.0 = at the limit): how much slower a plan
        must run to pass, not only whether it does."""
        t_s = np.asarray(t_s, dtype=np.float64)
        q = np.asarray(q, dtype=np.float64)
        t_hist, q_hist = self.history(t_s[0], q[0], period_s)
        v, a, jerk = _differences(np.concatenate([t_hist, t_s]), np.concatenate([q_hist, q]))
        return {"velocity": float(np.max(np.abs(v) / self.v_max)),
                "acceleration": float(np.max(np.abs(a) / self.a_max)),
                "jerk": float(np.max(np.abs(jerk) / self.j_max))}

    # -- move-to-start --------------------------------------------------------------------
    def check_start(self, q_measured: np.ndarray, q_plan_start: np.ndarray, duration_s: float) -> str | None:
        """The move-to-start from the measured joints [7] to the plan's first waypoint [7] (rad),
        lasting ``duration_s`` (0: none needed): ``None`` or why it is refused. It is the one
        motion nobody planned (no obstacle model), so only a short one is run."""
        cfg = self.config
        delta = np.abs(np.asarray(q_plan_start, dtype=np.float64) - np.asarray(q_measured, dtype=np.float64))
        j = int(np.argmax(delta))
        if duration_s <= 0.0:
            return None
        fix = ("bring the robot near the plan's start first (e.g. in guiding mode) or plan from its current joints "
               "(plan --q0)")
        if delta[j] > cfg.start_max_joint_distance_rad:
            return (f"move-to-start refused: joint {j + 1} would travel {delta[j]:.3f} rad to the plan's start in "
                    f"{duration_s:.1f} s (max {cfg.start_max_joint_distance_rad:g} rad, [loop] start_max_joint_distance_rad in "
                    f"{cfg.source}); {fix}")
        if duration_s > cfg.start_max_duration_s:
            return (f"move-to-start refused: it would take {duration_s:.2f} s (max {cfg.start_max_duration_s:g} s, "
                    f"[loop] start_max_duration_s in {cfg.source}); {fix}")
        return None

    # -- measured vs commanded ------------------------------------------------------------
    def deviation(self, q_measured: np.ndarray, q_commanded: np.ndarray) -> np.ndarray:
        """|measured - commanded| per joint [7] (rad)."""
        return np.abs(np.asarray(q_measured, dtype=np.float64) - np.asarray(q_commanded, dtype=np.float64))

    def check_deviation(self, q_measured: np.ndarray, q_commanded: np.ndarray, t_s: float,
                        lag_allowance_rad: np.ndarray | float = 0.0) -> str | None:
        """|measured - commanded| must stay under ``max_deviation_rad`` plus ``lag_allowance_rad`` [7]
        (the backend's known steady lag behind a moving target, see ``lag_allowance``), and never
        above ``deviation_cap_rad``: the allowance grows with speed, the cap does not."""
        q_measured = np.asarray(q_measured, dtype=np.float64)
        if q_measured.shape != (7,) or not np.isfinite(q_measured).all():
            return f"measured joints are not 7 finite numbers at t={t_s:.3f} s"
        dev = self.deviation(q_measured, q_commanded)
        wanted = self.max_deviation + np.broadcast_to(np.asarray(lag_allowance_rad, dtype=np.float64), (7,))
        allowed = np.minimum(wanted, self.deviation_cap)
        over = dev - allowed
        j = int(np.argmax(over))
        if over[j] > 0:
            if wanted[j] > self.deviation_cap:
                extra = f" + lag allowance, capped at {self.deviation_cap:g} rad ([safety] deviation_cap_rad)"
            elif allowed[j] > self.max_deviation:
                extra = f" + {allowed[j] - self.max_deviation:.4f} rad lag allowance"
            else:
                extra = ""
            return (f"measured joint {j + 1} is {dev[j]:.4f} rad from its command (max {self.max_deviation:g} rad{extra}) "
                    f"at t={t_s:.3f} s")
        return None

    @staticmethod
    def lag_allowance(tracking_lag_s: np.ndarray | float, t_hist: list[float], q_hist: list[np.ndarray]) -> np.ndarray:
        """Allowed extra deviation [7] (rad) = ``tracking_lag_s`` x |commanded velocity| (last interval).
        A joint impedance controller that gets positions but no velocity (Polymetis' streaming mode)
        trails a moving target by about Kd/Kp x velocity; a sim or kinematic arm declares 0."""
        v = (np.asarray(q_hist[-1]) - np.asarray(q_hist[-2])) / (t_hist[-1] - t_hist[-2])
        return np.asarray(tracking_lag_s, dtype=np.float64) * np.abs(v)


def _differences(t: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Velocity, acceleration and jerk [N-1|N-2|N-3, 7] of commands ``q`` [N,7] at increasing times
    ``t`` [N]: finite differences over (possibly uneven) plan time, at interval midpoints."""
    v = np.diff(q, axis=0) / np.diff(t)[:, None]               # at midpoints m
    m = 0.5 * (t[1:] + t[:-1])
    a = np.diff(v, axis=0) / np.diff(m)[:, None]
    ma = 0.5 * (m[1:] + m[:-1])
    jerk = np.diff(a, axis=0) / np.diff(ma)[:, None]
    return v, a, jerk


def _first(mask: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first True in row-major order of a 2D mask."""
    flat = int(np.argmax(mask.reshape(-1)))
    return flat // mask.shape[1], flat % mask.shape[1]
