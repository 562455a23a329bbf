"""Run a ``Service`` in a background thread with its own event loop (tests, benchmarks), and
make throw-away TLS certificates with the ``openssl`` command.

Why in the package: the tests and ``bench/service_bench.py`` share it, and it exercises the
real server (same interceptor, store, runner), only on loopback.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dream2flow.service.auth import tokens_from_entries
from dream2flow.service.config import ServiceConfig, config_from_dict

OPERATOR_TOKEN = "operator-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"
OTHER_OPERATOR_TOKEN = "operator2-token-0123456789abcdef"
TEST_TOKENS = [{"name": "op", "role": "operator", "token": OPERATOR_TOKEN},
               {"name": "op2", "role": "operator", "token": OTHER_OPERATOR_TOKEN},
               {"name": "viewer", "role": "viewer", "token": VIEWER_TOKEN}]


def make_config(data_dir: str | Path, **sections: dict[str, Any]) -> ServiceConfig:
    """A loopback, plaintext, port-0 config with the test tokens and the classical perception (no
    detector, no video-depth model, whatever is exported on this machine); ``sections`` override tables."""
    d: dict[str, Any] = {"server": {"listen": "127.0.0.1:0", "data_dir": str(data_dir), "insecure": True,
                                    "grace_s": 0.5, "warm_up": False},
                         "auth": {"tokens": TEST_TOKENS},
                         "camera": {"type": "mock"},
                         "perception": {"config": "classical"}}
    for k, v in sections.items():
        d[k] = {**d.get(k, {}), **v} if k != "camera" else dict(v)
    return config_from_dict(d, where="test config", base_dir=str(data_dir))


class ServiceThread:
    """``with ServiceThread(cfg, ...) as st: st.port`` — the server runs in a daemon thread."""

    def __init__(self, cfg: ServiceConfig, **service_kw: Any) -> None:
        import dataclasses

        from dream2flow.service.server import Service

        if service_kw.get("pipeline") is not None:  # a stand-in pipeline ignores I0's early perception:
            # not computed for nothing (tests/test_service_early.py runs it with the real pipeline)
            cfg = dataclasses.replace(cfg, perception=dataclasses.replace(cfg.perception, early=False))
        self.cfg = cfg
        self.service = Service(cfg, tokens=tokens_from_entries(cfg.auth.tokens, "test"), **service_kw)
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="d2f-test-server", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self.port = await self.service.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                await self.service.stop(0)
                return
            self._ready.set()
            await self._stop.wait()
            await self.service.stop(0.5)

        asyncio.run(run())

    def start(self, timeout_s: float = 120.0) -> "ServiceThread":
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the test server did not start")
        if self._error is not None:
            raise self._error
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 60.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def __enter__(self) -> "ServiceThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class CertFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path
    other_client_cert: Path
    other_client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_test_certs(folder: str | Path) -> CertFiles:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate (for mTLS) and a
    client certificate from a second, untrusted CA. Needs the ``openssl`` command."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is not installed")
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=d2f test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=d)
    pairs = (("server", "ca", "san.cnf"), ("client", "ca", "client.cnf"), ("other_client", "other_ca", "client.cnf"))
    for name, ca, ext in pairs:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
                 "-days", "2", "-extfile", ext, "-out", f"{name}.crt", cwd=d)
    return CertFiles(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key",
                     d / "other_ca.crt", d / "other_client.crt", d / "other_client.key")


def scripted_pipeline(*, ticks: int = 20, tick_s: float = 0.0, fail_stage: str | None = None) -> Any:
    """A stand-in for ``pipeline.run_task`` for service tests that are not about perception or
    planning (load, auth, queueing, cancel/e-stop): it reports the flow and plan stages, then
    streams ``ticks`` joint commands (``tick_s`` apart, stopping on ``cancel``) through the real
    backend object the server hands it, and returns a real ``TaskOutcome``. The end-to-end test
    uses the real pipeline."""
    import time as _time

    import numpy as np

    def run_task(inputs: Any, backend: Any, *, out_dir: Any = None, progress: Any = None, cancel: Any = None,
                 on_tick: Any = None, pictures: bool = True) -> Any:
        from dream2flow.errors import Dream2FlowError, ExecutionFailed, PlanningFailed
        from dream2flow.pipeline import StageRecord, TaskOutcome

        stages: dict[str, Any] = {}
        try:
            for stage in ("flow", "plan"):
                progress(stage, 0.0, {})
                if fail_stage == stage:
                    raise PlanningFailed(f"scripted failure in {stage}", stage=stage)
                stages[stage] = StageRecord(True, 0.0)
                progress(stage, 1.0, {"seconds": 0.0})
            progress("execute", 0.0, {})
            q = np.asarray(backend.state().q, dtype=np.float64)
            for i in range(ticks):
                if cancel is not None and cancel.is_set():
                    raise ExecutionFailed("stopped: cancel requested", stage="execute")
                if not inputs.dry_run:
                    backend.command_joint_positions(q)
                backend.step(0.01)
                if on_tick is not None:
                    on_tick(i, i * 0.01, backend)
                if tick_s:
                    _time.sleep(tick_s)
            stages["execute"] = StageRecord(True, 0.0)
            progress("execute", 1.0, {"seconds": 0.0})
        except Dream2FlowError as exc:
            return TaskOutcome(False, exc.stage, exc.message, stages)
        return TaskOutcome(True, None, None, stages)

    return run_task


class FakeArm:
    """A 7-joint arm that holds whatever it is told (service tests that do not need kinematics)."""

    name = "fake"
    simulated = True

    def __init__(self) -> None:
        import numpy as np

        self.q = np.zeros(7)
        self.t = 0.0
        self.stops = 0

    def connect(self) -> None:
        pass

    def state(self) -> Any:
        import numpy as np

        from dream2flow.types import RobotState

        return RobotState(self.q.copy(), np.zeros(7), self.t)

    def command_joint_positions(self, q: Any) -> None:
        import numpy as np

        self.q = np.asarray(q, dtype=np.float64).copy()

    def gripper(self, width_m: Any = None, grasp: bool = False) -> None:
        pass

    def step(self, dt_s: float) -> None:
        self.t += dt_s

    def stop(self) -> None:
        self.stops += 1

    def close(self) -> None:
        pass


def write_test_video(path: str | Path, *, frames: int = 12, width: int = 160, height: int = 120,
                     seed: int = 0) -> Path:
    """A small moving-square MP4 (4:3, so it scales to a 640x480 camera)."""
    import numpy as np

    from dream2flow.video.encode import write_video

    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(height, width, 3), dtype=np.uint8)
    out = np.repeat(base[None], frames, axis=0)
    for t in range(frames):
        x = 10 + 3 * t
        out[t, 40:70, x:x + 30] = (230, 40, 40)
    return write_video(path, out, fps=10.0)


def write_test_depth(path: str | Path, *, frames: int = 12, width: int = 160, height: int = 120) -> Path:
    import numpy as np

    d = np.linspace(1.0, 2.0, width, dtype=np.float32)[None, None, :].repeat(height, 1).repeat(frames, 0)
    np.save(path, d, allow_pickle=False)
    return Path(path)


def loop_only_pipeline(duration_s: float = 8.0) -> Any:
    """A stand-in for ``pipeline.run_task`` that skips perception and planning but runs the real
    control loop (``dream2flow.control.loop.execute_plan``) on a slow joint move of
    ``duration_s``: e-stop, cancel and crash tests then exercise the loop the robot uses."""
    import numpy as np

    def run_task(inputs: Any, backend: Any, *, out_dir: Any = None, progress: Any = None, cancel: Any = None,
                 on_tick: Any = None, pictures: bool = True) -> Any:
        from dream2flow.control.loop import execute_plan
        from dream2flow.pipeline import StageRecord, TaskOutcome
        from dream2flow.types import Plan

        q0 = np.asarray(backend.state().q, dtype=np.float64)
        H = int(duration_s / 0.1) + 1
        s = np.linspace(0.0, 1.0, H)[:, None]
        q = q0 + s * np.array([0.3, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0])
        plan = Plan(q=q, dt_s=0.1, gripper=np.zeros(H), predicted_points=np.zeros((H, 1, 3)))
        if out_dir is not None:
            plan.save(Path(out_dir) / "plan.npz")
        progress("execute", 0.0, {})
        res = execute_plan(plan, backend, rate_hz=inputs.rate_hz, stop_event=cancel, on_tick=on_tick,
                           dry_run=bool(inputs.dry_run))
        if not res.ok:
            return TaskOutcome(False, "execute", res.reason, {"execute": StageRecord(False, 0.0, res.reason)})
        progress("execute", 1.0, {})
        return TaskOutcome(True, None, None, {"execute": StageRecord(True, 0.0)}, execution=res)

    return run_task


def _main(argv: list[str]) -> int:
    """``python -m dream2flow.service.testing CONFIG [SECONDS]``: ``dream2flow serve`` with the
    loop-only stand-in pipeline (crash tests kill it mid-motion). Test use only."""
    import signal as _signal

    from dream2flow.log import progress
    from dream2flow.service.config import load_service_config
    from dream2flow.service.server import Service

    cfg = load_service_config(argv[0])
    seconds = float(argv[1]) if len(argv) > 1 else 8.0

    async def run() -> None:
        svc = Service(cfg, pipeline=loop_only_pipeline(seconds))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            port = await svc.start()
            progress(f"dream2flow serve (test pipeline): listening on 127.0.0.1:{port}")
            await stop.wait()
        finally:
            await svc.stop()

    asyncio.run(run())
    return 0


if __name__ == "__main__":  # pragma: no cover - a test helper process
    import sys as _sys

    _sys.exit(_main(_sys.argv[1:]))
