"""Issue 16 from another language: a Node.js client (@grpc/grpc-js, pinned in tests/node/package.json,
installed by .ci/run with ``npm ci``) saturates the server with 200 unauthenticated health
streams and 64 viewer watch streams, then presses the e-stop; it reads the google.rpc.Status
details of refused calls and decides from them alone whether to retry.

Needs ``node`` and ``tests/node/node_modules``: without them this test FAILS (it must not pass
silently); set D2F_SKIP_NODE=1 to skip it on purpose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dream2flow.service import client as C
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, ServiceThread, loop_only_pipeline, make_config,
                                        write_test_depth, write_test_video)
from dream2flow.v1 import task_pb2

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "tests" / "node"
RATE_HZ = 100.0


def _node() -> str:
    if os.environ.get("D2F_SKIP_NODE") == "1":
        pytest.skip("D2F_SKIP_NODE=1: the Node.js client test was skipped on purpose")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the Node.js client test needs it (CI installs it; D2F_SKIP_NODE=1 skips)")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("tests/node/node_modules is missing: run `npm ci --ignore-scripts --prefix tests/node` "
                    "(.ci/run does)")
    return node


def test_node_client_estop_under_saturation_and_structured_errors(tmp_path: Path) -> None:
    node = _node()
    import google.rpc.status_pb2 as status_pb2

    googleapis = Path(status_pb2.__file__).resolve().parents[2]  # the folder holding google/rpc/*.proto
    cfg = make_config(tmp_path / "data", robot={"backend": "kinematic", "realtime": True, "rate_hz": RATE_HZ},
                      limits={"max_unauthenticated_streams": 200, "max_streams_per_peer": 512,
                              "max_streams_per_token": 128, "max_watchers": 128})
    with ServiceThread(cfg, pipeline=loop_only_pipeline(8.0)) as st, \
            C.connect(st.address, token=OPERATOR_TOKEN, insecure=True) as conn:
        video = write_test_video(tmp_path / "v.mp4")
        depth = write_test_depth(tmp_path / "d.npy")
        t = C.call(conn, conn.tasks.SubmitTask, task_pb2.SubmitTaskRequest(
            instruction="move", box=task_pb2.BoxPx(x0_px=100, y0_px=100, x1_px=300, y1_px=260),
            video_upload_id=C.upload_file(conn, video).upload_id,
            video_depth_upload_id=C.upload_file(conn, depth, "VIDEO_DEPTH").upload_id)).task
        for e in C.watch(conn, t.task_id):
            if e.stage == "execute" and C.KIND_NAMES[e.kind] == "PROGRESS":
                break
        arg = {"address": st.address, "operator_token": OPERATOR_TOKEN, "viewer_token": VIEWER_TOKEN,
               "task_id": t.task_id, "video_sha256": C.sha256_file(video), "depth_sha256": C.sha256_file(depth),
               "protos_dir": str(ROOT / "protos"), "googleapis_dir": str(googleapis), "health_streams": 200,
               "watch_streams": 64}
        r = subprocess.run([node, str(NODE_DIR / "estop_saturation.mjs"), json.dumps(arg)], capture_output=True,
                           text=True, timeout=180, cwd=NODE_DIR)
        assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
        out = json.loads(r.stdout.strip().splitlines()[-1])
        for _ in C.watch(conn, t.task_id):
            pass
        done = C.call(conn, conn.tasks.GetTask, task_pb2.GetTaskRequest(task_id=t.task_id)).task
        dev = st.service.devices
        gap_s = dev.backend().last_command_monotonic_s - dev.estop_monotonic_s
    print(f"\nnode client: e-stop {out['estop_ms']:.1f} ms with {out['health_open']} health + "
          f"{out['watch_open']} watch streams open")
    assert out["health_open"] == 200 and out["watch_open"] == 64
    assert out["estop_ms"] < 100.0 and out["estop_mode"] == "MOTION_MODE_ESTOPPED"
    assert out["stopped_task_id"] == t.task_id
    assert C.STATE_NAMES[done.state] == "CANCELLED" and gap_s < 1.0 / RATE_HZ  # motion stopped within a period
    assert out["extra_health"]["code"] == "RESOURCE_EXHAUSTED" and out["extra_health"]["reason"] == "STREAM_LIMIT"
    assert out["extra_health"]["quota"] == ["unauthenticated streams"]
    assert out["extra_health"]["decision"].startswith("retry after")
    assert out["submit_during_estop"] == {"code": "FAILED_PRECONDITION", "reason": "ESTOP_ACTIVE",
                                          "domain": "dream2flow.v1", "decision": "do not retry"}
    assert out["unknown_task"] == {"code": "NOT_FOUND", "reason": "TASK_NOT_FOUND", "decision": "do not retry"}
