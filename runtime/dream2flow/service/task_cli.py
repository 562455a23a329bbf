"""The handlers behind ``dream2flow task ...`` (the parser lives in ``commands/task.py``)."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

from dream2flow import errors
from dream2flow.errors import Dream2FlowError, ExecutionFailed, InvalidInput
from dream2flow.log import progress
from dream2flow.service import client as C
from dream2flow.v1 import robot_pb2, task_pb2


def _connect(args: argparse.Namespace) -> C.Connection:
    token = C.token_from_env_or_file(args.token, args.token_file)
    if not token:
        raise InvalidInput("no bearer token: pass --token-file FILE or set D2F_TOKEN")
    return C.connect(args.server, token=token, insecure=args.insecure, ca_file=args.ca_file,
                     cert_file=args.cert_file, key_file=args.key_file, server_name=args.server_name)


def _box(text: str) -> task_pb2.BoxPx:
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise InvalidInput(f"--box must be x0,y0,x1,y1 (integers), got {text!r}") from None
    if min(x0, y0, x1, y1) < 0:
        raise InvalidInput("--box values must be >= 0")
    return task_pb2.BoxPx(x0_px=x0, y0_px=y0, x1_px=x1, y1_px=y1)


def task_dict(t: task_pb2.Task) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    d = MessageToDict(t, preserving_proto_field_name=True)
    d["state"] = C.STATE_NAMES[t.state]
    return d


def task_line(t: task_pb2.Task) -> str:
    line = f"{t.task_id}  {C.STATE_NAMES[t.state]:<11}  {t.submitted_by:<10}  {t.instruction[:60]!r}"
    if t.error_message:
        line += f"  [{t.failed_stage}: {t.error_message[:80]}]"
    return line


def event_line(e: task_pb2.TaskEvent) -> str:
    kind = C.KIND_NAMES[e.kind]
    head = f"[{e.sequence}]"
    if kind == "STATE":
        return f"{head} {C.STATE_NAMES[e.state]}" + (f": {e.message}" if e.message else "")
    if kind == "STAGE_STARTED":
        return f"{head} {e.stage} started"
    if kind == "STAGE_FINISHED":
        secs = e.metrics.get("seconds")
        return f"{head} {e.stage} done" + (f" in {secs:.2f} s" if secs is not None else "")
    if kind == "ERROR":
        return f"{head} {e.stage or 'task'} error ({e.error_code}): {e.message}"
    if e.message:
        return f"{head} {e.stage}: {e.message}"
    return f"{head} {e.stage} {100 * e.progress_fraction:.0f}%"


def _final_code(t: task_pb2.Task) -> int:
    """0 if SUCCEEDED; else raise the error of the task's failure kind (cli.main maps exit codes)."""
    state = C.STATE_NAMES[t.state]
    if state == "SUCCEEDED":
        return 0
    if state in ("CANCELLED", "INTERRUPTED"):
        raise ExecutionFailed(f"task {t.task_id} {state.lower()}: {t.error_message or 'no reason given'}")
    cls = getattr(errors, t.error_kind, None)
    if not (isinstance(cls, type) and issubclass(cls, Dream2FlowError)):
        cls = Dream2FlowError
    raise cls(f"task {t.task_id} failed in {t.failed_stage or '?'} ({t.error_code}): {t.error_message}")


def _watch(conn: C.Connection, task_id: str, after: int, as_json: bool) -> int:
    for e in C.watch(conn, task_id, after):
        if as_json:
            from google.protobuf.json_format import MessageToDict

            print(json.dumps(MessageToDict(e, preserving_proto_field_name=True)), flush=True)
        else:
            progress(event_line(e))
    t = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id)).task
    if not as_json:
        progress(f"task {t.task_id}: {C.STATE_NAMES[t.state]}" + _outcome_text(t))
    return _final_code(t)


def _outcome_text(t: task_pb2.Task) -> str:
    if not t.HasField("outcome_check") or not t.outcome_check.verdict:
        return ""
    oc = t.outcome_check
    verdict = task_pb2.OutcomeVerdict.Name(oc.verdict).replace("OUTCOME_VERDICT_", "").lower().replace("_", " ")
    return f"; outcome {verdict}" + (f" ({oc.detail})" if oc.detail else "")


