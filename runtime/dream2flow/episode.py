"""Simulated episodes: scene → generated video → flow → (per method) plan → execute → success.

Used by ``dream2flow demo`` (one episode, all pictures) and ``dream2flow eval`` (many seeded
episodes, a table). The video and its flow are made once per episode and shared by every
method, so methods are compared on exactly the same inputs, as in the paper's Table I.
Failures are attributed to a stage (video, flow, grasp, plan, execution) as in its Fig. 6.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dream2flow.errors import Dream2FlowError, InvalidInput
from dream2flow.pipeline import METHODS, ProgressFn, StageRecord, _no_progress, _StageRunner

FAILURE_STAGES = ("video", "flow", "grasp", "plan", "execution")
ARTIFACTS = ("clean", "occlusion", "morphing")
INPUTS = ("privileged", "perceived")
INPUTS_DESCRIPTION = {
    "privileged": "privileged: the simulator's object box, relative video depth and thumb track",
    "perceived": "perceived: RGB video, I0, D0, camera, instruction and object prompt only; "
                 "the configured perception for the rest",
}


@dataclass
class MethodResult:
    method: str
    success: bool
    failure_stage: str | None
    error: str | None
    success_value: float | None
    stages: dict[str, StageRecord] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = {k: asdict(v) for k, v in self.stages.items()}
        return d


@dataclass
class EpisodeResult:
    """``inputs``: ``privileged`` | ``perceived`` (``INPUTS_DESCRIPTION``); ``backends``: role ->
    what served it in this episode's flow (``given_box``, ``onnx:<model>``, ...; empty when the
    episode failed before the flow)."""

    task: str
    seed: int
    artifacts: str
    methods: list[MethodResult]
    shared_stages: dict[str, StageRecord]
    inputs: str = "privileged"
    backends: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "seed": self.seed, "artifacts": self.artifacts, "inputs": self.inputs,
                "backends": dict(self.backends),
                "shared_stages": {k: asdict(v) for k, v in self.shared_stages.items()},
                "methods": [m.to_dict() for m in self.methods]}


def method_variant(name: str, planner_config: Any = None) -> tuple[str, Any]:
    """``dream2flow@MODE`` → ("dream2flow", the planner configuration with ``articulation=MODE``):
    one episode can compare Dream2Flow with and without its articulation use on the same flow
    (issue 18's before/after). Any other name is returned as it is, with ``planner_config``."""
    import dataclasses

    from dream2flow.planning.config import load_planner_config
    from dream2flow.planning.flowprep import ARTICULATION_MODES

    base, sep, mode = name.partition("@")
    if base not in METHODS or (sep and (base != "dream2flow" or mode not in ARTICULATION_MODES)):
        raise InvalidInput(f"unknown method '{name}' (choose from {', '.join(METHODS)}, or dream2flow@MODE with "
                           f"MODE one of {', '.join(ARTICULATION_MODES)})")
    if not sep:
        return base, planner_config
    return base, dataclasses.replace(planner_config or load_planner_config(), articulation=mode)


def _classify_failure(exc: Dream2FlowError, stage: str) -> str:
    from dream2flow.errors import PerceptionFailed, PlanningFailed

    if stage == "video":
        return "video"
    if isinstance(exc, PerceptionFailed) or stage == "flow":
        return "flow"
    if isinstance(exc, PlanningFailed):
        return "grasp" if "grasp" in exc.message.lower() else "plan"
    return "execution"


def run_episode(task: str, seed: int, *, methods: tuple[str, ...] = ("dream2flow",), artifacts: str = "clean",
                num_points: int = 256, num_frames: int = 48, rate_hz: float = 100.0, settle_s: float = 1.0,
                out_dir: str | Path | None = None, record_video: bool = False, inputs: str = "privileged",
                perception: Any = None, progress: ProgressFn = _no_progress,
                cancel: threading.Event | None = None, vary: str | None = None, planner_config: Any = None,
                impedance: str | None = None) -> EpisodeResult:
    """One seeded episode for each method. ``inputs``: ``privileged`` hands the flow stage the
    simulator's box, relative depth and thumb; ``perceived`` only what a robot has (RGB video,
    I0, D0, camera, object prompt), the rest from ``perception`` (a ``Perception``; None = the
    default configuration). ``out_dir`` (if given) receives the inputs, flow, plan and pictures;
    ``record_video`` renders the robot executing (``execution.mp4``); ``vary`` (instance | background |
    viewpoint) draws that factor of the seed's scene again (``sim/vary.py``); ``planner_config`` (a
    ``PlannerConfig``; default ``hw/robot/planner.toml``) for every method; ``dream2flow@MODE``
    plans with its articulation set to MODE (``method_variant``). ``impedance``: the simulated arm's
    joint gains for every method (``sim.robot.IMPEDANCES``; default ``stiff``)."""
    from dream2flow import sim
    from dream2flow.control.loop import execute_plan
    from dream2flow.flow.perceived import perceive_flow
    from dream2flow.perception.factory import load_perception
    from dream2flow.planning import plan_from_flow
    from dream2flow.planning.warmup import warm_in_background
    from dream2flow.provenance import KEY as PROVENANCE
    from dream2flow.provenance import sim_provenance

    variants = {m: method_variant(m, planner_config) for m in methods}
    if inputs not in INPUTS:
        raise InvalidInput(f"inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
    perception = perception if perception is not None else load_perception(None)
    # JAX and the compiled solvers load on the other core while the scene renders and the flow is
    # extracted; the plan stage waits for whatever is left of it (issue 21)
    warm = warm_in_background(methods=tuple(dict.fromkeys(b for b, _ in variants.values())), num_points=num_points)
    from dream2flow.planning.grasp_prefetch import start_worker

    start_worker()  # the grasp-proposal process starts up meanwhile too
    out = Path(out_dir) if out_dir else None
    shared = _StageRunner(progress, cancel)
    results: list[MethodResult] = []

    def fail_all(stage: str, exc: Dream2FlowError) -> EpisodeResult:
        kind = _classify_failure(exc, stage)
        res = [MethodResult(m, False, kind, exc.message, None) for m in methods]
        return EpisodeResult(task, seed, artifacts, res, shared.stages, inputs)

    try:
        env = shared.run("scene", lambda: sim.make_env(task, seed, vary=vary))
        observation = env.render_rgbd()
    except Dream2FlowError as exc:
        return fail_all("scene", exc)

    def _episode_rest() -> EpisodeResult:
        try:
            generated = shared.run("video", lambda: env.generate_video(artifacts, num_frames=num_frames, seed=seed))
        except Dream2FlowError as exc:
            return fail_all("video", exc)

        def _flow() -> Any:
            box = None
            if inputs == "privileged":  # the simulator's truth, labelled as such in every report
                box = box0 if box0 is not None else tuple(int(v) for v in env.object_box())
            ahead = early.flow_kwargs(perception, observation, box=box, prompt=env.object_prompt,
                                      seed=seed) if early is not None else {}
            if inputs == "privileged":
                return perceive_flow(generated.video, observation, perception=perception, box=box,
                                     video_depth=generated.rel_depth, thumb_px=generated.thumb_px,
                                     prompt=env.object_prompt, num_points=num_points, seed=seed, **ahead)
            return perceive_flow(generated.video, observation, perception=perception, prompt=env.object_prompt,
                                 num_points=num_points, seed=seed, **ahead)

        try:
            perceived = shared.run("flow", _flow)
        except Dream2FlowError as exc:
            failed = fail_all("flow", exc)
            failed.backends = _expected_backends(perception, inputs, generated.thumb_px is not None)
            return failed
        if early is not None:
            shared.stages["flow"].metrics.update(early.metrics())
        flow_result = perceived.result
        flow = flow_result.flow
        backends = dict(flow.meta.get("backends", {}))
        # the pictures and input files are written on a worker thread while the arm plans and moves
        # (issue 21: ~1.5 s of the demo); all are on disk before this returns, or their error raised
        writes = _BackgroundWrites()
        try:
            if out is not None:
                writes.submit(_write_episode_inputs, out, env, observation, generated, perceived.box, flow_result)

            for method in methods:
                runner = _StageRunner(progress, cancel)
                method_out = out / method if (out is not None and len(methods) > 1) else out
                if method_out is not None:
                    method_out.mkdir(parents=True, exist_ok=True)
                stage = "plan"
                try:
                    def _plan(method: str = method) -> Any:
                        _warmed(warm)
                        base, cfg = variants[method]
                        return plan_from_flow(flow, observation, q0=env.q_home, method=base,
                                              object_mask=flow_result.mask, thumb_px=perceived.thumb_px, config=cfg,
                                              prefetch=early.prefetch if early is not None else None)

                    plan = runner.run("plan", _plan)
                    plan.meta[PROVENANCE] = sim_provenance(task, seed)
                    if method_out is not None:
                        from dream2flow.planning.pictures import write_plan_png

                        plan.save(method_out / "plan.npz")
                        writes.submit(write_plan_png, method_out / "plan.png", plan, flow)
                    stage = "execute"
                    run_env = sim.make_env(task, seed, vary=vary)  # a fresh, identical scene: methods never see each other's state
                    backend = run_env.robot_backend(impedance=impedance)
                    recorder = run_env.background_frames(EXECUTION_VIDEO_SCALE) if record_video else None
                    on_tick = _frame_recorder(recorder, rate_hz) if recorder is not None else None
                    ran: dict[str, Any] = {}

                    def _execute() -> Any:
                        from dream2flow.errors import ExecutionFailed

                        res = execute_plan(plan, backend, rate_hz=rate_hz, stop_event=cancel, on_tick=on_tick)
                        ran["result"] = res
                        # Let the world come to rest (a released piece falls into the bowl) before the check.
                        for k in range(int(settle_s * rate_hz)):
                            backend.step(1.0 / rate_hz)
                            if on_tick is not None:
                                on_tick(res.commands_sent + k, 0.0, backend)
                        if not res.ok:
                            raise ExecutionFailed(res.reason)
                        return res

                    verdict: tuple[str, bool] | None = None
                    try:
                        try:
                            runner.run("execute", _execute)
                        except Dream2FlowError as exc:
                            verdict = (f"STOPPED: {exc.message}", False)
                            raise
                        stage = "check"
                        outcome = runner.run("check", run_env.success)
                        verdict = (f"{'SUCCESS' if outcome.success else 'FAILED'}: {outcome.reason}", bool(outcome.success))
                    finally:  # a failed run's video is the most useful picture of all
                        frames = recorder.frames() if recorder is not None else []
                        if method_out is not None and frames and "result" in ran:
                            _write_execution_video(method_out / "execution.mp4", frames, ran["result"], plan,
                                                   scaled_camera(run_env.camera_model(), *recorder.size()), rate_hz, verdict)
                    failure = None if outcome.success else ("grasp" if _object_never_moved(outcome) else "execution")
                    results.append(MethodResult(method, bool(outcome.success), failure,
                                                None if outcome.success else outcome.reason, float(outcome.value),
                                                runner.stages))
                except Dream2FlowError as exc:
                    results.append(MethodResult(method, False, _classify_failure(exc, stage), exc.message, None,
                                                runner.stages))
        finally:
            writes.wait()
        return EpisodeResult(task, seed, artifacts, results, shared.stages, inputs, backends)

    # I0 is detected (perceived inputs: by the configured detector) and segmented, and the grasps
    # proposed, while the video is generated (early.EarlyPerception, issue 21)
    from dream2flow.early import EarlyPerception

    box0, early = None, None
    try:
        if inputs == "privileged":
            box0 = tuple(int(v) for v in env.object_box())
        early = EarlyPerception(perception, observation, box=box0, prompt=env.object_prompt, seed=seed,
                                planner_config=variants[methods[0]][1])
    except Dream2FlowError:  # left for the flow stage to report
        box0, early = None, None
    try:
        return _episode_rest()
    finally:
        if early is not None:
            early.close()



class _BackgroundWrites:
    """Output files written in order on one worker thread; ``wait()`` blocks until all are written
    and raises the first error (the files are the run's record: none may be silently missing)."""

    def __init__(self) -> None:
        self._pool: Any = None
        self._futures: list[Any] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d2f-writes")
        self._futures.append(self._pool.submit(fn, *args))

    def wait(self) -> None:
        try:
            for f in self._futures:
                f.result()
        finally:
            self._futures = []
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def _expected_backends(perception: Any, inputs: str, sim_thumb: bool) -> dict[str, Any]:
    """What serves each role in a flow that failed before recording it (the given inputs in a
    privileged run, the configured backends otherwise)."""
    from dream2flow.flow.perceived import GIVEN_BOX, GIVEN_THUMB

    b: dict[str, Any] = dict(perception.backends())
    if inputs == "privileged":
        b.update(detector=GIVEN_BOX, video_depth="given_video_depth", hand=GIVEN_THUMB if sim_thumb else None)
    return b


def _warmed(warm: Any) -> None:
    """Wait for the background warm-up; its failure is left for the plan itself to report."""
    try:
        warm.result()
    except Exception:  # noqa: BLE001
        pass


def _object_never_moved(outcome: Any) -> bool:
    """The check says whether the object moved (``moved``), else its ``value`` is the task's progress
    measure (0 = untouched)."""
    moved = getattr(outcome, "moved", None)
    if moved is not None:
        return not moved
    return abs(float(getattr(outcome, "value", 0.0))) < 1e-3 or "not moved" in str(getattr(outcome, "reason", ""))


EXECUTION_VIDEO_FPS = 10.0
# frame size of the execution video relative to the camera (480x360 for the sim's 640x480), drawn
# without multisampling: a third of the rendering time of full-size frames, and rendering was most
# of `demo` (issue 21); the motion and the overlay stay plain to see
EXECUTION_VIDEO_SCALE = 0.75


def scaled_camera(camera: Any, width: int, height: int) -> Any:
    """``camera`` for an image resized to ``width`` x ``height`` px (same view: pixel centres map
    as ``u' = (u + 0.5)·sx − 0.5``), to draw projected points on smaller frames."""
    import dataclasses

    sx, sy = width / camera.width, height / camera.height
    K = np.array(camera.K, dtype=np.float64)
    K[0, 0], K[0, 1], K[1, 1] = K[0, 0] * sx, K[0, 1] * sx, K[1, 1] * sy
    K[0, 2], K[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
    return dataclasses.replace(camera, K=K, width=int(width), height=int(height))


def _frame_recorder(recorder: Any, rate_hz: float, fps: float = EXECUTION_VIDEO_FPS) -> Callable:
    """``on_tick`` that queues a frame of the scene every ``rate_hz / fps`` control ticks on
    ``recorder`` (``sim.frames.BackgroundFrames``: drawn on a worker thread while the loop runs,
    without shadows and reflections -- rendering was most of the demo's time otherwise, issue 21;
    the frame is a picture for people, not a camera image the pipeline reads)."""
    every = max(1, int(round(rate_hz / fps)))

    def on_tick(k: int, t_s: float, backend: Any) -> None:
        if k % every == 0:
            recorder.add(k)

    return on_tick


def _write_execution_video(path: Path, frames: list[tuple[int, np.ndarray]], result: Any, plan: Any, camera: Any,
                           rate_hz: float, verdict: tuple[str, bool] | None) -> Path:
    """``execution.mp4``: the rendered frames with the loop's overlay (``control.pictures``)."""
    from dream2flow.control.pictures import annotate_execution
    from dream2flow.video.encode import write_video

    ticks = [k for k, _ in frames]
    drawn = annotate_execution([f for _, f in frames], ticks, rate_hz=rate_hz, result=result, plan=plan,
                               camera=camera, outcome=verdict[0] if verdict else None,
                               outcome_ok=verdict[1] if verdict else None, fps=EXECUTION_VIDEO_FPS)
    return write_video(path, drawn, EXECUTION_VIDEO_FPS)


def _write_episode_inputs(out: Path, env: Any, observation: Any, generated: Any, box: tuple, flow_result: Any) -> None:
    from dream2flow.config import save_camera
    from dream2flow.flow.pictures import write_flow_png, write_tracks_video
    from dream2flow.io_utils import write_rgb
    from dream2flow.video.encode import write_video

    out.mkdir(parents=True, exist_ok=True)
    write_rgb(out / "i0.png", observation.rgb)
    np.save(out / "d0.npy", observation.depth_m)
    save_camera(observation.camera, out / "camera.toml", comment=f"simulated camera of task {env.task}, seed {env.seed}")
    write_video(out / "video.mp4", generated.video.frames, generated.video.fps)
    (out / "box.txt").write_text(",".join(f"{float(v):g}" for v in box) + "\n")
    flow_result.flow.save(out / "flow.npz")
    write_tracks_video(out / "tracks.mp4", generated.video, flow_result.tracks_px, flow_result.visible_2d)
    write_flow_png(out / "flow.png", flow_result.flow, observation.rgb)


def success_table(episodes: list[EpisodeResult], methods: tuple[str, ...]) -> dict[str, Any]:
    """Successes per (task, method) and failures per stage, the paper's Table I + Fig. 6."""
    tasks = sorted({e.task for e in episodes}, key=[e.task for e in episodes].index)
    table: dict[str, dict[str, dict[str, int]]] = {}
    failures: dict[str, dict[str, int]] = {m: {s: 0 for s in FAILURE_STAGES} for m in methods}
    for task in tasks:
        table[task] = {}
        for m in methods:
            rs = [r for e in episodes if e.task == task for r in e.methods if r.method == m]
            table[task][m] = {"success": sum(r.success for r in rs), "episodes": len(rs)}
            for r in rs:
                if not r.success and r.failure_stage:
                    failures[m][r.failure_stage] += 1
    return {"table": table, "failures_by_stage": failures}


def backends_used(episodes: list[EpisodeResult]) -> dict[str, list[str]]:
    """role -> the distinct backends that served it over the episodes (``None`` shown as "none")."""
    out: dict[str, list[str]] = {}
    for e in episodes:
        for role, name in e.backends.items():
            out.setdefault(role, [])
            label = name or "none"
            if label not in out[role]:
                out[role].append(label)
    return out


def format_table(summary: dict[str, Any], methods: tuple[str, ...], artifacts: str, *, inputs: str = "privileged",
                 backends: dict[str, list[str]] | None = None, perception: str = "") -> str:
    table, failures = summary["table"], summary["failures_by_stage"]
    w = max([len(t) for t in table] + [10])
    lines = [f"inputs: {INPUTS_DESCRIPTION.get(inputs, inputs)}"]
    if backends:
        lines.append("backends: " + ", ".join(f"{r}={'/'.join(v)}" for r, v in backends.items())
                     + (f" (perception {perception})" if perception else ""))
    lines += [f"artifacts: {artifacts}", f"{'task':<{w}} " + " ".join(f"{m:>14}" for m in methods)]
    for task, row in table.items():
        lines.append(f"{task:<{w}} " + " ".join(f"{row[m]['success']:>8}/{row[m]['episodes']:<5}" for m in methods))
    lines.append("")
    lines.append(f"failures by stage: {'method':<14} " + " ".join(f"{s:>10}" for s in FAILURE_STAGES))
    for m in methods:
        lines.append(f"{'':<19}{m:<14} " + " ".join(f"{failures[m][s]:>10}" for s in FAILURE_STAGES))
    return "\n".join(lines)


def episodes_to_json(episodes: list[EpisodeResult], summary: dict[str, Any], **header: Any) -> str:
    return json.dumps({**header, **summary, "episodes": [e.to_dict() for e in episodes]}, indent=2, sort_keys=True)
