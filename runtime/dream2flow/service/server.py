"""The gRPC server (grpc.aio): TaskService, RobotService, grpc.health.v1 and reflection
(grpc.reflection.v1 and v1alpha).

Why this shape: the event loop only parses, validates and answers; anything that can block
(SQLite fsync, the camera, decoding probes, backend calls) runs in worker threads, and the
control loop runs in the runner's own thread. Every expected failure is a ``Dream2FlowError``
mapped to its status code with one sentence and ``google.rpc.Status`` details (``status``);
anything else becomes INTERNAL for that call only, and the server keeps serving.

The e-stop path: gRPC's server-wide ``maximum_concurrent_rpcs`` is not used (it counted the
e-stop like any call); ``admission`` admits calls per class instead, EmergencyStop and Reset
are never refused, and they (with GetRobotState) run their blocking parts on their own thread
pool, so neither open streams nor busy worker threads delay them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import json
import math
import signal
import time
from typing import Any, AsyncIterator, Callable

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dream2flow.errors import Dream2FlowError, InvalidInput, NotReady
from dream2flow.log import get_logger
from dream2flow.service import runner as runner_mod
from dream2flow.service import status as S
from dream2flow.service.admission import Admission, Limits
from dream2flow.service.artifacts import ArtifactIndex, read_chunks
from dream2flow.service.auth import AuthInterceptor, TokenTable, current_call, load_tokens, server_credentials
from dream2flow.service.config import ServiceConfig, check_transport, parse_listen
from dream2flow.service.devices import Devices
from dream2flow.service.probe import ProbePool
from dream2flow.service.store import TERMINAL, Store, new_id
from dream2flow.service.uploads import UploadManager, UploadMeta, link_into, part_record, suffix_for, upload_record
from dream2flow.v1 import robot_pb2, robot_pb2_grpc, task_pb2, task_pb2_grpc

log = get_logger("service.server")

TASK_SERVICE = task_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name
ROBOT_SERVICE = robot_pb2.DESCRIPTOR.services_by_name["RobotService"].full_name
METHODS = ("dream2flow", "rigid_avdc", "rigid_rigvid")  # pipeline.METHODS (kept import-light)
_MAX_SEED = 2**32 - 1


def _internal(exc: BaseException) -> Any:
    return S.build("INTERNAL", f"internal error ({type(exc).__name__}); the server logged it", reason="INTERNAL")


def bad_field(field: str, message: str) -> InvalidInput:
    """INVALID_ARGUMENT with reason INVALID_FIELD and a BadRequest violation naming ``field``."""
    return InvalidInput(message, reason="INVALID_FIELD", field=field)


def rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Unary / client-streaming handler: Dream2FlowError → its status code with details;
    anything else → INTERNAL (logged with its traceback), never a dead server."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(context, exc, fn.__name__)

    return wrapper


def rpc_stream(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """``rpc`` for server-streaming handlers (async generators)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(context, exc, fn.__name__)

    return wrapper


async def _abort_for(context: grpc.aio.ServicerContext, exc: Exception, handler: str) -> None:
    """End the call with ``exc``'s status: a Dream2FlowError's own code and details, anything else
    INTERNAL with its traceback logged (cancellation is a BaseException and never reaches here)."""
    if isinstance(exc, Dream2FlowError):
        current_call().detail = exc.message
        await S.abort(context, S.from_error(exc))
    else:
        log.exception("%s failed", handler)
        current_call().detail = f"{type(exc).__name__}: {exc}"
        await S.abort(context, _internal(exc))


# -- conversions -------------------------------------------------------------------------------
def task_to_pb(t: dict[str, Any]) -> task_pb2.Task:
    req = t["request"]
    opts = req.get("options", {})
    src = req.get("video_source", {})
    if "upload" in src:
        source = f"upload:{src['upload']}"
    elif "url" in src:
        source = f"url:{src['url']}"
    else:
        source = "generate"
    box = req.get("box")
    pb = task_pb2.Task(
        task_id=t["task_id"], state=task_pb2.TaskState.Value(f"TASK_STATE_{t['state']}"),
        instruction=req.get("instruction", ""), object_prompt=req.get("object_prompt", ""),
        video_source=source,
        options=task_pb2.TaskOptions(dry_run=bool(opts.get("dry_run")), backend=opts.get("backend", ""),
                                     seed=int(opts.get("seed", 0)), method=opts.get("method", ""),
                                     num_points=int(opts.get("num_points", 0))),
        submitted_by=t["submitted_by"], idempotency_key=t["idempotency_key"] or "",
        created_unix_s=t["created_s"] or 0.0, started_unix_s=t["started_s"] or 0.0,
        finished_unix_s=t["finished_s"] or 0.0, failed_stage=t["failed_stage"] or "",
        error_code=t["error_code"] or "", error_message=t["error_message"] or "", error_kind=t["error_kind"] or "",
        cancel_requested=bool(t["cancel_requested"]), last_sequence=int(t["last_sequence"]))
    if box:
        pb.box.CopyFrom(task_pb2.BoxPx(x0_px=box[0], y0_px=box[1], x1_px=box[2], y1_px=box[3]))
    pb.artifacts.update({k: str(v) for k, v in t["artifacts"].items()})
    pb.metrics.update({k: float(v) for k, v in t["metrics"].items()
                       if isinstance(v, (int, float)) and math.isfinite(float(v))})
    oc = t.get("outcome") or {}
    if oc.get("verdict"):
        pb.outcome_check.CopyFrom(task_pb2.OutcomeCheck(
            verdict=task_pb2.OutcomeVerdict.Value(f"OUTCOME_VERDICT_{oc['verdict']}"), checker=oc.get("checker", ""),
            detail=oc.get("detail", ""), value=float(oc.get("value", 0.0)) if math.isfinite(float(oc.get("value", 0.0)))
            else 0.0))
    return pb


