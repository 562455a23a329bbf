"""``dream2flow execute``: exit codes, one-line errors, the command log file, dry run; and the
loop benchmark's --quick smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dream2flow.cli import main
from dream2flow.config import load_robot_limits
from dream2flow.control.command_log import load_command_log
from dream2flow.types import Plan

LIM = load_robot_limits()
REPO = Path(__file__).resolve().parents[1]


def _plan_file(tmp_path: Path, *, bad: bool = False) -> Path:
    H, dt = 41, 0.05
    s = np.linspace(0, 1, H)
    q = LIM.q_ready + np.sin(np.pi * s)[:, None] ** 2 * np.array([0.2, 0.1, -0.1, 0.15, 0.2, 0.1, 0.2])
    if bad:
        q[20:, 6] = LIM.q_max[6] + 0.2                     # beyond joint 7's limit
    g = np.zeros(H)
    g[15:30] = 1
    return Plan(q=q, dt_s=dt, gripper=g, predicted_points=np.zeros((H, 1, 3))).save(tmp_path / "plan.npz")


def test_execute_kinematic_writes_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan_file(tmp_path)
    log = tmp_path / "out" / "log.npz"
    log.parent.mkdir()
    assert main(["execute", "--plan", str(plan), "--backend", "kinematic", "--rate", "200", "--log", str(log),
                 "--json"]) == 0
    out = capsys.readouterr().out
    assert "execute: done:" in out and "0 missed periods" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["ok"] and summary["rate_hz"] == 200.0 and [e["action"] for e in summary["gripper_events"]] == ["grasp", "open"]
    rec = load_command_log(log)
    assert len(rec) == summary["commands_sent"] and rec.rate_hz == 200.0
    assert np.allclose(rec.records["q"][-1], Plan.load(plan).q[-1])


def test_execute_dry_run_sends_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan_file(tmp_path)
    log = tmp_path / "dry.npz"
    assert main(["execute", "--plan", str(plan), "--dry-run", "--q0", ",".join(str(x) for x in LIM.q_ready + 0.1),
                 "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "dry run ok" in out and "nothing was sent" in out
    assert len(load_command_log(log)) > 41


def test_execute_violating_plan_exits_6_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan_file(tmp_path, bad=True)
    log = tmp_path / "log.npz"
    assert main(["execute", "--plan", str(plan), "--backend", "kinematic", "--log", str(log)]) == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pre-flight" in err[0] and "nothing was sent" in err[0]
    assert len(load_command_log(log)) == 0


@pytest.mark.parametrize("argv_tail, code, fragment", [
    (["--plan", "missing.npz"], 2, "plan file not found"),
    (["--backend", "kinematic", "--host", "x"], 2, "--host/--mode apply to --backend polymetis only"),
    (["--backend", "kinematic", "--q0", "1,2"], 2, "--q0 must be 7"),
    (["--backend", "kinematic", "--rate", "5000"], 2, "--rate: expected a number in [1, 1000] Hz"),
    (["--backend", "kinematic", "--rate", "nan"], 2, "--rate: expected a finite number"),
    (["--backend", "kinematic", "--task", "open_oven"], 2, "--task/--seed apply to --backend mujoco only"),
    (["--backend", "polymetis"], 2, "moves a real arm: clear the workspace, keep the e-stop in reach, then confirm "
                                    "with --yes"),
    (["--backend", "polymetis", "--yes"], 3, "polymetis is not installed"),
    (["--backend", "polymetis", "--dry-run"], 3, "polymetis is not installed"),   # a dry run moves nothing
])
def test_execute_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                        argv_tail: list[str], code: int, fragment: str) -> None:
    monkeypatch.setitem(sys.modules, "polymetis", None)
    plan = _plan_file(tmp_path)
    argv = ["execute"] + (["--plan", str(plan)] if "--plan" not in argv_tail else []) + argv_tail
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse refuses an option's value itself (one line, exit 2)
        rc = exc.code
    assert rc == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_execute_config_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _plan_file(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[safety]\nworkspace_max = [0.95, 0.7, 0.5]\n")          # a low ceiling the plan breaks
    assert main(["execute", "--plan", str(plan), "--config", str(cfg)]) == 6
    assert "leaves the workspace box" in capsys.readouterr().err


def test_loop_bench_quick_runs() -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "loop_bench.py"), "--quick", "--rates", "100"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.strip().splitlines()]
    kinds = {x["bench"] for x in lines}
    assert kinds == {"control_loop", "control_loop_baseline", "control_loop_compute"}
    loop = [x for x in lines if x["bench"] == "control_loop"][0]
    assert loop["ok"] and loop["ticks"] + loop["missed_periods"] >= 150 and {"p50", "p99", "max"} <= set(loop["period_jitter_us"])


@pytest.mark.sim
def test_execute_on_mujoco(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import dream2flow.sim.robot  # noqa: F401
    plan = _plan_file(tmp_path)
    assert main(["execute", "--plan", str(plan), "--backend", "mujoco", "--task", "bread_in_bowl", "--seed", "0",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ok"] and summary["backend"] == "mujoco" and summary["max_tracking_error_rad"] < 0.02


def test_long_move_to_start_is_refused_before_anything_moves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's 8.6 s joint-space swing to the plan's start: refused with the reason (exit 6)."""
    plan = _plan_file(tmp_path)
    assert main(["execute", "--plan", str(plan), "--q0=-2.5,-0.3,1.5,-1.5,-1.5,2.5,-2.0", "--dry-run"]) == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "move-to-start refused: joint 7 would travel 2.785 rad" in err[0] and "8.6 s" in err[0]
    assert "start_max_joint_distance_rad" in err[0] and "nothing was sent" in err[0]
    # a short one (0.1 rad) still runs
    assert main(["execute", "--plan", str(plan), "--q0", ",".join(str(x) for x in LIM.q_ready + 0.1)]) == 0


def test_hw_folder_without_control_toml_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from dream2flow.config import shipped_hw_dir
    from dream2flow.control.settings import LoopConfig, load_loop_config

    plan = _plan_file(tmp_path)
    cell = tmp_path / "cell"
    (cell / "robot").mkdir(parents=True)
    monkeypatch.setenv("D2F_HW_DIR", str(shipped_hw_dir()))   # restored after the test (--hw-dir sets it)
    assert main(["execute", "--plan", str(plan), "--hw-dir", str(cell)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"the hw folder {cell.resolve()}" in err[0] and "has no robot/control.toml" in err[0]
    # the built-in defaults only when asked for, and they equal the shipped file
    monkeypatch.delenv("D2F_HW_DIR", raising=False)
    assert load_loop_config(defaults=True) == LoopConfig() == load_loop_config()
    (cell / "robot" / "control.toml").write_text("[safety]\nmax_deviation_rad = 0.05\n")
    assert main(["execute", "--plan", str(plan), "--hw-dir", str(cell)]) == 0
    assert load_loop_config().max_deviation_rad == 0.05       # --hw-dir is the process's folder now
    assert main(["--hw-dir", str(tmp_path / "nope"), "execute", "--plan", str(plan)]) == 2
    assert "hw folder not found" in capsys.readouterr().err