def _upload(conn: C.Connection, path: str, purpose: str, quiet: bool) -> task_pb2.UploadVideoResponse:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"file not found: {p}")
    last = [0.0]

    def on_progress(sent: int, total: int) -> None:
        now = time.monotonic()
        if not quiet and (now - last[0] > 0.5 or sent == total):
            last[0] = now
            progress(f"upload {p.name}: {100 * sent / max(total, 1):.0f}% ({sent / 1e6:.1f} of {total / 1e6:.1f} MB)")

    t0 = time.monotonic()
    resp = C.upload_file(conn, p, purpose, on_progress=on_progress)
    if not quiet:
        if resp.deduplicated:
            progress(f"upload {p.name}: the server already has it (id {resp.upload_id}, sha256 "
                     f"{resp.sha256_hex[:12]}…): nothing sent")
        else:
            resumed = f", resumed at {resp.resumed_from_bytes / 1e6:.1f} MB" if resp.resumed_from_bytes else ""
            progress(f"upload {p.name}: done, id {resp.upload_id} ({resp.size_bytes / 1e6:.1f} MB in "
                     f"{time.monotonic() - t0:.1f} s{resumed}"
                     + (f", {resp.num_frames} frames {resp.width_px}x{resp.height_px}" if resp.num_frames else "")
                     + ")")
    return resp


def run(args: argparse.Namespace) -> int:
    action = args.task_command
    with _connect(args) as conn:
        if action == "submit":
            return _submit(conn, args)
        if action == "get":
            t = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=args.task_id), args.timeout).task
            if args.json:
                print(json.dumps(task_dict(t), indent=1))
            else:
                progress(task_line(t) + _outcome_text(t))
                for k, v in sorted(t.artifacts.items()):
                    progress(f"  artifact {k}: {v}")
                for k, v in sorted(t.metrics.items()):
                    progress(f"  metric {k}: {v:.4g}")
            return 0
        if action == "list":
            states = []
            for s in args.state:
                name = f"TASK_STATE_{s.upper()}"
                if name not in task_pb2.TaskState.keys() or s.upper() == "UNSPECIFIED":
                    raise InvalidInput(f"unknown state {s!r}")
                states.append(task_pb2.TaskState.Value(name))
            if not 1 <= args.limit <= 10000:
                raise InvalidInput("--limit must be 1..10000")
            out: list[task_pb2.Task] = []
            token = ""
            while len(out) < args.limit:
                r = C.call(conn, conn.tasks.ListTasks, task_pb2.ListTasksRequest(
                    states=states, page_size=min(100, args.limit - len(out)), page_token=token), args.timeout)
                out += list(r.tasks)
                token = r.next_page_token
                if not token:
                    break
            if args.json:
                print(json.dumps([task_dict(t) for t in out], indent=1))
            else:
                for t in out:
                    progress(task_line(t))
            return 0
        if action == "watch":
            return _watch(conn, args.task_id, args.after, args.json)
        if action == "cancel":
            t = C.call(conn, conn.tasks.CancelTask, task_pb2.CancelTaskRequest(task_id=args.task_id, reason=args.reason),
                       args.timeout).task
            progress(f"task {t.task_id}: {C.STATE_NAMES[t.state]}" + (" (stopping)" if C.STATE_NAMES[t.state] == "RUNNING" else ""))
            return 0
        if action == "estop":
            r = C.call(conn, conn.robot.EmergencyStop, robot_pb2.EmergencyStopRequest(reason=args.reason), args.timeout)
            progress(f"EMERGENCY STOP active: stopped task {r.stopped_task_id or '(none)'}, cancelled "
                     f"{r.cancelled_queued_tasks} queued; `dream2flow task reset` to resume")
            return 0
        if action == "reset":
            r = C.call(conn, conn.robot.Reset, robot_pb2.ResetRequest(), args.timeout)
            progress(f"robot mode {C.MODE_NAMES[r.state.mode]}; {r.state.queued_tasks} queued task(s)")
            return 0
        if action == "state":
            st = C.call(conn, conn.robot.GetRobotState, robot_pb2.GetRobotStateRequest(), args.timeout).state
            if args.json:
                from google.protobuf.json_format import MessageToDict

                print(json.dumps(MessageToDict(st, preserving_proto_field_name=True), indent=1))
            else:
                progress(f"mode {C.MODE_NAMES[st.mode]}" + (f" ({st.mode_reason})" if st.mode_reason else "")
                         + f"; backend {st.backend}{' (simulated)' if st.simulated else ''}; running "
                         f"{st.running_task_id or '-'}; queued {st.queued_tasks}; commands sent {st.motion_commands_sent}")
                progress("q_rad " + " ".join(f"{x:+.4f}" for x in st.q_rad))
            return 0
        if action == "observe":
            return _observe(conn, args)
        if action == "fetch":
            return _fetch(conn, args)
    raise InvalidInput(f"unknown action {action!r}")  # pragma: no cover - argparse restricts it


