"""bench/segment_bench.py runs (``--quick``) and prints well-formed JSON lines (issue 13, item 3)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_segment_bench_quick(capsys: pytest.CaptureFixture) -> None:
    path = Path(__file__).resolve().parents[1] / "bench" / "segment_bench.py"
    spec = importlib.util.spec_from_file_location("segment_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["bench"] == "segment" for r in rows)
    assert rows[0]["measure"] == "config" and rows[0]["depth_noise_k"] == 0.0
    scenes = [r for r in rows if r["measure"] == "scene"]
    tasks = {"bread_in_bowl", "open_drawer", "open_oven", "door_vs_wall"}
    assert {r["task"] for r in scenes} == tasks and {r["box"] for r in scenes} == {"tight", "pad20", "pad40"}
    assert len(scenes) == 4 * 3 * 2 and all(0.0 <= r["iou"] <= 1.0 and r["seconds"] >= 0 for r in scenes)
    summary = [r for r in rows if r["measure"] == "summary"]
    assert len(summary) == 4 * 3 * 2
    assert all(r["baseline"] == "classical_grabcut" for r in summary)
    assert all(r["iou_ratio"] == 1.0 for r in summary if r["method"] == "classical_grabcut")
    door = {r["method"]: r for r in rows if r["measure"] == "door_flow"}
    assert set(door) == {"classical_grabcut", "classical_rgbd"} and "flow_median_err_mm" in door["classical_rgbd"]
