"""(Named test_onnx_*: imports torch in-process, so it runs after tests/test_imports.py.)
bench/perception_bench.py --quick runs and prints one JSON line per model, with the ORT/PyTorch
ratio for the tiny models (no timing assertions: speed is reported, not tested)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def test_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    sys.path.insert(0, str(REPO / "bench"))
    import perception_bench

    from export_tools.tiny import cached_tiny_set

    assert perception_bench.main(["--quick", "--repeats", "1", "--manifest", str(cached_tiny_set()), "--providers", "cpu"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines() if s.startswith("{")]
    by = {d["model"]: d for d in lines}
    assert len(by) == 6 and all(d["provider"] == "CPUExecutionProvider" and d["ort_median_ms"] > 0 for d in lines)
    for name in ("depth_anything_v2_small", "grounding_dino_tiny", "sam2_1_hiera_tiny_image_encoder", "vitpose_b_wholebody"):
        assert by[name]["ratio_ort_over_torch"] > 0 and by[name]["torch_eager_median_ms"] > 0
    assert "ratio_ort_over_torch" not in by["cotracker3_io_fixture"]
