"""bench/flow_bench.py runs (tiny sizes) and prints well-formed JSON lines (issue 2 acceptance 4)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest


def test_flow_bench_quick(capsys: pytest.CaptureFixture) -> None:
    path = Path(__file__).resolve().parents[1] / "bench" / "flow_bench.py"
    spec = importlib.util.spec_from_file_location("flow_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stages = {r["stage"] for r in rows if r["measure"] == "stage_time"}
    assert stages >= {"decode", "segment", "sample", "track", "align", "lift", "filter", "pictures", "total"}
    assert all(r["seconds"] >= 0 for r in rows if r["measure"] == "stage_time")
    assert {r["vary"] for r in rows if r["measure"] == "scaling"} == {"T", "n"}
    assert sum(r["measure"] == "accuracy" for r in rows) == 4
