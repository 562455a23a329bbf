"""The task runner: one thread that takes QUEUED tasks in order and runs them one at a time
(observe → fetch → decode → flow → plan → execute → record), never inside the event loop.

Why one thread, one task: only one task may move the robot at a time, and the control loop
must not share a thread with the network. Motion modes:

- READY: queued tasks run.
- ESTOPPED (``estop``): the backend holds position, the running task's cancel event is set,
  every queued task is CANCELLED, motion commands are refused by the ``GuardedBackend``
  gate; only ``reset`` leaves it. Dry runs (no motion) still run, and say so.
- HELD: the server restarted and found queued tasks. They stay QUEUED (nothing lost) but do
  not start by themselves: an operator's ``reset`` releases them (no motion resumes
  without a person deciding so). Dry runs run; a task that waits gets an event saying why.

Simulation: each task starts from the seeded scene (``Devices.reset_scene``), a simulated arm
is let come to rest after every task (its state then reports zero velocity, as a real arm's
does after a stop), and a task that ran on the simulated scene gets the scene's own success
check as its ``outcome`` (ACHIEVED / NOT_ACHIEVED); anything else is NOT_CHECKED.
"""

from __future__ import annotations

import io
import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dream2flow.errors import Dream2FlowError, ExecutionFailed, InvalidInput, NotReady
from dream2flow.log import get_logger
from dream2flow.service.devices import Devices
from dream2flow.service.probe import ProbePool, probe_depth_file
from dream2flow.service.store import TERMINAL, StaleState, Store

log = get_logger("service.runner")

READY, ESTOPPED, HELD = "READY", "ESTOPPED", "HELD"
# Failure kind per pipeline stage when the pipeline reports only a message.
_STAGE_KIND = {"flow": "PerceptionFailed", "plan": "PlanningFailed", "execute": "ExecutionFailed"}
_KIND_CODE = {"InvalidInput": "INVALID_ARGUMENT", "NotReady": "FAILED_PRECONDITION", "ModelMismatch": "FAILED_PRECONDITION",
              "PerceptionFailed": "ABORTED", "AlignmentFailed": "ABORTED", "PlanningFailed": "ABORTED",
              "Unreachable": "ABORTED", "SafetyViolation": "ABORTED", "ExecutionFailed": "ABORTED",
              "ResourceExhausted": "RESOURCE_EXHAUSTED", "DataLoss": "DATA_LOSS"}


@dataclass
class Running:
    task_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""
    stage: str = ""  # the stage running now
    cancel_stage: str = ""  # the stage that was running when the cancel / e-stop arrived

    def request_cancel(self, reason: str) -> None:
        if not self.cancel.is_set():
            self.cancel_stage = self.stage
        self.cancel_reason = self.cancel_reason or reason
        self.cancel.set()


