"""Issue 21: the service perceives I0 while the video is fetched (``early.EarlyPerception``).

Right after ``observe`` the task runner starts I0's detection (no box, a detector configured) and
segmentation, then the grasp proposals, while fetch / generate / decode run; the flow and plan
stages take the results. Checked here:

- the flow, the plan and the command stream are bit for bit those of ``[perception] early = false``
  (the sequential path), with the box given (sim camera, RGB-D segmenter) and with the detector
  (tiny models);
- an early segmentation or detection that fails fails the task in stage ``flow`` with the error the
  sequential path reports (same code, same message), without hanging;
- a task cancelled or e-stopped while its video is being generated ends only once its early work
  has finished or been dropped; the server leaves no worker thread or grasp process behind;
- the task's metrics say what ran early and for how long.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from loopback_http import LoopbackHTTP

os.environ.setdefault("MUJOCO_GL", "egl")

from dream2flow.service import client as C  # noqa: E402
from dream2flow.service.testing import OPERATOR_TOKEN, ServiceThread, make_config  # noqa: E402
from dream2flow.v1 import task_pb2  # noqa: E402

TASK, SEED = "bread_in_bowl", 0
ARRAYS = {"flow.npz": ("points_base", "visible", "query_px", "fps", "depth_scale", "depth_shift", "meta"),
          "plan.npz": ("q", "dt_s", "gripper", "predicted_points")}


@pytest.fixture(scope="module")
def sim_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The simulator's generated video and relative depth for the task (the 'cloud'), and the box."""
    from dream2flow import sim
    from dream2flow.video.encode import write_video

    folder = tmp_path_factory.mktemp("early_sim")
    env = sim.make_env(TASK, SEED)
    gen = env.generate_video("clean", num_frames=24, seed=SEED)
    write_video(folder / "video.mp4", gen.video.frames, gen.video.fps)
    np.save(folder / "video_depth.npy", np.asarray(gen.rel_depth, dtype=np.float32), allow_pickle=False)
    return {"video": folder / "video.mp4", "depth": folder / "video_depth.npy",
            "box": tuple(int(v) for v in env.object_box()), "instruction": env.instruction,
            "prompt": env.object_prompt}


def _sim_config(data: Path, early: bool, **sections: Any) -> Any:
    return make_config(data, camera={"type": "sim", "task": TASK, "seed": SEED}, robot={"backend": "kinematic"},
                       perception={"config": "classical", "early": early}, **sections)


def _run_task(st: ServiceThread, conn: C.Connection, video: Path, depth: Path | None, *, box: Any = None,
              prompt: str = "", instruction: str = "move it", num_points: int = 64) -> tuple[Any, Path]:
    v = C.upload_file(conn, video).upload_id
    kw: dict[str, Any] = {"video_upload_id": v}
    if depth is not None:
        kw["video_depth_upload_id"] = C.upload_file(conn, depth, "VIDEO_DEPTH").upload_id
    if box is not None:
        kw["box"] = task_pb2.BoxPx(x0_px=box[0], y0_px=box[1], x1_px=box[2], y1_px=box[3])
    r = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
        instruction=instruction, object_prompt=prompt, options=task_pb2.TaskOptions(seed=SEED, num_points=num_points),
        **kw))
    for _ in C.watch(conn, r.task.task_id):
        pass
    task = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=r.task.task_id)).task
    return task, st.service.store.task_dir(task.task_id)


