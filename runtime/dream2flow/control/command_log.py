"""The command log: every command sent to the arm, in order, and a byte-deterministic file format.

Why: after a run on the robot the log says exactly what was commanded (for debugging a fault
or reproducing a motion), and because the loop is deterministic, two runs of the same plan from
the same start give bit-identical logs — a cheap regression check for the whole control path.

Record layout (``LOG_DTYPE``): ``seq`` (0, 1, 2, … per command actually sent), ``tick`` (the loop
period it was sent in; gaps = skipped periods), ``t_s`` (plan time = tick / rate, s), ``q`` [7]
(rad), ``gripper`` (commanded gripper state: 0 open, 1 closed).

File: ``.npz`` with arrays ``seq tick t_s q gripper rate_hz meta`` written with fixed zip
timestamps, so equal logs give equal bytes (``np.savez`` stamps the current time).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput

LOG_DTYPE = np.dtype([("seq", "<i8"), ("tick", "<i8"), ("t_s", "<f8"), ("q", "<f8", (7,)), ("gripper", "<f4")])
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class CommandLogBuilder:
    """Append-only log with preallocated storage (no allocation per tick)."""

    def __init__(self, capacity: int) -> None:
        self._buf = np.zeros(max(1, capacity), dtype=LOG_DTYPE)
        self._n = 0

    def append(self, tick: int, t_s: float, q: np.ndarray, gripper: float) -> None:
        if self._n == self._buf.size:
            self._buf = np.concatenate([self._buf, np.zeros(self._buf.size, dtype=LOG_DTYPE)])
        r = self._buf[self._n]
        r["seq"] = self._n
        r["tick"] = tick
        r["t_s"] = t_s
        r["q"] = q
        r["gripper"] = gripper
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def records(self) -> np.ndarray:
        """A copy of the records so far, [n] of ``LOG_DTYPE``."""
        return self._buf[: self._n].copy()


def make_log(tick: np.ndarray, t_s: np.ndarray, q: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    """Records [N] of ``LOG_DTYPE`` from column arrays (``seq`` = 0..N-1)."""
    n = int(np.asarray(tick).size)
    out = np.zeros(n, dtype=LOG_DTYPE)
    out["seq"] = np.arange(n)
    out["tick"] = tick
    out["t_s"] = t_s
    out["q"] = q
    out["gripper"] = gripper
    return out


@dataclass
class CommandLog:
    """A loaded/saved log: ``records`` [N] of ``LOG_DTYPE``, the loop ``rate_hz`` and ``meta``
    (JSON-able: backend, mode, plan digest — nothing time-dependent)."""

    records: np.ndarray
    rate_hz: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.records.size)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)  # keeps 0-d arrays 0-d
    return buf.getvalue()


def save_command_log(path: str | Path, records: np.ndarray, *, rate_hz: float, meta: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file + rename) with deterministic bytes; returns the path."""
    rec = np.asarray(records)
    if rec.dtype != LOG_DTYPE:
        raise InvalidInput(f"command log records must have dtype {LOG_DTYPE}, got {rec.dtype}")
    p = Path(path)
    arrays = {
        "seq": rec["seq"], "tick": rec["tick"], "t_s": rec["t_s"], "q": rec["q"], "gripper": rec["gripper"],
        "rate_hz": np.float64(rate_hz), "meta": np.array(json.dumps(meta or {}, sort_keys=True)),
    }
    tmp = p.with_name(f".{p.name}.partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, _npy_bytes(np.asarray(arr)))
    os.replace(tmp, p)
    return p


def load_command_log(path: str | Path) -> CommandLog:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"command log not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as exc:
        raise InvalidInput(f"command log {p} is not a readable .npz ({type(exc).__name__})") from None
    missing = [k for k in ("tick", "t_s", "q", "gripper", "rate_hz") if k not in d]
    if missing:
        raise InvalidInput(f"command log {p} lacks keys: {', '.join(missing)}")
    q = np.asarray(d["q"], dtype=np.float64)
    n = int(d["tick"].size)
    if q.shape != (n, 7) or d["t_s"].shape != (n,) or d["gripper"].shape != (n,):
        raise InvalidInput(f"command log {p}: arrays disagree in length or q is not [N,7]")
    rec = make_log(d["tick"], d["t_s"], q, d["gripper"])
    if "seq" in d:
        rec["seq"] = d["seq"]
    meta = json.loads(str(d["meta"])) if "meta" in d else {}
    return CommandLog(records=rec, rate_hz=float(d["rate_hz"]), meta=meta)


def replay(log: CommandLog | str | Path, backend: Any, **kwargs: Any):
    """Re-send a logged command stream through the same loop and safety layer
    (``dream2flow.control.loop.replay_log``; see there for the keyword arguments)."""
    from dream2flow.control.loop import replay_log

    if not isinstance(log, CommandLog):
        log = load_command_log(log)
    return replay_log(log, backend, **kwargs)