class TaskRunner:
    """Owns the runner thread. ``notify(task_id)`` is called after every event (the server uses
    it to wake WatchTask streams); ``on_mode(mode, reason)`` after every mode change."""

    def __init__(self, store: Store, devices: Devices, cfg: Any, *, probe_pool: ProbePool,
                 notify: Callable[[str], None] = lambda tid: None,
                 on_mode: Callable[[str, str], None] = lambda m, r: None,
                 pipeline: Callable[..., Any] | None = None) -> None:
        self.store = store
        self.devices = devices
        self.cfg = cfg
        self.probe_pool = probe_pool
        self.notify = notify
        self.on_mode = on_mode
        self._pipeline = pipeline
        self.resolver: Callable[[str, int], list[str]] | None = None  # tests: DNS answers for fetches
        from dream2flow.perception.factory import load_perception
        from dream2flow.service.config import perception_spec

        # One perception for every task (models load on first use, then stay loaded).
        self.perception = load_perception(perception_spec(cfg))
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self.mode = READY
        self.mode_reason = ""
        self.current: Running | None = None
        self._stopping = False
        self.warmup: dict[str, Any] | None = None  # the start-up warm-up's report (seconds, executables)
        self._thread = threading.Thread(target=self._loop, name="d2f-task-runner", daemon=True)

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def hold(self, reason: str) -> None:
        with self._lock:
            if self.mode == READY:
                self.mode, self.mode_reason = HELD, reason
        self.on_mode(self.mode, self.mode_reason)

    def shutdown(self, reason: str = "the server is shutting down", timeout_s: float = 10.0) -> None:
        """Stop taking tasks; stop motion of a running one (it ends CANCELLED); wait for the thread."""
        with self._wake:
            self._stopping = True
            cur = self.current
            if cur is not None:
                cur.request_cancel(reason)
            self._wake.notify_all()
        if cur is not None:
            self.devices.stop_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self.cfg.perception.early:  # the early perception's worker thread and grasp process end with the server
            from dream2flow.flow.early import shutdown as end_segment_worker
            from dream2flow.planning.grasp_prefetch import stop_worker

            end_segment_worker()
            stop_worker()

    def cancel(self, task_id: str, reason: str) -> dict[str, Any]:
        """Cancel a queued task now, or stop a running one (it becomes CANCELLED when its stage
        returns). Returns the task record."""
        for _ in range(50):  # a task claimed at this very moment is retried (bounded)
            with self._lock:
                cur = self.current
                running = cur is not None and cur.task_id == task_id
                if running:
                    cur.request_cancel(reason)
            if running:
                self.devices.stop_all()
                self.store.update_task(task_id, cancel_requested=True)
                self._event(task_id, "PROGRESS", message=f"cancel requested: {reason}")
                return self.store.get_task(task_id)
            task = self.store.get_task(task_id)
            if task["state"] == "QUEUED":
                try:
                    task = self.store.transition(task_id, "CANCELLED", reason, expect_from=("QUEUED",),
                                                 error_code="CANCELLED", error_message=reason)
                    self.notify(task_id)
                    return task
                except StaleState:
                    continue
            if task["state"] == "CANCELLED":
                return task
            if task["state"] != "RUNNING":
                raise TaskFinished(f"task {task_id} already finished ({task['state']})", reason="TASK_FINISHED")
            time.sleep(0.02)
        raise NotReady(f"task {task_id} could not be cancelled right now; retry", reason="STILL_STOPPING",
                       retry_after_s=0.2)

    def estop(self, reason: str) -> tuple[str, int]:
        """Emergency stop → (the stopped task id or "", number of queued tasks cancelled)."""
        with self._lock:
            cur = self.current
            if cur is not None:  # marked before the gate trips: a motion it refuses reads as this stop, not a failure
                cur.cancel_reason = ""
                cur.request_cancel(f"emergency stop: {reason}")
            self.devices.trip_estop()  # from now on the gate refuses every motion command
            self.mode, self.mode_reason = ESTOPPED, reason
        self.devices.stop_all()
        self.on_mode(ESTOPPED, reason)
        cancelled = 0
        for tid in self.store.queued_ids():
            try:
                self.store.transition(tid, "CANCELLED", f"emergency stop: {reason}", expect_from=("QUEUED",),
                                      error_code="CANCELLED", error_message=f"emergency stop: {reason}")
                cancelled += 1
                self.notify(tid)
            except StaleState:
                pass
        if cur is not None:
            self.store.update_task(cur.task_id, cancel_requested=True)
        return (cur.task_id if cur else ""), cancelled

    def _hold_on_robot_fault(self) -> None:
        """A robot reflex (a backend's latched fault) holds the service like an e-stop: the task
        already failed with libfranka's reason; nothing else runs until an operator's Reset."""
        faults = self.devices.robot_faults()
        if faults:
            self.estop(f"robot reflex: {'; '.join(faults)}")

    def reset(self) -> None:
        with self._wake:
            if self.current is not None and self.current.cancel.is_set():
                raise NotReady(f"task {self.current.task_id} is still stopping; retry Reset in a moment",
                               reason="STILL_STOPPING", retry_after_s=0.2)
            self.devices.recover_faults()  # the operator's Reset is the explicit recovery request
            self.mode, self.mode_reason = READY, ""
            self.devices.estop.clear()
            self._wake.notify_all()
        self.on_mode(READY, "")

    def note_waiting(self, task_id: str, dry_run: bool) -> None:
        """A task submitted while not READY: an event saying what happens to it (never silent)."""
        with self._lock:
            mode, why = self.mode, self.mode_reason
        if mode == READY:
            return
        what = "the emergency stop is active" if mode == ESTOPPED else "queued tasks are held after a restart"
        if dry_run:
            msg = f"{what}: this dry run runs anyway (it sends no motion)"
        else:
            msg = f"waiting: {what} ({why}); it starts after an operator's Reset"
        self._event(task_id, "PROGRESS", message=msg)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"mode": self.mode, "mode_reason": self.mode_reason,
                    "running_task_id": self.current.task_id if self.current else ""}

    # -- the thread -------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Compile (or load from the persistent cache) the planner's executables before the first
        task, on this thread: the server listens meanwhile, a task submitted now waits its turn."""
        from dream2flow.log import progress
        from dream2flow.pipeline import METHODS
        from dream2flow.planning.warmup import warm_planner

        try:
            if self.cfg.perception.early:
                from dream2flow.planning.grasp_prefetch import start_worker

                start_worker()  # the grasp-proposal process starts up while the planner compiles
            self.warmup = warm_planner(methods=tuple(METHODS))
            progress(f"dream2flow serve: planner warmed up in {self.warmup['seconds']:.1f} s "
                     f"({len(self.warmup['executables'])} compiled executables)")
        except Exception as exc:  # a cold first task is slower, not wrong
            self.warmup = {"error": f"{type(exc).__name__}: {exc}"}
            log.warning("planner warm-up failed (the first task compiles instead): %s", exc)

    def _loop(self) -> None:
        if self.cfg.server.warm_up:
            self._warm_up()
        while True:
            with self._wake:
                if self._stopping:
                    return
                task = None
                try:  # not READY: only dry runs (no motion) may start
                    task = self.store.claim_next(dry_run_only=self.mode != READY)
                except Exception:
                    log.exception("could not claim the next task")
                if task is not None:
                    self.current = Running(task["task_id"])
                if task is None:
                    self._wake.wait(timeout=1.0)  # re-polls the store: robust to a lost wake-up
                    continue
                cur = self.current
            assert cur is not None
            self.notify(cur.task_id)
            try:
                self._run(task, cur)
                self._hold_on_robot_fault()
            except Exception:  # the runner thread must survive anything
                log.exception("task %s: runner error", cur.task_id)
            finally:
                self._settle()  # (normally done before the task was reported finished)
                with self._lock:
                    self.current = None

    def _event(self, task_id: str, kind: str, **kw: Any) -> None:
        try:
            self.store.add_event(task_id, kind, **kw)
        finally:
            self.notify(task_id)

    def _finish(self, task_id: str, to_state: str, reason: str, **fields: Any) -> None:
        try:
            self.store.transition(task_id, to_state, reason, expect_from=("RUNNING",), **fields)
        finally:
            self.notify(task_id)

    def _run(self, task: dict[str, Any], cur: Running) -> None:
        tid = task["task_id"]
        req = task["request"]
        tdir = self.store.task_dir(tid)
        tdir.mkdir(parents=True, exist_ok=True)
        ctx = _TaskContext(self, tid, tdir, cur)
        outcome = None
        early: Any = None
        try:
            if cur.cancel.is_set():
                raise ExecutionFailed("cancelled before it started", stage="observe")
            if self.devices.reset_scene():
                ctx.metrics({"sim_scene_reset": 1.0})
            rgbd = ctx.stage("observe", lambda: self._observe(ctx))
            early = self._start_early(req, rgbd)
            paths = ctx.stage("fetch", lambda: self._fetch(ctx, req, rgbd, cur.cancel))
            video, video_depth = ctx.stage("decode", lambda: self._decode(ctx, req, paths, rgbd))
            opts = req["options"]
            backend = self.devices.backend(opts.get("backend") or None)
            q0 = None
            try:
                q0 = np.asarray(backend.state().q, dtype=np.float64)
            except Exception as exc:
                raise NotReady(f"cannot read the robot's joints: {exc}", stage="execute") from None
            from dream2flow.pipeline import TaskInputs

            box = req.get("box")
            inputs = TaskInputs(observation=rgbd, video=video, video_depth=video_depth,
                                box=tuple(box) if box else None, instruction=req["instruction"],
                                object_prompt=req.get("object_prompt", ""), perception=self.perception,
                                method=opts.get("method") or "dream2flow",
                                seed=int(opts.get("seed", 0)), num_points=int(opts.get("num_points") or 256),
                                q0=q0, thumb_px=paths.get("thumb_px"), dry_run=bool(opts.get("dry_run")),
                                rate_hz=float(self.cfg.robot.rate_hz), early=early)
            if cur.cancel.is_set():
                raise ExecutionFailed("cancelled", stage="decode")
            ctx.current_stage = "flow"
            outcome = self.pipeline()(inputs, backend, out_dir=tdir, progress=ctx.progress, cancel=cur.cancel,
                                      on_tick=ctx.on_tick)
        except Dream2FlowError as exc:
            self._end_early(early, ctx, None)
            stage = exc.stage or ctx.current_stage or ""
            self._fail(tid, cur, stage, type(exc).__name__, exc.grpc_code, exc.message, ctx)
            return
        except Exception as exc:  # a bug somewhere below: the task fails, the server lives
            log.error("task %s: unexpected error\n%s", tid, traceback.format_exc())
            self._end_early(early, ctx, None)
            self._fail(tid, cur, ctx.current_stage or "", type(exc).__name__, "INTERNAL",
                       f"internal error: {type(exc).__name__}: {str(exc)[:300]}", ctx)
            return
        finally:
            if early is not None:
                early.close()  # (done already on the paths above; idempotent)
        self._end_early(early, ctx, getattr(outcome, "plan", None))
        self._record(tid, cur, outcome, ctx)

    def _start_early(self, req: dict[str, Any], rgbd: Any) -> Any:
        """I0's detection (no box) / segmentation and the grasp proposals, started now, while the video is
        fetched, generated and decoded (``early.EarlyPerception``; [perception] early = false: none)."""
        if not self.cfg.perception.early or self.perception is None:
            return None
        from dream2flow.early import EarlyPerception

        box = req.get("box")
        return EarlyPerception(self.perception, rgbd, box=tuple(box) if box else None,
                               prompt=req.get("object_prompt", ""), seed=int(req["options"].get("seed", 0)))

    def _end_early(self, early: Any, ctx: "_TaskContext", plan: Any) -> None:
        """Before the task is reported finished: its early work done or dropped (``close``), and what
        ran early (and for how long) in its metrics."""
        if early is None:
            return
        try:
            early.close()
            ctx.metrics(early.metrics(plan))
        except Exception:  # the record of a task must not fail on its timings
            log.exception("task %s: closing the early perception failed", ctx.task_id)

    def pipeline(self) -> Callable[..., Any]:
        if self._pipeline is None:
            from dream2flow.pipeline import run_task

            self._pipeline = run_task
        return self._pipeline

    # -- stages ---------------------------------------------------------------------------
    def _observe(self, ctx: "_TaskContext") -> Any:
        from dream2flow.config import save_camera
        from dream2flow.io_utils import write_rgb

        rgbd = self.devices.capture(self.cfg.limits.observation_timeout_s)
        write_rgb(ctx.tdir / "i0.png", rgbd.rgb)
        np.save(ctx.tdir / "d0.npy", rgbd.depth_m.astype(np.float32), allow_pickle=False)
        save_camera(rgbd.camera, ctx.tdir / "camera.toml", comment="camera model at the task's observation")
        ctx.artifact("i0", "i0.png")
        ctx.artifact("d0", "d0.npy")
        ctx.artifact("camera", "camera.toml")
        return rgbd

    def _fetch(self, ctx: "_TaskContext", req: dict[str, Any], rgbd: Any, cancel: threading.Event) -> dict[str, Any]:
        from dream2flow.service import video_sources as vs

        src = req["video_source"]
        depth_src = req.get("video_depth") or {}
        out: dict[str, Any] = {}
        policy = self.fetch_policy(self.cfg.limits.max_video_bytes)
        dpolicy = self.fetch_policy(self.cfg.limits.max_depth_bytes)
        if "upload" in src:
            out["video"] = ctx.tdir / src["file"]
            out["video_probed"] = True
        elif "url" in src:
            f = vs.download(src["url"], ctx.tdir / "video.mp4", policy, cancel=cancel,
                            on_progress=ctx.bytes_progress("fetch"))
            out["video"] = f.path
            ctx.metrics({"fetch_video_bytes": float(f.size_bytes), "fetch_attempts": float(f.attempts)})
        elif "generate" in src:
            import cv2

            ok, png = cv2.imencode(".png", np.ascontiguousarray(rgbd.rgb[:, :, ::-1]))
            if not ok:  # pragma: no cover
                raise ExecutionFailed("could not encode I0 as PNG for the generator")
            vsc = self.cfg.video_sources
            import os

            gen = vs.GeneratorConfig(url=vsc.generator_url, poll_interval_s=vsc.generator_poll_interval_s,
                                     timeout_s=vsc.generator_timeout_s,
                                     token=os.environ.get(vsc.generator_token_env) if vsc.generator_token_env else None)
            res = vs.generate_video(gen, image_png=png.tobytes(), instruction=req["instruction"],
                                    object_prompt=req.get("object_prompt", ""),
                                    num_frames=int(src["generate"].get("num_frames") or vsc.generator_num_frames),
                                    seed=int(req["options"].get("seed", 0)), dest_dir=ctx.tdir, policy=policy,
                                    depth_policy=dpolicy, cancel=cancel,
                                    on_status=lambda s, t: ctx.progress("fetch", 0.5, {"generator_wait_s": t}))
            out["video"] = res.video.path
            ctx.metrics({"generator_s": res.seconds, "fetch_video_bytes": float(res.video.size_bytes)})
            if res.video_depth is not None and not depth_src:
                out["video_depth"] = res.video_depth.path
        else:  # pragma: no cover - validated at submit
            raise InvalidInput("task has no video source")
        if "upload" in depth_src:
            out["video_depth"] = ctx.tdir / depth_src["file"]
        elif "url" in depth_src:
            f = vs.download(depth_src["url"], ctx.tdir / "video_depth.npy", dpolicy, cancel=cancel)
            out["video_depth"] = f.path
        ctx.artifact("video", Path(out["video"]).name)
        if out.get("video_depth") is not None:
            ctx.artifact("video_depth", Path(out["video_depth"]).name)
        return out

    def fetch_policy(self, max_bytes: int) -> Any:
        from dream2flow.service.video_sources import FetchPolicy

        vsc = self.cfg.video_sources
        return FetchPolicy(connect_timeout_s=vsc.connect_timeout_s, read_timeout_s=vsc.read_timeout_s,
                           deadline_s=vsc.download_deadline_s, retries=vsc.retries, backoff_s=vsc.backoff_s,
                           max_bytes=max_bytes, allowed_hosts=tuple(vsc.url_allowed_hosts),
                           allowed_networks=tuple(vsc.url_allowed_networks), max_redirects=vsc.max_redirects,
                           resolver=self.resolver)

    def _decode(self, ctx: "_TaskContext", req: dict[str, Any], paths: dict[str, Any], rgbd: Any) -> tuple[Any, Any]:
        from dream2flow.video.decode import load_video

        lim = self.cfg.limits
        cam = rgbd.camera
        vpath = Path(paths["video"])
        if not paths.get("video_probed"):  # uploads were probed on arrival; others are probed here
            self.probe_pool.probe_video(str(vpath), lim.max_video_frames, lim.max_video_width_px,
                                        lim.max_video_height_px)
        if vpath.suffix.lower() not in (".mp4", ".avi", ".mkv", ".webm"):  # pragma: no cover
            raise InvalidInput(f"video file {vpath.name} has no video suffix")
        video = load_video(vpath, max_bytes=lim.max_video_bytes, max_frames=lim.max_video_frames,
                           expect_size=(cam.width, cam.height), resize=True,
                           max_decoded_bytes=lim.max_video_frames * cam.width * cam.height * 3)
        ctx.metrics({"video_frames": float(video.num_frames), "video_fps": float(video.fps)})
        dpath = paths.get("video_depth")
        if dpath is None:
            depth = None  # the flow stage runs the configured video-depth model
        else:
            info = probe_depth_file(str(dpath), lim.max_video_frames, lim.max_video_width_px, lim.max_video_height_px)
            if "error" in info:
                raise InvalidInput(f"video depth refused: {info['error']}")
            depth = np.load(dpath, allow_pickle=False).astype(np.float32)
            depth = fit_depth(depth, video.num_frames, cam.width, cam.height)
        return video, depth

    # -- outcome ----------------------------------------------------------------------------
    def _settle(self) -> None:
        """Before a task is reported finished: a simulated arm has come to rest (so the state a
        client reads right after the task ended shows it still)."""
        try:
            self.devices.settle()
        except Exception:
            log.exception("settling the simulated arm failed")

    def _fail(self, tid: str, cur: Running, stage: str, kind: str, code: str, message: str,
              ctx: "_TaskContext") -> None:
        self._settle()
        if not cur.cancel.is_set() and self.devices.estop.is_set():
            # EmergencyStop trips the gate at once and marks the running task a moment later (from a
            # worker): a motion the gate refused in between is this stop, not a failure of the task.
            if not cur.cancel.wait(timeout=2.0):
                cur.request_cancel("emergency stop")
        if cur.cancel.is_set():
            reason = cur.cancel_reason or "cancelled"
            stage = cur.cancel_stage or stage  # the stage that was stopped, not the one that noticed
            self._event(tid, "ERROR", stage=stage, message=f"stopped: {reason}", error_code="CANCELLED")
            self._finish(tid, "CANCELLED", reason, failed_stage=stage, error_code="CANCELLED", error_kind="ExecutionFailed",
                         error_message=reason, artifacts=ctx.artifacts, metrics=ctx.all_metrics,
                         outcome=_not_checked(f"the task was cancelled in {stage or 'its first stage'}"))
            return
        self._event(tid, "ERROR", stage=stage, message=message, error_code=code)
        self._finish(tid, "FAILED", f"{stage or 'task'} failed: {message}", failed_stage=stage, error_code=code,
                     error_kind=kind, error_message=message, artifacts=ctx.artifacts, metrics=ctx.all_metrics,
                     outcome=_not_checked(f"the task failed in {stage or 'its first stage'}"))

    def _record(self, tid: str, cur: Running, outcome: Any, ctx: "_TaskContext") -> None:
        self._settle()
        t0 = time.perf_counter()
        for name, path in (getattr(outcome, "artifacts", None) or {}).items():
            p = Path(path)
            try:
                ctx.artifacts[name] = str(p.resolve().relative_to(self.store.data_dir.resolve()))
            except ValueError:
                ctx.artifacts[name] = str(p)
        for name, rec in (getattr(outcome, "stages", None) or {}).items():
            ctx.all_metrics[f"{name}_s"] = float(getattr(rec, "seconds", 0.0))
        ex = getattr(outcome, "execution", None)
        if ex is not None:
            for key in ("commands_sent", "missed_periods", "max_tracking_error_rad", "duration_s"):
                v = getattr(ex, key, None)
                if isinstance(v, (int, float, np.integer, np.floating)):
                    ctx.all_metrics[f"execute_{key}"] = float(v)
        summary = {"ok": bool(outcome.ok), "failed_stage": outcome.failed_stage, "error": outcome.error,
                   "stages": {k: {"ok": v.ok, "seconds": v.seconds, "error": v.error}
                              for k, v in (outcome.stages or {}).items()},
                   "metrics": ctx.all_metrics, "artifacts": ctx.artifacts}
        (ctx.tdir / "outcome.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        ctx.artifact("outcome", "outcome.json")
        ctx.all_metrics["record_s"] = time.perf_counter() - t0
        if outcome.ok:
            check = self._outcome_check(ctx)
            summary["outcome_check"] = check
            (ctx.tdir / "outcome.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
            self._finish(tid, "SUCCEEDED", "done" if check["verdict"] == "NOT_CHECKED"
                         else f"done; outcome check: {check['verdict'].lower().replace('_', ' ')}",
                         artifacts=ctx.artifacts, metrics=ctx.all_metrics, outcome=check)
            return
        stage = outcome.failed_stage or ""
        kind = getattr(outcome, "error_kind", None) or _STAGE_KIND.get(stage, "Dream2FlowError")
        code = getattr(outcome, "error_code", None) or _KIND_CODE.get(kind, "ABORTED")
        self._fail(tid, cur, stage, kind, code, outcome.error or "failed", ctx)


    def _outcome_check(self, ctx: "_TaskContext") -> dict[str, Any]:
        """The scene's success check where the backend moved the simulated scene; else NOT_CHECKED."""
        req = self.store.get_task(ctx.task_id)["request"]
        opts = req.get("options", {})
        if opts.get("dry_run"):
            return _not_checked("dry run: nothing moved")
        backend = opts.get("backend") or self.cfg.robot.backend
        res = self.devices.success_check(backend, float(self.cfg.robot.rate_hz))
        if res is None:
            return _not_checked(f"backend {backend} cannot judge the outcome (no success check for it; "
                                "SUCCEEDED means the pipeline finished)")
        ctx.metrics({"outcome_value": float(res["value"]), "outcome_achieved": 1.0 if res["success"] else 0.0})
        return {"verdict": "ACHIEVED" if res["success"] else "NOT_ACHIEVED", "checker": res["checker"],
                "detail": res["reason"], "value": float(res["value"])}