def _submit(conn: C.Connection, args: argparse.Namespace) -> int:
    req = task_pb2.SubmitTaskRequest(
        instruction=args.instruction, object_prompt=args.object_prompt, box=_box(args.box) if args.box else None,
        options=task_pb2.TaskOptions(dry_run=args.dry_run, backend=args.backend, seed=args.seed, method=args.method,
                                     num_points=args.points),
        idempotency_key=args.idempotency_key or f"cli-{uuid.uuid4().hex}")
    if args.seed < 0 or args.points < 0 or args.frames < 0:
        raise InvalidInput("--seed, --points and --frames must be >= 0")
    quiet = args.json
    if args.video:
        req.video_upload_id = _upload(conn, args.video, "VIDEO", quiet).upload_id
    elif args.video_url:
        req.video_url = args.video_url
    elif args.video_sha256:
        req.video_sha256_hex = args.video_sha256.lower()
    else:
        req.generate.CopyFrom(task_pb2.GenerateVideo(num_frames=args.frames))
    if args.video_depth:
        req.video_depth_upload_id = _upload(conn, args.video_depth, "VIDEO_DEPTH", quiet).upload_id
    elif args.video_depth_url:
        req.video_depth_url = args.video_depth_url
    elif args.video_depth_sha256:
        req.video_depth_sha256_hex = args.video_depth_sha256.lower()
    # The idempotency key makes one retry after a dropped connection safe (no second task).
    try:
        r = C.call(conn, conn.tasks.SubmitTask, req, args.timeout)
    except errors.NotReady as exc:
        if not str(exc).startswith("UNAVAILABLE"):
            raise
        time.sleep(1.0)
        r = C.call(conn, conn.tasks.SubmitTask, req, args.timeout)
    t = r.task
    if args.json and not args.watch:
        print(json.dumps({**task_dict(t), "queue_position": r.queue_position, "deduplicated": r.deduplicated}))
    else:
        progress(f"task {t.task_id}: {C.STATE_NAMES[t.state]} (queue position {r.queue_position}"
                 + (", already submitted with this key" if r.deduplicated else "") + ")")
    if args.watch:
        return _watch(conn, t.task_id, 0, args.json)
    return 0


def _fetch(conn: C.Connection, args: argparse.Namespace) -> int:
    """Download a finished task's artifacts (all, or the named ones) into --out, resuming
    partial files, each checked against the server's sha256."""
    arts = C.list_artifacts(conn, args.task_id)
    by_name = {a.name: a for a in arts}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        raise InvalidInput(f"task {args.task_id} has no artifact {', '.join(repr(n) for n in unknown)} "
                           f"(it has: {', '.join(sorted(by_name)) or 'none'})")
    chosen = [by_name[n] for n in args.names] if args.names else arts
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.monotonic()
    total = 0
    for a in chosen:
        last = [0.0]

        def on_progress(done: int, size: int, a: task_pb2.Artifact = a, last: list[float] = last) -> None:
            now = time.monotonic()
            if not args.json and (now - last[0] > 0.5 or done == size):
                last[0] = now
                progress(f"fetch {a.file_name}: {100 * done / max(size, 1):.0f}% ({done / 1e6:.1f} of {size / 1e6:.1f} MB)")

        f = C.fetch_artifact(conn, args.task_id, a, out, chunk_bytes=args.chunk_bytes, on_progress=on_progress)
        total += f.received_bytes
        rows.append({"name": f.name, "file": str(f.path), "size_bytes": f.size_bytes, "sha256_hex": f.sha256_hex,
                     "received_bytes": f.received_bytes, "resumed_from_bytes": f.resumed_from})
        if not args.json:
            how = ("already here" if f.received_bytes == 0 and f.resumed_from == f.size_bytes else
                   f"resumed at {f.resumed_from} bytes" if f.resumed_from else "downloaded")
            progress(f"fetch {a.name}: {f.path} ({f.size_bytes} bytes, sha256 ok, {how})")
    if args.json:
        print(json.dumps({"task_id": args.task_id, "out": str(out), "artifacts": rows,
                          "received_bytes": total, "seconds": round(time.monotonic() - t0, 3)}))
    else:
        progress(f"task {args.task_id}: {len(rows)} artifact(s) in {out} ({total / 1e6:.1f} MB received)")
    return 0


def _observe(conn: C.Connection, args: argparse.Namespace) -> int:
    import numpy as np

    from dream2flow.config import save_camera
    from dream2flow.io_utils import staged_output
    from dream2flow.types import CameraModel

    r = C.call(conn, conn.tasks.GetObservation, task_pb2.GetObservationRequest(include_depth=True), args.timeout)
    cam = CameraModel(K=np.asarray(r.camera.k_px).reshape(3, 3), width=r.camera.width_px, height=r.camera.height_px,
                      T_base_cam=np.asarray(r.camera.t_base_cam_m).reshape(4, 4))
    with staged_output(args.out) as tmp:
        (tmp / "i0.png").write_bytes(r.rgb_png)
        (tmp / "d0.npy").write_bytes(r.depth_m_npy)
        save_camera(cam, tmp / "camera.toml", comment="from dream2flow task observe")
    progress(f"observation saved to {args.out}: i0.png, d0.npy, camera.toml ({cam.width}x{cam.height})")
    return 0
