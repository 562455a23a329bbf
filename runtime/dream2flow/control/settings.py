"""The control loop's settings (``hw/robot/control.toml``): loop timing, safety margins, watchdog.

Why a file and not constants: the margins and the workspace box belong to the cell the robot
stands in (table, walls, fixtures) and are changed by the person responsible for it, not in
code. Defaults below equal the shipped ``control.toml`` (package data, so an installed runtime
has it); a hw folder without ``robot/control.toml`` is an error, never a silent fallback: the
built-in values are used only when asked for (``load_loop_config(defaults=True)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput


@dataclass(frozen=True)
class LoopConfig:
    """All numbers in SI units (m, rad, s, Hz). Fractions scale the configured arm's Franka limits
    (``hw/robot/panda_limits.toml`` or ``fr3_limits.toml``; 1.0 = the published limit)."""

    # loop
    rate_hz: float = 100.0
    settle_s: float = 0.3              # hold the final target this long after the plan ends
    start_tolerance_rad: float = 0.002  # a move-to-start segment is added above this (max over joints)
    start_velocity_fraction: float = 0.25
    start_acceleration_fraction: float = 0.25
    start_jerk_fraction: float = 0.25
    start_min_duration_s: float = 0.5
    start_max_joint_distance_rad: float = 0.5  # refuse a move-to-start longer than this on any joint
    start_max_duration_s: float = 4.0          # ... or slower than this at the start_* fractions
    spin_s: float = 0.0002             # real-time pacing: busy-wait this long before a deadline
    # safety
    joint_margin_rad: float = 0.05
    velocity_fraction: float = 0.9
    acceleration_fraction: float = 0.9
    jerk_fraction: float = 1.0
    max_deviation_rad: float = 0.1      # |measured - last command|, any joint
    deviation_cap_rad: float = 0.2      # hard cap on max_deviation_rad + a backend's lag allowance
    real_arm_consent: bool = False      # real-arm backends may move without --yes (unattended cells)
    workspace_min: tuple[float, float, float] = (-0.1, -0.7, 0.0)
    workspace_max: tuple[float, float, float] = (0.95, 0.7, 1.2)
    # watchdog
    stale_timeout_s: float = 0.1        # state().t_s must advance within this (backend / wall clock)
    hang_timeout_s: float = 1.0         # a backend call on a real robot must return within this
    source: str = field(default="defaults", compare=False)

    def __post_init__(self) -> None:
        where = self.source
        positive = ("rate_hz", "start_min_duration_s", "start_velocity_fraction", "start_acceleration_fraction",
                    "start_jerk_fraction", "velocity_fraction", "acceleration_fraction", "jerk_fraction",
                    "max_deviation_rad", "stale_timeout_s", "hang_timeout_s", "start_tolerance_rad",
                    "start_max_joint_distance_rad", "start_max_duration_s", "deviation_cap_rad")
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise InvalidInput(f"{where}: '{name}' must be a positive number, got {v!r}")
        for name in ("settle_s", "spin_s", "joint_margin_rad"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise InvalidInput(f"{where}: '{name}' must be a number >= 0, got {v!r}")
        for name in ("velocity_fraction", "acceleration_fraction", "jerk_fraction", "start_velocity_fraction",
                     "start_acceleration_fraction", "start_jerk_fraction"):
            if getattr(self, name) > 1.0:
                raise InvalidInput(f"{where}: '{name}' must be <= 1 (a fraction of Franka's limit), got {getattr(self, name)}")
        if self.deviation_cap_rad < self.max_deviation_rad:
            raise InvalidInput(f"{where}: 'deviation_cap_rad' ({self.deviation_cap_rad}) must be >= 'max_deviation_rad' "
                               f"({self.max_deviation_rad})")
        if not isinstance(self.real_arm_consent, bool):
            raise InvalidInput(f"{where}: 'real_arm_consent' must be true or false, got {self.real_arm_consent!r}")
        if not 1.0 <= self.rate_hz <= 1000.0:
            raise InvalidInput(f"{where}: 'rate_hz' must be in [1, 1000] Hz, got {self.rate_hz}")
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not (lo < hi).all():
            raise InvalidInput(f"{where}: 'workspace_min' must be 3 numbers each below 'workspace_max'")
        object.__setattr__(self, "workspace_min", tuple(float(x) for x in lo))
        object.__setattr__(self, "workspace_max", tuple(float(x) for x in hi))

    def replace(self, **changes: Any) -> "LoopConfig":
        return dataclasses.replace(self, **changes)


_SECTIONS = {
    "loop": ("rate_hz", "settle_s", "start_tolerance_rad", "start_velocity_fraction", "start_acceleration_fraction",
             "start_jerk_fraction", "start_min_duration_s", "start_max_joint_distance_rad", "start_max_duration_s",
             "spin_s"),
    "safety": ("joint_margin_rad", "velocity_fraction", "acceleration_fraction", "jerk_fraction",
               "max_deviation_rad", "deviation_cap_rad", "workspace_min", "workspace_max", "real_arm_consent"),
    "watchdog": ("stale_timeout_s", "hang_timeout_s"),
}


def loop_config_from_dict(d: dict[str, Any], where: str = "control config",
                          base: LoopConfig | None = None) -> LoopConfig:
    """Build from TOML tables ``[loop]``, ``[safety]``, ``[watchdog]`` over ``base`` (defaults).
    Unknown keys are errors (a typo must not silently leave a safety margin at its default)."""
    unknown_tables = sorted(set(d) - set(_SECTIONS) - {"polymetis", "libfranka"})
    if unknown_tables:
        raise InvalidInput(f"{where}: unknown table(s) {', '.join(unknown_tables)} "
                           f"(known: {', '.join(_SECTIONS)}, polymetis, libfranka)")
    values: dict[str, Any] = {}
    for section, keys in _SECTIONS.items():
        table = d.get(section, {})
        if not isinstance(table, dict):
            raise InvalidInput(f"{where}: [{section}] must be a table")
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise InvalidInput(f"{where}: unknown key(s) in [{section}]: {', '.join(unknown)} (known: {', '.join(keys)})")
        for k, v in table.items():
            if k in ("workspace_min", "workspace_max"):
                if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)):
                    raise InvalidInput(f"{where}: '{k}' must be a list of 3 numbers (x, y, z in metres), got {v!r}")
                values[k] = tuple(float(x) for x in v)
            elif k == "real_arm_consent":
                if not isinstance(v, bool):
                    raise InvalidInput(f"{where}: '{k}' must be true or false, got {v!r}")
                values[k] = v
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidInput(f"{where}: '{k}' must be a number, got {v!r}")
            else:
                values[k] = float(v)
    return dataclasses.replace(base or LoopConfig(), source=where, **values)


def default_control_path() -> Path:
    """``robot/control.toml`` of the hw folder in use (an error naming the folder when absent)."""
    from dream2flow.config import hw_file

    return hw_file("robot/control.toml")


def load_loop_config(path: str | Path | None = None, *, defaults: bool = False) -> LoopConfig:
    """The hw folder's ``robot/control.toml`` (missing: an error), then ``path``'s [loop]/[safety]/
    [watchdog] tables on top. ``defaults=True`` asks for the built-in values (equal to the shipped
    file) instead of the hw folder's file. Other tables in ``path`` (e.g. ``[polymetis]``) are
    ignored here."""
    from dream2flow.config import load_toml

    if defaults:
        base = LoopConfig()
    else:
        p = default_control_path()
        base = loop_config_from_dict(load_toml(p), where=str(p))
    if path is None:
        return base
    return loop_config_from_dict(load_toml(path), where=str(path), base=base)