def _not_checked(why: str) -> dict[str, Any]:
    return {"verdict": "NOT_CHECKED", "checker": "", "detail": why, "value": 0.0}


class TaskFinished(Dream2FlowError):
    exit_code = 3
    grpc_code = "FAILED_PRECONDITION"


class _TaskContext:
    """Per-task helpers: stage timing/events, throttled progress, artifacts, metrics."""

    def __init__(self, runner: TaskRunner, task_id: str, tdir: Path, running: Running | None = None) -> None:
        self.runner = runner
        self.task_id = task_id
        self.tdir = tdir
        self.running = running or Running(task_id)
        self._phase = ""
        self.artifacts: dict[str, str] = {}
        self.all_metrics: dict[str, float] = {}
        self._last_progress = 0.0
        self._plan_duration_s: float | None = None
        self._ticks = 0

    @property
    def current_stage(self) -> str:
        return self.running.stage

    @current_stage.setter
    def current_stage(self, stage: str) -> None:
        self.running.stage = stage

    def rel(self, name: str) -> str:
        return str((self.tdir / name).relative_to(self.runner.store.data_dir))

    def artifact(self, key: str, name: str) -> None:
        self.artifacts[key] = self.rel(name)

    def metrics(self, m: dict[str, float]) -> None:
        self.all_metrics.update({k: float(v) for k, v in m.items()})

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        self.current_stage = name
        self.runner._event(self.task_id, "STAGE_STARTED", stage=name)
        t0 = time.perf_counter()
        try:
            out = fn()
        except Dream2FlowError as exc:
            exc.stage = exc.stage or name
            raise
        dt = time.perf_counter() - t0
        self.all_metrics[f"{name}_s"] = dt
        self.runner._event(self.task_id, "STAGE_FINISHED", stage=name, progress=1.0, metrics={"seconds": dt})
        return out

    def progress(self, stage: str, fraction: float, metrics: dict[str, Any]) -> None:
        """The pipeline's progress callback: stage start/finish always; a new ``phase`` (a
        string in ``metrics``: the perception role or solver phase inside flow / plan) always,
        as the event's message; other progress throttled."""
        metrics = metrics or {}
        nums = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        phase = str(metrics.get("phase", "")) if isinstance(metrics.get("phase"), str) else ""
        if fraction <= 0.0 and not phase:
            self.current_stage = stage
            self._phase = ""
            self.runner._event(self.task_id, "STAGE_STARTED", stage=stage, metrics=nums)
            if stage == "execute":
                self._load_plan_duration()
        elif fraction >= 1.0 and not phase:
            self.runner._event(self.task_id, "STAGE_FINISHED", stage=stage, progress=1.0, metrics=nums)
        else:
            now = time.monotonic()
            if (phase and phase != self._phase) or now - self._last_progress >= 0.25:
                self._phase = phase or self._phase
                self._last_progress = now
                self.runner._event(self.task_id, "PROGRESS", stage=stage, progress=min(0.99, max(0.0, float(fraction))),
                                   message=phase, metrics=nums)

    def bytes_progress(self, stage: str) -> Callable[[int, int | None], None]:
        def cb(n: int, total: int | None) -> None:
            self.progress(stage, min(0.99, n / total) if total else 0.5, {"bytes": n})

        return cb

    def _load_plan_duration(self) -> None:
        try:
            with np.load(self.tdir / "plan.npz", allow_pickle=False) as z:
                self._plan_duration_s = float(z["dt_s"]) * (int(z["q"].shape[0]) - 1)
        except Exception:
            self._plan_duration_s = None

    def on_tick(self, i: int, t_s: float, backend: Any) -> None:
        """Control-loop tick (runs in the loop's thread): a throttled execute progress event."""
        self._ticks += 1
        now = time.monotonic()
        if now - self._last_progress < 0.25:
            return
        self._last_progress = now
        dur = self._plan_duration_s
        frac = min(0.99, max(0.0, t_s / dur)) if dur else 0.5
        self.runner._event(self.task_id, "PROGRESS", stage="execute", progress=frac,
                           metrics={"t_s": float(t_s), "tick": float(i)})


