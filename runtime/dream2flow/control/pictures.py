"""The execution video a person can judge a run by: the rendered frames with what the loop knew
drawn in -- time, phase, gripper command, the worst measured-vs-commanded deviation so far, the
target object flow (the plan's predicted object points at that time, projected into the camera)
and, over the last second, the outcome.

Why after the run: every number comes from the loop's own record (``ExecutionResult``: command
log, measured joints) and the plan, so the picture shows exactly what was checked; drawing is
OpenCV on the frames already rendered (well under a millisecond per frame).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

TARGET_RGB = (0, 220, 255)        # cyan: where the plan wants the object points now
OK_RGB = (40, 200, 80)
BAD_RGB = (230, 50, 40)


def phase_at(t_s: float, result: Any, plan: Any, stream_end_s: float) -> tuple[str, int]:
    """(phase name, plan waypoint index) at trajectory time ``t_s`` (s)."""
    start = float(result.start_segment_s)
    if t_s < start:
        return "move to start", 0
    tp = t_s - start
    i = int(np.clip(np.floor(tp / float(plan.dt_s) + 1e-9), 0, plan.horizon - 1))
    if tp > plan.duration_s + 1e-9:
        return ("hold" if t_s <= stream_end_s + 1e-9 else "settle"), plan.horizon - 1
    seg = (plan.meta or {}).get("segments") or {}
    if {"grasp_index", "follow_start", "follow_end"} <= set(seg):
        if i < seg["grasp_index"]:
            return "approach", i
        if i < seg["follow_start"]:
            return "grasp", i
        if i <= seg["follow_end"]:
            return "follow the flow", i
        return "release", i
    return "plan", i


def deviation_so_far(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """(measurement times [M] s, running max over joints and time of |measured - last command| [M] rad)."""
    log = result.command_log
    t_meas = np.asarray(result.measured_t_s, dtype=np.float64)
    q_meas = np.asarray(result.measured_q, dtype=np.float64)
    dev = np.zeros(len(t_meas))
    if len(log) and len(t_meas):
        j = np.searchsorted(log["t_s"], t_meas, side="left") - 1        # the last command sent before it
        ok = (j >= 0) & np.isfinite(q_meas).all(axis=1)
        dev[ok] = np.abs(q_meas[ok] - log["q"][j[ok]]).max(axis=1)
    return t_meas, np.maximum.accumulate(dev) if len(dev) else dev


def annotate_execution(frames: Sequence[np.ndarray], ticks: Sequence[int], *, rate_hz: float, result: Any, plan: Any,
                       camera: Any, outcome: str | None = None, outcome_ok: bool | None = None,
                       outcome_s: float = 1.0, fps: float = 10.0) -> list[np.ndarray]:
    """Copies of ``frames`` (RGB [H,W,3] uint8, rendered at control ticks ``ticks``) with the overlay."""
    import cv2

    log = result.command_log
    stream_end = float(log["t_s"][-1]) if len(log) else 0.0
    t_dev, dev = deviation_so_far(result)
    P = np.asarray(plan.predicted_points, dtype=np.float64)
    px_all, z_all = camera.project(P.reshape(-1, 3)) if P.size else (np.zeros((0, 2)), np.zeros(0))
    px_all = px_all.reshape(P.shape[0], -1, 2) if P.size else np.zeros((plan.horizon, 0, 2))
    z_all = z_all.reshape(P.shape[0], -1) if P.size else np.zeros((plan.horizon, 0))
    n_outcome = max(1, int(round(outcome_s * fps)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    out = []
    for f_i, (frame, k) in enumerate(zip(frames, ticks)):
        img = np.ascontiguousarray(frame.copy())
        H, W = img.shape[:2]
        t = float(k) / float(rate_hz)
        phase, i = phase_at(t, result, plan, stream_end)
        # target flow: the plan's object points at this time
        px, z = px_all[i], z_all[i]
        ok = (z > 0) & np.isfinite(px).all(axis=1) & (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
        for u, v in np.round(px[ok] * 16).astype(np.int64):
            cv2.circle(img, (int(u), int(v)), 2 << 4, TARGET_RGB, -1, cv2.LINE_AA, 4)
        j = int(np.searchsorted(log["tick"], k, side="right")) - 1 if len(log) else -1
        grip = "closed" if j >= 0 and float(log["gripper"][j]) > 0.5 else "open"
        m = int(np.searchsorted(t_dev, t + 1e-9, side="right")) - 1
        worst = float(dev[m]) if m >= 0 else 0.0
        lines = [f"t {t:5.2f} s   {phase}", f"gripper {grip}   worst deviation {worst:.3f} rad", "cyan: target object flow"]
        _text_box(img, lines, (6, 6), font)
        if outcome and f_i >= len(frames) - n_outcome:
            colour = OK_RGB if outcome_ok else BAD_RGB
            text = outcome if len(outcome) <= 90 else outcome[:87] + "..."
            (tw, th), _ = cv2.getTextSize(text, font, 0.5, 1)
            cv2.rectangle(img, (0, H - th - 14), (W, H), colour, -1)
            cv2.putText(img, text, (6, H - 8), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        out.append(img)
    return out


def _text_box(img: np.ndarray, lines: list[str], at: tuple[int, int], font: int, scale: float = 0.45) -> None:
    import cv2

    sizes = [cv2.getTextSize(s, font, scale, 1)[0] for s in lines]
    w = max(s[0] for s in sizes) + 10
    lh = max(s[1] for s in sizes) + 7
    x0, y0 = at
    sub = img[y0:y0 + lh * len(lines) + 6, x0:x0 + w]
    sub[:] = (sub.astype(np.uint16) * 2 // 5).astype(np.uint8)          # darkened background, text stays legible
    for r, s in enumerate(lines):
        cv2.putText(img, s, (x0 + 5, y0 + lh * (r + 1)), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
