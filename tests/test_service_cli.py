"""`dream2flow serve` / `dream2flow task ...`: help, flags over config, the operator client's
output and exit codes against a loopback server; and the benchmark's --quick mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dream2flow.cli import main
from dream2flow.service.testing import (OPERATOR_TOKEN, VIEWER_TOKEN, FakeArm, ServiceThread, make_config,
                                        scripted_pipeline, write_test_depth, write_test_video)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv", [["serve", "--help"], ["task", "--help"]] +
                         [["task", a, "--help"] for a in ("submit", "get", "list", "watch", "cancel", "estop", "reset",
                                                          "fetch")])
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 0
    assert "usage: dream2flow" in capsys.readouterr().out


def test_serve_flags_override_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from dream2flow.commands.serve import apply_overrides
    from dream2flow.service.config import load_service_config

    cfg = load_service_config(ROOT / "hw" / "service.example.toml")
    args = argparse.Namespace(config="x", listen="127.0.0.1:6000", data_dir=str(tmp_path / "d"), backend="mujoco",
                              insecure=True)
    cfg.camera = {"type": "sim"}
    out = apply_overrides(cfg, args)
    assert out.server.listen == "127.0.0.1:6000" and out.server.insecure and out.robot.backend == "mujoco"
    assert out.data_path == (tmp_path / "d").resolve()
    # A bad config is one line and exit code 2, never a traceback.
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nlisten = 5\n")
    assert main(["serve", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'listen' must be a str" in err


def test_operator_client(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = write_test_video(tmp_path / "v.mp4")
    depth = write_test_depth(tmp_path / "d.npy")
    (tmp_path / "op.token").write_text(OPERATOR_TOKEN + "\n")
    (tmp_path / "viewer.token").write_text(VIEWER_TOKEN)
    cfg = make_config(tmp_path / "data")
    with ServiceThread(cfg, backend_factory=lambda n, d: FakeArm(), pipeline=scripted_pipeline(ticks=10)) as st:
        conn = ["--server", st.address, "--insecure", "--token-file", str(tmp_path / "op.token")]
        view = ["--server", st.address, "--insecure", "--token-file", str(tmp_path / "viewer.token")]
        submit = ["task", "submit", *conn, "--instruction", "put the bread in the bowl", "--box", "100,100,300,260",
                  "--video", str(video), "--video-depth", str(depth)]
        assert main([*submit, "--watch"]) == 0
        out = capsys.readouterr().out
        assert "upload v.mp4: done" in out and "SUCCEEDED" in out and "execute done" in out
        tid = out.split("task ", 1)[1].split(":", 1)[0]

        assert main(["task", "get", *view, tid, "--json"]) == 0
        rec = json.loads(capsys.readouterr().out)
        assert rec["task_id"] == tid and rec["state"] == "SUCCEEDED" and rec["submitted_by"] == "op"
        assert main(["task", "list", *view, "--state", "succeeded"]) == 0
        assert tid in capsys.readouterr().out
        assert main(["task", "watch", *view, tid, "--after", "3"]) == 0
        watched = capsys.readouterr().out
        assert "[4]" in watched and "[3]" not in watched

        assert main(["task", "observe", *view, "--out", str(tmp_path / "obs")]) == 0
        assert {p.name for p in (tmp_path / "obs").iterdir()} == {"i0.png", "d0.npy", "camera.toml"}
        capsys.readouterr()

        # Exit codes: viewer may not submit (2), unknown id (2), e-stop refuses motion (3).
        assert main(["task", "submit", *view, "--instruction", "x", "--box", "1,1,5,5", "--video", str(video),
                     "--video-depth", str(depth)]) == 2
        assert "PERMISSION_DENIED" in capsys.readouterr().err
        assert main(["task", "cancel", *conn, "t_unknown"]) == 2
        assert main(["task", "estop", *view, "--reason", "test"]) == 0
        assert "EMERGENCY STOP" in capsys.readouterr().out
        assert main(["task", "state", *view]) == 0
        assert "mode ESTOPPED" in capsys.readouterr().out
        assert main(submit) == 3
        assert "emergency stop" in capsys.readouterr().err
        assert main(["task", "reset", *conn]) == 0
        assert "mode READY" in capsys.readouterr().out
        assert main(["task", "list", "--server", st.address, "--insecure", "--token", ""]) == 2  # no token
        capsys.readouterr()

    # A task that fails in planning: watch exits with the planning code (5).
    cfg2 = make_config(tmp_path / "data2")
    with ServiceThread(cfg2, backend_factory=lambda n, d: FakeArm(),
                       pipeline=scripted_pipeline(fail_stage="plan")) as st:
        conn = ["--server", st.address, "--insecure", "--token-file", str(tmp_path / "op.token")]
        assert main(["task", "submit", *conn, "--instruction", "x", "--box", "100,100,300,260", "--video", str(video),
                     "--video-depth", str(depth), "--watch"]) == 5
        assert "failed in plan" in capsys.readouterr().err


def test_bench_quick(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "service_bench.py"), "--quick"], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    names = {row["name"] for row in rows}
    assert {"upload_mb_s", "rpc_latency_ms", "estop_latency_ms", "upload_resume", "upload_dedup_ms",
            "artifact_fetch_mb_s", "artifact_fetch_resume"} <= names
    resume = next(row for row in rows if row["name"] == "upload_resume")
    assert 0 < resume["kept_bytes"] and resume["sent_on_resume_bytes"] == resume["bytes"] - resume["kept_bytes"]
    fetch = next(row for row in rows if row["name"] == "artifact_fetch_resume")
    assert 0 < fetch["resumed_from_bytes"] < fetch["bytes"]
    for row in rows:
        if row["name"] == "upload_mb_s":
            assert row["value"] > 0
        if row["name"] == "rpc_latency_ms":
            assert 0 < row["p50"] <= row["p90"] <= row["p99"]
