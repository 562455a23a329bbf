"""``dream2flow pusht demo``: one episode with a video of what the planner did.

Every decision is shown on the camera image for a moment: the flow's target step (green), the
observed block points (white), the particles the model predicts for the chosen push (red) and
the push itself (yellow arrow from the start point along the stroke); the push is then shown
while the Panda executes it, with the target and the arrow kept on screen.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.log import progress

FPS = 8.0
HOLD_FRAMES = 8
TICK_EVERY_S = 0.25


def _dots(img: np.ndarray, cam: Any, pts: np.ndarray, colour: tuple[int, int, int], r: int = 1) -> None:
    import cv2

    if len(pts) == 0:
        return
    px, z = cam.project(np.asarray(pts, np.float64))
    for (u, v), zz in zip(px, z):
        if zz > 0 and np.isfinite(u) and np.isfinite(v):
            cv2.circle(img, (int(round(u)), int(round(v))), r, colour, -1, lineType=cv2.LINE_AA)


def _arrow(img: np.ndarray, cam: Any, push: Any) -> None:
    import cv2

    from dream2flow.pusht.primitive import PUSH_Z_M

    a = np.array([*push.c[0], PUSH_Z_M])
    b = np.array([*push.end()[0], PUSH_Z_M])
    (pa, pb), _ = cam.project(np.stack([a, b]))
    cv2.arrowedLine(img, tuple(int(x) for x in pa.round()), tuple(int(x) for x in pb.round()), (255, 220, 0), 2,
                    line_type=cv2.LINE_AA, tipLength=0.25)


def _text(img: np.ndarray, lines: list[str]) -> None:
    import cv2

    for i, s in enumerate(lines):
        cv2.putText(img, s, (8, 18 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def _zoom(img: np.ndarray, cam: Any) -> np.ndarray:
    """Crop the image to the work area (4:3, from the projection of its corners) and scale it back
    to the full size: the block fills more of the demo video."""
    import cv2

    from dream2flow.pusht import geometry as G

    lo, hi = G.WORK_MIN - 0.05, G.WORK_MAX + 0.05
    corners = np.array([[x, y, 0.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])])
    px, _ = cam.project(corners)
    H, W = img.shape[:2]
    x0, y0 = np.clip(px.min(0), 0, [W - 1, H - 1])
    x1, y1 = np.clip(px.max(0), 0, [W - 1, H - 1])
    w = max(x1 - x0, (y1 - y0) * W / H)
    h = w * H / W
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x0, y0 = int(np.clip(cx - w / 2, 0, W - w)), int(np.clip(cy - h / 2, 0, H - h))
    crop = img[y0:y0 + int(h), x0:x0 + int(w)]
    return cv2.resize(crop, (W, H), interpolation=cv2.INTER_LINEAR)


class Recorder:
    def __init__(self, dynamics: str) -> None:
        self.dynamics = dynamics
        self.frames: list[np.ndarray] = []
        self.k = 0

    def _add(self, img: np.ndarray, cam: Any, lines: list[str], n: int = 1) -> None:
        img = _zoom(img, cam)
        _text(img, lines)
        self.frames.extend([img] * n)

    def decision(self, env: Any, ob: Any, dec: Any, P: np.ndarray, V: np.ndarray) -> None:
        cam = env.sim.camera_model()
        img = env.sim.render_rgb().copy()
        _dots(img, cam, P[dec.t_target][V[dec.t_target]], (40, 220, 40))
        _dots(img, cam, ob.points, (255, 255, 255))
        if dec.predicted is not None:
            _dots(img, cam, dec.predicted, (255, 40, 40))
        if dec.push is not None:
            _arrow(img, cam, dec.push)
        lines = [f"{self.dynamics} model, decision {self.k + 1}: flow step t*={dec.t_star} -> target {dec.t_target}",
                 f"Chamfer to target {dec.cost_now * 1000:.1f} mm, predicted {dec.cost_best * 1000:.1f} mm",
                 "green: flow target  white: observed  red: predicted  yellow: push"]
        if dec.done:
            lines.append(f"stop: {dec.done}")
        self._add(img, cam, lines, HOLD_FRAMES)
        self.k += 1

    def on_tick(self, env: Any, dec: Any, P: np.ndarray, V: np.ndarray) -> Any:
        from dream2flow.pusht.execute import RATE_HZ

        every = max(1, int(round(TICK_EVERY_S * RATE_HZ)))
        cam = env.sim.camera_model()
        target = P[dec.t_target][V[dec.t_target]]

        def tick(k: int, t_s: float, backend: Any) -> None:
            if k % every == 0:
                img = env.sim.render_rgb().copy()
                _dots(img, cam, target, (40, 220, 40))
                _arrow(img, cam, dec.push)
                self._add(img, cam, [f"{self.dynamics} model: executing push {self.k}"])

        return tick

    def finish(self, env: Any, result: dict[str, Any]) -> None:
        img = env.sim.render_rgb().copy()
        self._add(img, env.sim.camera_model(),
                  [f"{self.dynamics}: {'SUCCESS' if result['success'] else 'FAILED'} after {result['pushes']} pushes",
                   f"block {result['final_position_error_m'] * 100:.1f} cm, {result['final_yaw_error_deg']:.1f} deg "
                   f"from the goal", f"stop: {result['stop_reason']}"], 2 * HOLD_FRAMES)


def run_demo(out_dir: str | Path, initial_state: int, seed: int, dynamics: str, cfg: Any, *,
             weights_dir: Any = None, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one episode with ``dynamics``; write ``demo.mp4``, the episode inputs and ``report.json``."""
    from dream2flow.io_utils import staged_output
    from dream2flow.pusht.episode import run_episode
    from dream2flow.video.encode import write_video

    t0 = time.perf_counter()
    progress(f"[pusht demo] initial state {initial_state}, seed {seed}, {dynamics} model, inputs: {cfg.inputs}")
    recs: dict[str, Recorder] = {}

    def factory(d: str) -> Recorder:
        recs[d] = Recorder(d)
        return recs[d]

    with staged_output(out_dir) as tmp:
        res = run_episode(initial_state, seed, (dynamics,), cfg, weights_dir=weights_dir, recorder_factory=factory,
                          out_dir=tmp)[0]
        rec = recs.get(dynamics)
        if rec is not None and rec.frames:
            write_video(tmp / "demo.mp4", np.stack(rec.frames), FPS)
        res = {**({"run": run} if run is not None else {}), **res, "total_seconds": round(time.perf_counter() - t0, 1),
               "files": sorted(p.name for p in tmp.iterdir()) + ["report.json"]}
        (tmp / "report.json").write_text(json.dumps(res, indent=1, sort_keys=True))
    verdict = "SUCCESS" if res["success"] else "FAILED"
    progress(f"[pusht demo] {verdict}: {res['pushes']} pushes, block {res.get('final_position_error_m', float('nan')) * 100:.1f} cm / "
             f"{res.get('final_yaw_error_deg', float('nan')):.1f} deg from the goal ({res['stop_reason']}) -> {out_dir}")
    return res