def _arrays(tdir: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, keys in ARRAYS.items():
        with np.load(tdir / name, allow_pickle=False) as z:
            out.update({f"{name}:{k}": z[k] for k in keys})
    with np.load(tdir / "command_log.npz", allow_pickle=False) as z:  # the command stream, every array
        out.update({f"command_log.npz:{k}": z[k] for k in z.files})
    return out


def _assert_same_outputs(a: Path, b: Path) -> None:
    got, want = _arrays(a), _arrays(b)
    assert set(got) == set(want)
    for k in want:
        assert np.array_equal(got[k], want[k]), f"{k} differs between early and sequential perception"


def _run_both(tmp_path: Path, runs: dict[bool, Any], **task_kw: Any) -> dict[bool, tuple[Any, Path]]:
    """The same task on a server with early perception and on one without -> early: (task, its folder)."""
    out = {}
    for early in (True, False):
        cfg = runs[early](tmp_path / f"data_{int(early)}", early)
        with ServiceThread(cfg) as st, C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
            out[early] = _run_task(st, conn, **task_kw)
        from dream2flow.planning.grasp_prefetch import worker_pid

        assert worker_pid() is None  # the server stopped its grasp process with it
    return out


@pytest.mark.slow
@pytest.mark.sim
def test_early_perception_gives_the_sequential_flow_plan_and_commands(tmp_path: Path, sim_inputs: dict) -> None:
    """Box given (the operator's), the simulated camera, the RGB-D segmenter, the real planner and loop."""
    got = _run_both(tmp_path, {e: _sim_config for e in (True, False)}, video=sim_inputs["video"],
                    depth=sim_inputs["depth"], box=sim_inputs["box"], prompt=sim_inputs["prompt"],
                    instruction=sim_inputs["instruction"])
    for early, (task, _) in got.items():
        assert C.STATE_NAMES[task.state] == "SUCCEEDED", f"early={early}: {task.failed_stage}: {task.error_message}"
    _assert_same_outputs(got[True][1], got[False][1])
    m_on, m_off = dict(got[True][0].metrics), dict(got[False][0].metrics)
    assert m_on["early_perception"] == 1.0 and m_on["early_segment_s"] > 0 and "flow_segment_wait_s" in m_on
    assert m_on["grasps_prefetched"] == 1.0 and m_on["early_grasps_s"] > 0
    assert "early_detect_s" not in m_on  # the box was given: no detector ran
    assert not any(k.startswith("early_") or k == "grasps_prefetched" for k in m_off)
    import json

    plan_meta = {e: json.loads(str(np.load(got[e][1] / "plan.npz")["meta"])) for e in got}
    assert plan_meta[True]["timing"]["grasps_prefetched"] and not plan_meta[False]["timing"]["grasps_prefetched"]


@pytest.mark.slow
def test_early_detection_gives_the_sequential_flow_plan_and_commands(tmp_path: Path) -> None:
    """No box: the detector (a tiny model) finds it on I0 while the video is decoded."""
    from tiny_perception import block_scene, need_export_extra, tiny_models_dir, write_perception_toml

    need_export_extra()
    from dream2flow.perception.factory import load_perception

    toml = write_perception_toml(tmp_path / "perception.toml", tiny_models_dir(),
                                 roles={"detector": "model", "video_depth": "model", "segmenter": "classical",
                                        "tracker": "classical", "hand": "none"})
    scene = block_scene(tmp_path / "scene", load_perception(toml), "the block")

    def cfg(data: Path, early: bool) -> Any:
        return make_config(data, perception={"config": str(toml), "early": early}, robot={"backend": "kinematic"},
                           camera={"type": "recorded", "path": str(scene["recording"]), "loop": True})

    got = _run_both(tmp_path, {e: cfg for e in (True, False)}, video=scene["video"], depth=None,
                    prompt="the block", instruction="move the block")
    for early, (task, _) in got.items():
        assert C.STATE_NAMES[task.state] == "SUCCEEDED", f"early={early}: {task.failed_stage}: {task.error_message}"
    _assert_same_outputs(got[True][1], got[False][1])
    m = dict(got[True][0].metrics)
    assert m["early_detect_s"] > 0 and m["early_segment_s"] > 0 and m["grasps_prefetched"] == 1.0
    assert "flow_detect_wait_s" in m and "flow_segment_wait_s" in m


class _Broken:
    """A segmenter / detector that fails (a Dream2FlowError, or a bug: any other exception)."""

    name = "broken"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def __call__(self, *a: Any, **kw: Any) -> Any:
        self.calls += 1
        raise self.exc


def _with_broken(st: ServiceThread, role: str, exc: BaseException) -> _Broken:
    """The server's perception with ``role`` served by ``_Broken(exc)``."""
    from dream2flow.perception.factory import RolePlan

    p = st.service.runner.perception
    broken = _Broken(exc)
    if role == "segmenter":
        p.segmenter = lambda seed=0: broken  # type: ignore[method-assign]
    else:
        plan = p.plan
        p.plan = lambda r: RolePlan(r, "model", "test:broken") if r == role else plan(r)  # type: ignore[method-assign]
        p._built[role] = broken
    return broken


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("role, exc", [
    ("segmenter", "PerceptionFailed"),
    ("segmenter", "RuntimeError"),
    ("detector", "PerceptionFailed"),
    ("detector", "RuntimeError"),
])
def test_an_early_failure_is_the_flow_stage_error(tmp_path: Path, sim_inputs: dict, role: str, exc: str) -> None:
    from dream2flow.errors import PerceptionFailed

    make = {"PerceptionFailed": lambda: PerceptionFailed(f"the {role} broke"),
            "RuntimeError": lambda: RuntimeError(f"the {role} crashed")}[exc]
    got = {}
    for early in (True, False):
        with ServiceThread(_sim_config(tmp_path / f"d{int(early)}", early)) as st, \
                C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
            broken = _with_broken(st, role, make())
            task, _ = _run_task(st, conn, sim_inputs["video"], sim_inputs["depth"],
                                box=sim_inputs["box"] if role == "segmenter" else None, prompt=sim_inputs["prompt"])
            got[early] = (C.STATE_NAMES[task.state], task.failed_stage, task.error_code, task.error_message)
            assert broken.calls == 1  # once: early, or in the flow stage -- never both
    assert got[True] == got[False]
    assert got[True][:2] == ("FAILED", "flow") and ("broke" in got[True][3] or "crashed" in got[True][3])


# -- cancel / e-stop while the video is being generated --------------------------------------------
class _Generator(LoopbackHTTP):
    """A video-generator endpoint whose job never finishes (the task waits in fetch)."""

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler

        self.posts = 0
        gen = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _json(self, code: int, obj: Any) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                gen.posts += 1
                self._json(202, {"job_id": "job-1"})

            def do_GET(self) -> None:  # noqa: N802
                self._json(200, {"status": "running"})

        super().__init__(Handler)
        self.url = f"{self.base}/gen"


class _SlowSegmenter:
    """The real segmenter, slowed down: the early segmentation is still running when the cancel comes."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.delay_s, self.name = inner, delay_s, inner.name
        self.running = threading.Event()

    def __call__(self, rgb: Any, box: Any, depth_m: Any = None) -> Any:
        self.running.set()
        time.sleep(self.delay_s)
        return self.inner(rgb, box, depth_m=depth_m)


@pytest.fixture
def generator() -> Iterator[_Generator]:
    g = _Generator()
    yield g
    g.close()


@pytest.mark.sim
@pytest.mark.parametrize("how", ["cancel", "estop"])
def test_stopped_during_fetch_leaves_nothing_running(tmp_path: Path, generator: _Generator, how: str) -> None:
    from dream2flow.early import EarlyPerception
    from dream2flow.planning import grasp_prefetch
    from dream2flow.service.runner import TaskRunner
    from dream2flow.v1 import robot_pb2

    started: list[EarlyPerception] = []
    cfg = _sim_config(tmp_path / "data", True, video_sources={"generator_url": generator.url,
                                                              "url_allowed_networks": ["127.0.0.1/32"],
                                                              "generator_poll_interval_s": 0.05})
    orig = TaskRunner._start_early

    def spy(self: TaskRunner, req: Any, rgbd: Any) -> Any:
        e = orig(self, req, rgbd)
        started.append(e)
        return e

    TaskRunner._start_early = spy  # type: ignore[method-assign]
    try:
        with ServiceThread(cfg) as st, C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
            p = st.service.runner.perception
            slow = _SlowSegmenter(p.segmenter(SEED), 1.5)
            p.segmenter = lambda seed=0: slow  # type: ignore[method-assign]
            box = task_pb2.BoxPx(x0_px=250, y0_px=180, x1_px=400, y1_px=330)
            r = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
                instruction="put it", object_prompt="bread", box=box,
                generate=task_pb2.GenerateVideo(num_frames=12), options=task_pb2.TaskOptions(seed=SEED)))
            assert slow.running.wait(60), "the early segmentation never started"
            t0 = time.monotonic()
            if how == "cancel":
                C.call(conn, conn.tasks.CancelTask, task_pb2.CancelTaskRequest(task_id=r.task.task_id, reason="test"))
            else:
                C.call(conn, conn.robot.EmergencyStop, robot_pb2.EmergencyStopRequest(reason="test"))
            for _ in C.watch(conn, r.task.task_id):
                pass
            task = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=r.task.task_id)).task
            waited = time.monotonic() - t0
            (early,) = started
            # reported finished only after its early work was done or dropped
            assert early.mask is not None and early.mask.done()
            assert early.prefetch is None  # closed before the mask existed: no grasp job was started
            assert (C.STATE_NAMES[task.state], task.failed_stage) == ("CANCELLED", "fetch")
            assert waited < 30
            assert task.metrics["early_perception"] == 1.0
        # the server is gone: no early worker thread, no grasp process
        assert not [t for t in threading.enumerate() if t.name.startswith("d2f-segment")]
        assert grasp_prefetch.worker_pid() is None
    finally:
        TaskRunner._start_early = orig  # type: ignore[method-assign]


def test_close_waits_for_the_grasp_job_and_unmatched_inputs_are_not_used() -> None:
    """``EarlyPerception.close`` leaves no grasp job computing; ``flow_kwargs`` is {} for other inputs."""
    from synthetic_scene import cached_scene

    from dream2flow.early import EarlyPerception
    from dream2flow.perception.factory import load_perception

    scene = cached_scene(width=320, height=240, num_frames=6, seed=0)
    p = load_perception("classical")
    rgbd = scene.rgbd0()
    early = EarlyPerception(p, rgbd, box=scene.box(), prompt="", seed=1)
    assert early.started and early.detection is None
    mask = early.mask.result(timeout=60)
    assert mask.any()
    pre = early.prefetch
    assert pre is not None and np.array_equal(pre.mask, mask)
    assert early.flow_kwargs(p, rgbd, box=scene.box(), prompt="", seed=2) == {}  # another seed
    assert early.flow_kwargs(load_perception("classical"), rgbd, box=scene.box(), prompt="", seed=1) == {}
    assert set(early.flow_kwargs(p, rgbd, box=scene.box(), prompt="", seed=1)) == {"mask"}
    early.close()
    assert pre._future.done()
    m = early.metrics()
    assert m["early_perception"] == 1.0 and m["early_segment_s"] > 0 and m["early_grasps_s"] > 0
    # no box and no detector (classical): nothing starts; the flow stage's mask starts the grasps
    none = EarlyPerception(p, rgbd, prompt="the block", seed=1)
    assert not none.started and set(none.flow_kwargs(p, rgbd, box=None, prompt="the block", seed=1)) == {"on_mask"}
    none.close()