def upload_to_pb(u: dict[str, Any]) -> task_pb2.Upload:
    info = u.get("info") or {}
    return task_pb2.Upload(
        upload_id=u["upload_id"], state=task_pb2.UploadState.Value(f"UPLOAD_STATE_{u['state']}"),
        sha256_hex=u["sha256_hex"], purpose=task_pb2.UploadPurpose.Value(f"UPLOAD_PURPOSE_{u['purpose']}"),
        container=task_pb2.Container.Value(f"CONTAINER_{u['container']}"), size_bytes=u["size_bytes"],
        received_bytes=u["received_bytes"], filename=u.get("filename", ""), owner=u.get("owner", ""),
        created_unix_s=u["created_unix_s"], last_used_unix_s=u["last_used_unix_s"],
        expires_unix_s=u["expires_unix_s"], num_frames=int(info.get("num_frames", 0)),
        width_px=int(info.get("width_px", 0)), height_px=int(info.get("height_px", 0)),
        fps=float(info.get("fps", 0.0)))


def event_to_pb(e: dict[str, Any]) -> task_pb2.TaskEvent:
    pb = task_pb2.TaskEvent(task_id=e["task_id"], sequence=int(e["sequence"]), time_unix_s=float(e["time_s"]),
                            kind=task_pb2.EventKind.Value(f"EVENT_KIND_{e['kind']}"),
                            state=task_pb2.TaskState.Value(f"TASK_STATE_{e['state']}"), stage=e["stage"],
                            progress_fraction=float(e["progress"]), message=e["message"], error_code=e["error_code"])
    pb.metrics.update({k: float(v) for k, v in e["metrics"].items() if math.isfinite(float(v))})
    return pb


def camera_to_pb(cam: Any) -> task_pb2.CameraModel:
    return task_pb2.CameraModel(width_px=cam.width, height_px=cam.height,
                                k_px=[float(x) for x in cam.K.reshape(-1)],
                                t_base_cam_m=[float(x) for x in cam.T_base_cam.reshape(-1)])


