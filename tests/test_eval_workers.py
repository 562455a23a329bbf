"""Issue 18: ``dream2flow eval --workers 2`` (episodes as Ray tasks on a local cluster) gives the
same results as the serial run, episode by episode; the progress bar; bad worker counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dream2flow.episode import method_variant
from dream2flow.errors import InvalidInput
from dream2flow.parallel import EpisodeJob, progress_bar, run_episodes

os.environ.setdefault("MUJOCO_GL", "egl")


def _cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _outcomes(doc: dict[str, Any]) -> list[tuple]:
    """Everything an episode decided (no wall-clock seconds): success, failure stage, the check's
    value, the error text, and each stage's ok flag."""
    out = []
    for ep in doc["episodes"]:
        for m in ep["methods"]:
            out.append((ep["task"], ep["seed"], m["method"], m["success"], m["failure_stage"], m["success_value"],
                        m["error"], sorted((k, s["ok"]) for k, s in m["stages"].items())))
    return out


@pytest.mark.sim
@pytest.mark.slow
def test_two_workers_give_the_serial_results(tmp_path: Path) -> None:
    common = ["eval", "--tasks", "open_drawer", "--episodes", "2", "--seed", "9200", "--methods",
              "dream2flow,dream2flow@off", "--artifacts", "occlusion"]
    serial = _cli(*common, "--workers", "1", "--json", str(tmp_path / "w1.json"))
    assert serial.returncode == 0, serial.stdout[-2000:] + serial.stderr[-2000:]
    par = _cli(*common, "--workers", "2", "--json", str(tmp_path / "w2.json"))
    assert par.returncode == 0, par.stdout[-2000:] + par.stderr[-2000:]
    assert "Traceback" not in par.stderr
    a = json.loads((tmp_path / "w1.json").read_text())
    b = json.loads((tmp_path / "w2.json").read_text())
    assert a["table"] == b["table"] and a["failures_by_stage"] == b["failures_by_stage"]
    assert _outcomes(a) == _outcomes(b)
    assert [e["seed"] for e in b["episodes"]] == [9200, 9201]           # the serial order
    assert [m["method"] for m in b["episodes"][0]["methods"]] == ["dream2flow", "dream2flow@off"]
    assert b["run"]["config"]["command"]["workers"] == 2
    assert "[####################] 2/2 (100%)" in par.stdout
    # the table printed is the same text
    table = lambda s: s[s.index("artifacts:"):]  # noqa: E731
    assert table(serial.stdout) == table(par.stdout)


def test_progress_bar_and_eta() -> None:
    assert progress_bar(0, 4, 0.0) == "[--------------------] 0/4 (0%) 0 s elapsed, ETA ?"
    assert progress_bar(1, 4, 30.0) == "[#####---------------] 1/4 (25%) 30 s elapsed, ETA 1:30"


@pytest.mark.parametrize("workers", [0, 65])
def test_worker_count_out_of_range_is_refused(workers: int) -> None:
    with pytest.raises(InvalidInput, match="workers"):
        run_episodes([EpisodeJob("open_drawer", 0)], workers=workers)


def test_cli_workers_out_of_range_is_one_line_exit_2() -> None:
    r = _cli("eval", "--workers", "0", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--workers" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_method_variants_name_an_articulation_mode() -> None:
    assert method_variant("rigid_avdc") == ("rigid_avdc", None)
    base, cfg = method_variant("dream2flow@off")
    assert base == "dream2flow" and cfg.articulation == "off"
    assert method_variant("dream2flow@project")[1].articulation == "project"
    for bad in ("dream2flow@fast", "rigid_avdc@off", "magic"):
        with pytest.raises(InvalidInput, match="unknown method"):
            method_variant(bad)


def test_cli_bad_method_variant_is_one_line_exit_2() -> None:
    r = _cli("eval", "--methods", "dream2flow@fast", "--episodes", "1", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "dream2flow@MODE" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