def fit_depth(depth: np.ndarray, num_frames: int, width: int, height: int) -> np.ndarray:
    """Relative video depth [T,H,W] → at the camera's size (same aspect, resized per frame);
    T must equal the video's frame count."""
    if depth.ndim != 3:
        raise InvalidInput(f"video depth must be [T,H,W], got {list(depth.shape)}")
    t, h, w = depth.shape
    if t != num_frames:
        raise InvalidInput(f"video depth has {t} frames but the video has {num_frames}")
    if (w, h) == (width, height):
        return depth
    if abs((w / h) / (width / height) - 1.0) > 0.01:
        raise InvalidInput(f"video depth is {w}x{h} but the camera is {width}x{height} (different aspect)")
    import cv2

    return np.stack([cv2.resize(d, (width, height), interpolation=cv2.INTER_LINEAR) for d in depth]).astype(np.float32)


def png_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:  # pragma: no cover
        raise ExecutionFailed("could not encode the image as PNG")
    return buf.tobytes()


def npy_bytes(arr: np.ndarray) -> bytes:
    bio = io.BytesIO()
    np.save(bio, arr, allow_pickle=False)
    return bio.getvalue()


__all__ = ["TaskRunner", "READY", "ESTOPPED", "HELD", "TERMINAL", "fit_depth", "png_bytes", "npy_bytes"]