class _Notifier:
    """Wakes WatchTask streams when the runner adds an event (lives in the event loop)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def waiter(self, task_id: str) -> asyncio.Event:
        ev = self._events.get(task_id)
        if ev is None:
            ev = self._events[task_id] = asyncio.Event()
        return ev

    def notify(self, task_id: str) -> None:
        ev = self._events.pop(task_id, None)
        if ev is not None:
            ev.set()


class Service:
    """Everything one server owns. ``start()`` binds and returns the port; ``stop()`` shuts down
    (motion stopped first). Tests inject ``camera``, ``backend_factory``, ``pipeline``."""

    def __init__(self, cfg: ServiceConfig, *, camera: Any = None, backend_factory: Any = None,
                 pipeline: Callable[..., Any] | None = None, tokens: TokenTable | None = None) -> None:
        self.cfg = cfg
        self.tokens = tokens
        self._camera = camera
        self._backend_factory = backend_factory
        self._pipeline = pipeline
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.store: Store | None = None
        self.recovered: dict[str, list[str]] = {}
        self._db_pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="d2f-db")
        self._io_pool = concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="d2f-io")
        self._estop_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="d2f-estop")
        # GetRobotState / EmergencyStop / Reset: never queued behind uploads, probes or the camera
        self._prio_pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="d2f-prio")
        self._tasks: list[asyncio.Task[Any]] = []
        self.admission = Admission(Limits.from_config(cfg))

    async def db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, functools.partial(fn, *args, **kw))

    async def io(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, functools.partial(fn, *args, **kw))

    async def prio(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._prio_pool, functools.partial(fn, *args, **kw))

    async def start(self) -> int:
        cfg = self.cfg
        check_transport(cfg)
        if self.tokens is None:
            self.tokens = load_tokens(cfg)
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.store = store = await self.db(Store, cfg.data_path)
        self.recovered = await self.db(store.recover)
        await self.db(store.remove_partial_uploads)
        await self.db(store.delete_expired_uploads, cfg.limits.upload_ttl_s)
        for tid in self.recovered["interrupted"]:
            log.warning("task %s was running when the server stopped: marked INTERRUPTED (not resumed)", tid)
        self.devices = Devices(cfg, camera=self._camera, backend_factory=self._backend_factory)
        self.probe_pool = ProbePool()
        self.uploads = UploadManager(store, cfg.limits, self.probe_pool, db=self.db, io=self.io)
        self.artifacts = ArtifactIndex(store)
        self.notifier = _Notifier()
        self.health = grpc_health.aio.HealthServicer()

        def notify(task_id: str) -> None:
            try:
                loop.call_soon_threadsafe(self.notifier.notify, task_id)
            except RuntimeError:  # loop closed during shutdown
                pass

        def on_mode(mode: str, reason: str) -> None:
            status = health_pb2.HealthCheckResponse.SERVING if mode == runner_mod.READY \
                else health_pb2.HealthCheckResponse.NOT_SERVING
            try:
                loop.call_soon_threadsafe(lambda: loop.create_task(self.health.set(ROBOT_SERVICE, status)))
            except RuntimeError:
                pass

        self.runner = runner_mod.TaskRunner(store, self.devices, cfg, probe_pool=self.probe_pool, notify=notify,
                                            on_mode=on_mode, pipeline=self._pipeline)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(TASK_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(ROBOT_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        if self.recovered["queued"]:
            n = len(self.recovered["queued"])
            self.runner.hold(f"the server restarted with {n} queued task(s); they wait for an operator's Reset")
        await self._warm_up_devices()
        self.runner.start()

        async def audit(row: dict[str, Any]) -> None:
            durable = bool(row.pop("durable", True))
            await self.db(store.append_audit, row, durable=durable)

        mb = cfg.server.max_message_bytes
        # No maximum_concurrent_rpcs: admission control (per class, the e-stop never counted)
        # replaces gRPC's server-wide cap.
        server = grpc.aio.server(
            interceptors=[AuthInterceptor(self.tokens, audit, viewer_can_estop=cfg.auth.viewer_can_estop,
                                          admission=self.admission)],
            options=[("grpc.max_receive_message_length", mb), ("grpc.max_send_message_length", mb),
                     ("grpc.max_metadata_size", 16 * 1024), ("grpc.so_reuseport", 0)])
        task_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(self), server)
        robot_pb2_grpc.add_RobotServiceServicer_to_server(RobotServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if cfg.server.reflection:
            from dream2flow.service.reflection import enable_reflection

            enable_reflection((TASK_SERVICE, ROBOT_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name),
                              server)
        host, port = parse_listen(cfg.server.listen)
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if cfg.server.insecure:
            self.port = server.add_insecure_port(addr)
        else:
            self.port = server.add_secure_port(addr, server_credentials(cfg))
        if not self.port:
            raise NotReady(f"could not listen on {cfg.server.listen} (in use, or not an address of this machine)")
        await server.start()
        self.server = server
        self._tasks.append(loop.create_task(self._janitor()))
        return self.port

    async def _warm_up_devices(self) -> None:
        """Open the camera and the default backend now, so problems show at start-up; the server
        still starts without them (GetRobotState / the task will say what is wrong)."""
        try:
            await self.io(self.devices.camera)
        except Exception as exc:
            log.warning("camera not available at start-up: %s", exc)
        try:
            await self.io(self.devices.backend)
        except Exception as exc:
            log.warning("robot backend %r not available at start-up: %s", self.cfg.robot.backend, exc)

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(60.0)
            try:
                n = await self.db(self.store.delete_expired_uploads, self.cfg.limits.upload_ttl_s)
                if n:
                    log.info("deleted %d expired upload(s)", n)
            except Exception:
                log.exception("janitor failed")

    async def stop(self, grace_s: float | None = None) -> None:
        grace = self.cfg.server.grace_s if grace_s is None else grace_s
        for t in self._tasks:
            t.cancel()
        if hasattr(self, "runner"):
            await asyncio.get_running_loop().run_in_executor(None, self.runner.shutdown)
        if self.server is not None:
            await self.health.enter_graceful_shutdown()
            await self.server.stop(grace)
        if hasattr(self, "devices"):
            await asyncio.get_running_loop().run_in_executor(None, self.devices.close)
        if hasattr(self, "probe_pool"):
            await asyncio.get_running_loop().run_in_executor(None, self.probe_pool.close)
        if self.store is not None:
            self.store.close()
        for pool in (self._db_pool, self._io_pool, self._estop_pool, self._prio_pool):
            pool.shutdown(wait=False, cancel_futures=True)

    # -- helpers used by the servicers ------------------------------------------------------
    def robot_state_pb(self) -> robot_pb2.RobotState:
        st = self.runner.status()
        pb = robot_pb2.RobotState(mode=robot_pb2.MotionMode.Value(f"MOTION_MODE_{st['mode']}"),
                                  mode_reason=st["mode_reason"], running_task_id=st["running_task_id"],
                                  queued_tasks=len(self.store.queued_ids()),
                                  motion_commands_sent=self.devices.commands_sent(), backend=self.cfg.robot.backend)
        try:
            b = self.devices.backend()
            s = b.state()
            pb.q_rad.extend(float(x) for x in s.q)
            pb.dq_rad_s.extend(float(x) for x in s.dq)
            pb.gripper_width_m = float(getattr(s, "gripper_width_m", 0.0))
            pb.backend_time_s = float(s.t_s)
            pb.simulated = b.simulated
            pb.backend = b.name
        except Exception as exc:
            pb.mode_reason = pb.mode_reason or f"backend not available: {exc}"
        return pb


class TaskServicer(task_pb2_grpc.TaskServiceServicer):
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.cfg = svc.cfg

    @rpc
    async def GetObservation(self, request: task_pb2.GetObservationRequest,
                             context: grpc.aio.ServicerContext) -> task_pb2.GetObservationResponse:
        svc = self.svc
        rgbd = await svc.io(svc.devices.capture, self.cfg.limits.observation_timeout_s)
        png = await svc.io(runner_mod.png_bytes, rgbd.rgb)
        resp = task_pb2.GetObservationResponse(rgb_png=png, camera=camera_to_pb(rgbd.camera),
                                               captured_unix_s=time.time())
        if request.include_depth:
            resp.depth_m_npy = runner_mod.npy_bytes(rgbd.depth_m.astype("float32"))
        try:
            st = await svc.io(lambda: svc.devices.backend().state())
            resp.q_rad.extend(float(x) for x in st.q)
        except Exception:  # the observation is still useful without the joints
            pass
        return resp

    @rpc
    async def UploadVideo(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> task_pb2.UploadVideoResponse:
        it = request_iterator.__aiter__()
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            raise bad_field("metadata", "empty upload stream: the first message must be metadata") from None
        if first.WhichOneof("payload") != "metadata":
            raise bad_field("metadata", "the first UploadVideo message must be metadata")
        m = first.metadata
        meta = UploadMeta(size_bytes=int(m.size_bytes), sha256_hex=m.sha256_hex,
                          container=_enum_name(task_pb2.Container, m.container, "CONTAINER_"),
                          purpose=_enum_name(task_pb2.UploadPurpose, m.purpose, "UPLOAD_PURPOSE_"),
                          filename=m.filename, offset_bytes=int(m.offset_bytes))

        async def chunks() -> AsyncIterator[bytes]:
            async for msg in it:
                if msg.WhichOneof("payload") != "chunk":
                    raise bad_field("chunk", "only the first UploadVideo message may carry metadata; later ones carry "
                                             "chunks")
                yield msg.chunk

        rec = await self.svc.uploads.receive(meta, chunks(), current_call().principal.name)
        current_call().detail = (f"upload {rec['upload_id']} {rec['size_bytes']} bytes"
                                 + (" (deduplicated)" if rec["deduplicated"] else
                                    f", received {rec['received_bytes']} from offset {rec['resumed_from_bytes']}"))
        info = rec["info"]
        return task_pb2.UploadVideoResponse(upload_id=rec["upload_id"], size_bytes=rec["size_bytes"],
                                            sha256_hex=rec["sha256_hex"], num_frames=int(info.get("num_frames", 0)),
                                            width_px=int(info.get("width_px", 0)),
                                            height_px=int(info.get("height_px", 0)),
                                            fps=float(info.get("fps", 0.0)), expires_unix_s=rec["expires_unix_s"],
                                            deduplicated=rec["deduplicated"], received_bytes=rec["received_bytes"],
                                            resumed_from_bytes=rec["resumed_from_bytes"])

    @rpc
    async def GetUpload(self, request: task_pb2.GetUploadRequest,
                        context: grpc.aio.ServicerContext) -> task_pb2.GetUploadResponse:
        rec = await self.svc.uploads.lookup(
            upload_id=request.upload_id, sha256_hex=request.sha256_hex,
            purpose=_enum_name(task_pb2.UploadPurpose, request.purpose, "UPLOAD_PURPOSE_"))
        return task_pb2.GetUploadResponse(upload=upload_to_pb(rec))

    @rpc
    async def ListUploads(self, request: task_pb2.ListUploadsRequest,
                          context: grpc.aio.ServicerContext) -> task_pb2.ListUploadsResponse:
        svc = self.svc
        size = min(request.page_size or 20, self.cfg.limits.max_list_page_size)
        before = None
        if request.page_token:
            try:
                before = float(request.page_token)
            except ValueError:
                raise bad_field("page_token", "page_token is not one this server gave out") from None
        ttl = self.cfg.limits.upload_ttl_s
        out: list[task_pb2.Upload] = []
        if request.include_partial and before is None:
            out += [upload_to_pb(part_record(p, ttl)) for p in await svc.db(svc.store.list_parts)]
        rows = await svc.db(svc.store.list_uploads, limit=size + 1, before_created=before)
        out += [upload_to_pb(upload_record(r, ttl)) for r in rows[:size]]
        nxt = repr(float(rows[size - 1]["created_s"])) if len(rows) > size else ""
        return task_pb2.ListUploadsResponse(uploads=out, next_page_token=nxt)

    @rpc
    async def DeleteUpload(self, request: task_pb2.DeleteUploadRequest,
                           context: grpc.aio.ServicerContext) -> task_pb2.DeleteUploadResponse:
        rec = await self.svc.uploads.delete(
            upload_id=request.upload_id, sha256_hex=request.sha256_hex,
            purpose=_enum_name(task_pb2.UploadPurpose, request.purpose, "UPLOAD_PURPOSE_"))
        current_call().detail = f"deleted {rec['state'].lower()} upload {rec['upload_id'] or rec['sha256_hex']}"
        return task_pb2.DeleteUploadResponse(upload=upload_to_pb(rec))

    async def _upload_named(self, upload_id: str, sha256_hex: str, purpose: str, field: str) -> dict[str, Any]:
        """A finished upload named by id or by sha256 (SubmitTask)."""
        svc = self.svc
        if sha256_hex:
            rec = await svc.db(svc.store.find_upload, sha256_hex, purpose)
            if rec is None:
                from dream2flow.service.store import NotFound

                raise NotFound(f"no finished {purpose} upload with sha256 {sha256_hex[:64]!r} here (upload it first)",
                               reason="UPLOAD_NOT_FOUND", field=field)
            return rec
        try:
            return await svc.db(svc.store.get_upload, upload_id)
        except Dream2FlowError as exc:
            exc.field = exc.field or field
            raise

    async def _validate(self, r: task_pb2.SubmitTaskRequest) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The request → (normalised request dict, [(upload id, file name in the task dir)])."""
        lim = self.cfg.limits
        svc = self.svc
        instruction = r.instruction.strip()
        if not instruction:
            raise bad_field("instruction", "instruction is empty")
        if len(instruction) > lim.max_instruction_chars:
            raise bad_field("instruction", f"instruction has {len(instruction)} characters; the limit is "
                            f"{lim.max_instruction_chars}")
        if "\x00" in instruction or "\x00" in r.object_prompt:
            raise bad_field("instruction", "instruction / object_prompt contain a NUL character")
        if len(r.object_prompt) > lim.max_object_prompt_chars:
            raise bad_field("object_prompt", f"object_prompt is longer than {lim.max_object_prompt_chars} characters")
        if len(r.idempotency_key) > 128:
            raise bad_field("idempotency_key", "idempotency_key is longer than 128 characters")
        perception = svc.runner.perception
        box = None
        if r.HasField("box"):
            cam = await svc.io(svc.devices.camera_model)
            b = r.box
            if not (b.x0_px < b.x1_px <= cam.width and b.y0_px < b.y1_px <= cam.height):
                raise bad_field("box", f"box ({b.x0_px},{b.y0_px},{b.x1_px},{b.y1_px}) must satisfy 0 <= x0 < x1 <= "
                                f"{cam.width} and 0 <= y0 < y1 <= {cam.height}")
            box = [b.x0_px, b.y0_px, b.x1_px, b.y1_px]
        else:
            if not r.object_prompt.strip():
                raise bad_field("object_prompt", "give the object's box, or its object_prompt for the server's detector")
            perception.ensure("detector", field="box")  # NotReady naming the role and the fix
        o = r.options
        backend = o.backend or ""
        if backend and backend not in self.cfg.backends:
            raise bad_field("options.backend", f"backend {backend!r} is not allowed here (allowed: {', '.join(self.cfg.backends)})")
        method = o.method or ""
        if method and method not in METHODS:
            raise bad_field("options.method", f"unknown method {method!r} (choose from {', '.join(METHODS)})")
        if o.num_points > lim.max_num_points or 0 < o.num_points < 8:
            raise bad_field("options.num_points", f"num_points must be 8..{lim.max_num_points} (0: default)")
        if o.seed > _MAX_SEED:
            raise bad_field("options.seed", f"seed must be at most {_MAX_SEED}")
        links: list[tuple[str, str]] = []
        video_frames = None
        which = r.WhichOneof("video_source")
        if which in ("video_upload_id", "video_sha256_hex"):
            up = await self._upload_named(r.video_upload_id, r.video_sha256_hex, "VIDEO", which)
            if up["purpose"] != "VIDEO":
                raise bad_field(which, f"upload {up['upload_id']} is a {up['purpose']} upload, not a VIDEO")
            fname = "video" + suffix_for(up["container"])
            links.append((up["upload_id"], fname))
            source: dict[str, Any] = {"upload": up["upload_id"], "file": fname}
            video_frames = up["info"].get("num_frames")
        elif which == "video_url":
            from dream2flow.service.video_sources import check_url

            try:
                check_url(r.video_url, svc.runner.fetch_policy(lim.max_video_bytes), lim.max_url_chars)
            except Dream2FlowError as exc:
                exc.field = "video_url"
                raise
            source = {"url": r.video_url}
        elif which == "generate":
            if not self.cfg.video_sources.generator_url:
                raise NotReady("no video generator is configured here ([video_sources] generator_url)",
                               reason="NOT_CONFIGURED", field="generate")
            if r.generate.num_frames > lim.max_video_frames or r.generate.num_frames == 1:
                raise bad_field("generate.num_frames", f"generate.num_frames must be 2..{lim.max_video_frames} (0: default)")
            source = {"generate": {"num_frames": int(r.generate.num_frames)}}
        else:
            raise bad_field("video_source", "a video source is required: video_upload_id, video_sha256_hex, video_url or "
                                            "generate")
        depth: dict[str, Any] = {}
        if sum(bool(x) for x in (r.video_depth_upload_id, r.video_depth_url, r.video_depth_sha256_hex)) > 1:
            raise bad_field("video_depth_url", "give one of video_depth_upload_id, video_depth_sha256_hex or "
                                               "video_depth_url")
        if r.video_depth_upload_id or r.video_depth_sha256_hex:
            dfield = "video_depth_upload_id" if r.video_depth_upload_id else "video_depth_sha256_hex"
            up = await self._upload_named(r.video_depth_upload_id, r.video_depth_sha256_hex, "VIDEO_DEPTH", dfield)
            if up["purpose"] != "VIDEO_DEPTH":
                raise bad_field(dfield, f"upload {up['upload_id']} is a {up['purpose']} upload, not VIDEO_DEPTH")
            if video_frames is not None and up["info"].get("num_frames") != video_frames:
                raise bad_field(dfield, f"video depth has {up['info'].get('num_frames')} frames but the video has "
                                        f"{video_frames}")
            links.append((up["upload_id"], "video_depth.npy"))
            depth = {"upload": up["upload_id"], "file": "video_depth.npy"}
        elif r.video_depth_url:
            from dream2flow.service.video_sources import check_url

            try:
                check_url(r.video_depth_url, svc.runner.fetch_policy(lim.max_depth_bytes), lim.max_url_chars)
            except Dream2FlowError as exc:
                exc.field = "video_depth_url"
                raise
            depth = {"url": r.video_depth_url}
        elif which != "generate":  # a generator may send depth along; else the flow stage says NotReady
            perception.ensure("video_depth", field="video_depth_upload_id")
        req = {"instruction": instruction, "object_prompt": r.object_prompt.strip(),
               "box": box, "video_source": source, "video_depth": depth,
               "options": {"dry_run": bool(o.dry_run), "backend": backend, "seed": int(o.seed), "method": method,
                           "num_points": int(o.num_points)}}
        return req, links

    @rpc
    async def SubmitTask(self, request: task_pb2.SubmitTaskRequest,
                         context: grpc.aio.ServicerContext) -> task_pb2.SubmitTaskResponse:
        svc = self.svc
        req, links = await self._validate(request)
        mode = svc.runner.status()
        if mode["mode"] == runner_mod.ESTOPPED and not req["options"]["dry_run"]:
            raise NotReady("the emergency stop is active: call Reset before submitting motion", reason="ESTOP_ACTIVE")
        request_hash = hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()
        task_id = new_id("t_")
        tdir = svc.store.task_dir(task_id)

        def prepare() -> None:
            for upload_id, fname in links:
                link_into(svc.store.upload_path(upload_id), tdir / fname)

        try:
            await svc.io(prepare)
            task, dedup = await svc.db(svc.store.create_task, submitted_by=current_call().principal.name,
                                       request=req, request_hash=request_hash,
                                       idempotency_key=request.idempotency_key or None,
                                       max_queued=self.cfg.limits.max_queued_tasks, task_id=task_id)
        except BaseException:
            await svc.io(_rmtree, tdir)
            raise
        if dedup:
            await svc.io(_rmtree, tdir)
        else:
            for upload_id, _ in links:  # a used upload stays as long as it keeps being used
                await svc.db(svc.store.touch_upload, upload_id)
            if mode["mode"] != runner_mod.READY:  # say why it waits (dry runs run even so)
                await svc.db(svc.runner.note_waiting, task["task_id"], bool(req["options"]["dry_run"]))
        current_call().task_id = task["task_id"]
        svc.runner.wake()
        pos = await svc.db(svc.store.queue_position, task["task_id"])
        return task_pb2.SubmitTaskResponse(task=task_to_pb(task), deduplicated=dedup, queue_position=pos)

    @rpc
    async def GetTask(self, request: task_pb2.GetTaskRequest, context: grpc.aio.ServicerContext) -> task_pb2.GetTaskResponse:
        current_call().task_id = request.task_id[:64]
        t = await self.svc.db(self.svc.store.get_task, request.task_id)
        return task_pb2.GetTaskResponse(task=task_to_pb(t))

    @rpc
    async def ListTasks(self, request: task_pb2.ListTasksRequest,
                        context: grpc.aio.ServicerContext) -> task_pb2.ListTasksResponse:
        size = request.page_size or 20
        size = min(size, self.cfg.limits.max_list_page_size)
        before = None
        if request.page_token:
            if not request.page_token.isdigit() or len(request.page_token) > 18:
                raise bad_field("page_token", "page_token is not one this server gave out")
            before = int(request.page_token)
        states = []
        for s in request.states:
            if s == task_pb2.TASK_STATE_UNSPECIFIED or s not in task_pb2.TaskState.values():
                raise bad_field("states", f"unknown task state {s} in states")
            states.append(task_pb2.TaskState.Name(s).replace("TASK_STATE_", ""))
        tasks, nxt = await self.svc.db(self.svc.store.list_tasks, states=states, limit=size, before_seq=before)
        return task_pb2.ListTasksResponse(tasks=[task_to_pb(t) for t in tasks],
                                          next_page_token="" if nxt is None else str(nxt))

    @rpc_stream
    async def WatchTask(self, request: task_pb2.WatchTaskRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[task_pb2.WatchTaskResponse]:
        svc = self.svc
        current_call().task_id = request.task_id[:64]
        await svc.db(svc.store.get_task, request.task_id)  # NOT_FOUND early (stream limits: admission)
        after = int(request.after_sequence)
        heartbeat_s = float(self.cfg.limits.watch_heartbeat_s)
        last_sent = time.monotonic()
        while True:
            waiter = svc.notifier.waiter(request.task_id)  # before reading: no wake-up is missed
            events = await svc.db(svc.store.events_after, request.task_id, after, 200)
            for e in events:
                yield task_pb2.WatchTaskResponse(event=event_to_pb(e))
                after = int(e["sequence"])
                last_sent = time.monotonic()
            if len(events) == 200:
                continue
            task = await svc.db(svc.store.get_task, request.task_id)
            if task["state"] in TERMINAL and after >= int(task["last_sequence"]):
                return
            if time.monotonic() - last_sent >= heartbeat_s:
                yield task_pb2.WatchTaskResponse(heartbeat=task_pb2.Heartbeat(
                    time_unix_s=time.time(), state=task_pb2.TaskState.Value(f"TASK_STATE_{task['state']}"),
                    last_sequence=int(task["last_sequence"])))
                last_sent = time.monotonic()
            try:
                wait_s = max(0.01, min(1.0, heartbeat_s - (time.monotonic() - last_sent)))
                await asyncio.wait_for(waiter.wait(), timeout=wait_s)
            except asyncio.TimeoutError:
                pass

    @rpc
    async def CancelTask(self, request: task_pb2.CancelTaskRequest,
                         context: grpc.aio.ServicerContext) -> task_pb2.CancelTaskResponse:
        if len(request.reason) > 500:
            raise bad_field("reason", "reason is longer than 500 characters")
        current_call().task_id = request.task_id[:64]
        who = current_call().principal.name
        reason = f"cancelled by {who}" + (f": {request.reason}" if request.reason else "")
        t = await self.svc.io(self.svc.runner.cancel, request.task_id, reason)
        return task_pb2.CancelTaskResponse(task=task_to_pb(t))

    @rpc
    async def ListArtifacts(self, request: task_pb2.ListArtifactsRequest,
                            context: grpc.aio.ServicerContext) -> task_pb2.ListArtifactsResponse:
        current_call().task_id = request.task_id[:64]
        files = await self.svc.io(self.svc.artifacts.files, request.task_id)
        return task_pb2.ListArtifactsResponse(artifacts=[_artifact_pb(a) for a in files])

    @rpc_stream
    async def GetArtifact(self, request: task_pb2.GetArtifactRequest,
                          context: grpc.aio.ServicerContext) -> AsyncIterator[task_pb2.GetArtifactResponse]:
        svc = self.svc
        current_call().task_id = request.task_id[:64]
        lim = self.cfg.limits.max_artifact_chunk_bytes
        if request.chunk_bytes > lim:
            raise bad_field("chunk_bytes", f"chunk_bytes must be 1..{lim} (0: {lim})")
        chunk = int(request.chunk_bytes or lim)
        a = await svc.io(svc.artifacts.get, request.task_id, request.name)
        if request.offset_bytes > a.size_bytes:
            from dream2flow.service.artifacts import OutOfRange

            raise OutOfRange(f"offset_bytes {request.offset_bytes} is past the end of {a.name} ({a.size_bytes} bytes)")
        current_call().detail = f"artifact {a.name} from {request.offset_bytes} of {a.size_bytes} bytes"
        yield task_pb2.GetArtifactResponse(artifact=_artifact_pb(a))
        it = read_chunks(a.path, int(request.offset_bytes), chunk, a.size_bytes)
        try:
            while True:
                item = await svc.io(next, it, None)  # file reads off the event loop
                if item is None:
                    return
                off, data = item
                yield task_pb2.GetArtifactResponse(chunk=task_pb2.ArtifactChunk(
                    offset_bytes=off, data=data, sha256_hex=hashlib.sha256(data).hexdigest()))
        finally:
            try:
                it.close()  # the file, also when the client went away mid-stream
            except ValueError:  # still reading in a worker thread: the file closes when it is collected
                pass


class RobotServicer(robot_pb2_grpc.RobotServiceServicer):
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    @rpc
    async def GetRobotState(self, request: robot_pb2.GetRobotStateRequest,
                            context: grpc.aio.ServicerContext) -> robot_pb2.GetRobotStateResponse:
        st = await self.svc.prio(self.svc.robot_state_pb)
        return robot_pb2.GetRobotStateResponse(state=st)

    @rpc
    async def EmergencyStop(self, request: robot_pb2.EmergencyStopRequest,
                            context: grpc.aio.ServicerContext) -> robot_pb2.EmergencyStopResponse:
        svc = self.svc
        svc.devices.trip_estop()  # at once, in the loop: the backend gate refuses motion from here on
        reason = f"by {current_call().principal.name}" + (f": {request.reason[:500]}" if request.reason else "")
        loop = asyncio.get_running_loop()
        stopped, cancelled = await loop.run_in_executor(svc._estop_pool, svc.runner.estop, reason)
        current_call().task_id = stopped
        current_call().detail = reason
        st = await svc.prio(svc.robot_state_pb)
        return robot_pb2.EmergencyStopResponse(state=st, stopped_task_id=stopped, cancelled_queued_tasks=cancelled)

    @rpc
    async def Reset(self, request: robot_pb2.ResetRequest, context: grpc.aio.ServicerContext) -> robot_pb2.ResetResponse:
        await self.svc.prio(self.svc.runner.reset)
        st = await self.svc.prio(self.svc.robot_state_pb)
        return robot_pb2.ResetResponse(state=st)


def _artifact_pb(a: Any) -> task_pb2.Artifact:
    return task_pb2.Artifact(name=a.name, file_name=a.file_name, size_bytes=a.size_bytes, sha256_hex=a.sha256_hex,
                             media_type=a.media_type)


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    """Name of an enum value without its prefix; proto3 enums are open, so an unknown number
    becomes "UNKNOWN(n)" (refused by the validators), not an exception."""
    try:
        return str(enum.Name(value)).replace(prefix, "", 1)
    except ValueError:
        return f"UNKNOWN({int(value)})"


def _rmtree(p: Any) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)


def serve(cfg: ServiceConfig, *, on_ready: Callable[["Service"], None] | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns 0 after a clean shutdown. ``on_ready(service)`` once
    it listens (``service.port``, ``service.recovered``)."""

    async def main() -> None:
        svc = Service(cfg)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
                pass
        try:
            await svc.start()
            if on_ready is not None:
                on_ready(svc)
            await stop.wait()
        finally:
            await svc.stop()

    asyncio.run(main())
    return 0
