"""The whole method as one composition of stages: video → flow → grasp + plan → execute → check.

Two entry points:
- ``run_task``: the robot-side path (used by the service and the CLI): given the current
  observation (I0, D0, camera), a generated video and the object prompt (box, relative depth
  and thumb are optional overrides; the configured perception finds them otherwise),
  produce flow and plan and execute them on a ``RobotBackend``.
- ``run_episode``: one simulated episode (scene → generated video → ``run_task`` → success
  check) used by ``dream2flow demo`` and ``dream2flow eval``.
Stages report progress through a callback; every failure is a ``Dream2FlowError`` carrying
the stage it happened in, so reports can break failures down by stage (paper Fig. 6).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dream2flow.errors import Dream2FlowError, InvalidInput
from dream2flow.types import RGBD, ObjectFlow, Plan, Video

STAGES = ("scene", "video", "flow", "plan", "execute", "check")
METHODS = ("dream2flow", "rigid_avdc", "rigid_rigvid")

ProgressFn = Callable[[str, float, dict[str, Any]], None]
"""``progress(stage, fraction_done 0..1, metrics)``."""


def _no_progress(stage: str, fraction: float, metrics: dict[str, Any]) -> None:
    return None


@dataclass
class StageRecord:
    ok: bool
    seconds: float
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskInputs:
    """Everything ``run_task`` needs: the observation (I0, D0, camera), the video and the task's
    words. ``box`` (x0,y0,x1,y1 px in I0), ``video_depth`` (relative [T,H,W]) and ``thumb_px``
    ([T,2] or [2]) are optional overrides; without them ``perception`` (a
    ``perception.factory.Perception``; None = the default configuration) finds the box from
    ``object_prompt``, computes the depth and looks for the hand. ``fit``: how the video was
    fitted to the camera (``video.fit.Fit``), if it was. ``early``: I0's detection / segmentation and
    the grasp proposals started before the video existed (``early.EarlyPerception``, on these
    ``observation``, ``box``, ``object_prompt``, ``perception`` and ``seed``; used where it matches);
    whoever started it closes it."""

    observation: RGBD
    video: Video
    video_depth: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    instruction: str = ""
    object_prompt: str = ""
    perception: Any = None
    fit: Any = None
    method: str = "dream2flow"
    seed: int = 0
    num_points: int = 256
    q0: np.ndarray | None = None
    thumb_px: np.ndarray | None = None
    dry_run: bool = False
    rate_hz: float = 100.0
    early: Any = None


@dataclass
class TaskOutcome:
    ok: bool
    failed_stage: str | None
    error: str | None
    stages: dict[str, StageRecord]
    flow: ObjectFlow | None = None
    plan: Plan | None = None
    execution: Any = None
    artifacts: dict[str, str] = field(default_factory=dict)
    error_kind: str | None = None  # the Dream2FlowError subclass name, e.g. "AlignmentFailed"
    error_code: str | None = None  # its gRPC status code name, e.g. "ABORTED"


class _StageRunner:
    """Times stages, records errors with their stage, reports progress."""

    def __init__(self, progress: ProgressFn, cancel: threading.Event | None) -> None:
        self.progress = progress
        self.cancel = cancel
        self.stages: dict[str, StageRecord] = {}

    def run(self, stage: str, fn: Callable[[], Any]) -> Any:
        if self.cancel is not None and self.cancel.is_set():
            from dream2flow.errors import ExecutionFailed

            raise ExecutionFailed("cancelled", stage=stage)
        self.progress(stage, 0.0, {})
        t0 = time.perf_counter()
        try:
            out = fn()
        except Dream2FlowError as exc:
            exc.stage = exc.stage or stage
            self.stages[stage] = StageRecord(False, time.perf_counter() - t0, exc.message)
            raise
        except Exception as exc:  # unexpected: record it with the stage, re-raise as-is
            self.stages[stage] = StageRecord(False, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
            raise
        from dream2flow.stage_metrics import stage_metrics

        rec = StageRecord(True, time.perf_counter() - t0, metrics=stage_metrics(out))
        self.stages[stage] = rec
        metrics: dict[str, Any] = {**rec.metrics, "seconds": round(rec.seconds, 3)}
        if isinstance(out, Plan):
            metrics["plan_duration_s"] = round(out.duration_s, 3)
        self.progress(stage, 1.0, metrics)
        return out


def run_task(inputs: TaskInputs, backend: Any, *, out_dir: str | Path | None = None,
             progress: ProgressFn = _no_progress, cancel: threading.Event | None = None,
             on_tick: Callable[[int, float, Any], None] | None = None, pictures: bool = True) -> TaskOutcome:
    """Flow → plan → execute on ``backend``. Never raises a ``Dream2FlowError``: the outcome
    says which stage failed and why. Artifacts go to ``out_dir`` when given."""
    from dream2flow.control.loop import execute_plan
    from dream2flow.flow.perceived import perceive_flow
    from dream2flow.perception.factory import load_perception
    from dream2flow.planning import plan_from_flow

    if inputs.method not in METHODS:
        raise InvalidInput(f"unknown method '{inputs.method}' (choose from {', '.join(METHODS)})")
    runner = _StageRunner(progress, cancel)

    def phases(stage: str) -> Callable[[str, float], None]:
        """Progress inside a stage (perception role / solver phase); a cancel stops it there."""

        def cb(phase: str, fraction: float) -> None:
            if cancel is not None and cancel.is_set():
                from dream2flow.errors import ExecutionFailed

                raise ExecutionFailed(f"cancelled during {stage} ({phase})", stage=stage)
            progress(stage, fraction, {"phase": phase})

        return cb

    out = Path(out_dir) if out_dir else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, str] = {}
    flow = plan = execution = None
    try:
        early = inputs.early

        def _flow() -> Any:
            perception = inputs.perception if inputs.perception is not None else load_perception(None)
            ahead = early.flow_kwargs(perception, inputs.observation, box=inputs.box, prompt=inputs.object_prompt,
                                      seed=inputs.seed) if early is not None else {}
            return perceive_flow(inputs.video, inputs.observation, perception=perception, box=inputs.box,
                                 prompt=inputs.object_prompt, video_depth=inputs.video_depth,
                                 thumb_px=inputs.thumb_px, num_points=inputs.num_points, seed=inputs.seed,
                                 fit=inputs.fit, progress=phases("flow"), **ahead)

        perceived = runner.run("flow", _flow)
        result = perceived.result
        flow = result.flow
        if out is not None:
            artifacts["flow"] = str(flow.save(out / "flow.npz"))
            if pictures:
                from dream2flow.flow.pictures import write_flow_png, write_tracks_video

                artifacts["tracks_video"] = str(write_tracks_video(out / "tracks.mp4", inputs.video,
                                                                   result.tracks_px, result.visible_2d) or out / "tracks.mp4")
                artifacts["flow_png"] = str(write_flow_png(out / "flow.png", flow, inputs.observation.rgb) or out / "flow.png")
        plan = runner.run("plan", lambda: plan_from_flow(
            flow, inputs.observation, q0=inputs.q0, method=inputs.method, object_mask=result.mask,
            thumb_px=perceived.thumb_px, progress=phases("plan"),
            prefetch=early.prefetch if early is not None else None))
        if out is not None:
            artifacts["plan"] = str(plan.save(out / "plan.npz"))
            if pictures:
                from dream2flow.planning.pictures import write_plan_png

                artifacts["plan_png"] = str(write_plan_png(out / "plan.png", plan, flow) or out / "plan.png")

        def _execute() -> Any:
            res = execute_plan(plan, backend, rate_hz=inputs.rate_hz, dry_run=inputs.dry_run,
                               stop_event=cancel, on_tick=on_tick)
            if not res.ok:
                from dream2flow.errors import ExecutionFailed

                raise ExecutionFailed(res.reason)
            return res

        execution = runner.run("execute", _execute)
        if out is not None:
            artifacts["command_log"] = str(execution.save_log(out / "command_log.npz"))
    except Dream2FlowError as exc:
        return TaskOutcome(False, exc.stage, exc.message, runner.stages, flow, plan, execution, artifacts,
                           error_kind=type(exc).__name__, error_code=exc.grpc_code)
    return TaskOutcome(True, None, None, runner.stages, flow, plan, execution, artifacts)
