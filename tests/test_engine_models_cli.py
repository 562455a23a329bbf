"""``dream2flow models list|check``: exit codes and what an operator reads."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tiny_perception import need_export_extra as _need_torch  # noqa: E402

from dream2flow.cli import main  # noqa: E402


def test_list_committed_manifest_names_export_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--manifest", str(REPO / "exported_models" / "manifest.toml")]) == 0
    out = capsys.readouterr().out
    assert "cotracker3_offline" in out and "not exported here" in out
    assert "make it with: python export_tools/export_sam2.py" in out


def test_check_missing_models_exits_not_ready(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["models", "check", "--manifest", str(REPO / "exported_models" / "manifest.toml"),
                 "--models-dir", str(tmp_path), "--model", "depth_anything_v2_small"])
    cap = capsys.readouterr()
    assert code == 3
    assert "export_tools/export_depth_anything.py" in cap.err and len(cap.err.strip().splitlines()) == 1


def test_check_committed_mediapipe_models(capsys: pytest.CaptureFixture[str]) -> None:
    """MediaPipe's hand models are real files in the repository: sha256, I/O signature and a run."""
    code = main(["models", "check", "--providers", "cpu", "--model", "mediapipe_palm_detection_full",
                 "--model", "mediapipe_hand_landmark_full"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mediapipe_palm_detection_full (hand_palm_detector): running on CPUExecutionProvider" in out
    assert "mediapipe_hand_landmark_full (hand_landmarks): running on CPUExecutionProvider" in out
    assert "models check: 2 models ok" in out


def test_check_tiny_models_reports_cpu_fallback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _need_torch()
    from export_tools.tiny import cached_tiny_set

    m = cached_tiny_set()
    assert main(["models", "check", "--manifest", str(m)]) == 0
    out = capsys.readouterr().out
    assert "no GPU execution provider" in out and "CPU FALLBACK" in out and "models check: 6 models ok" in out
    assert main(["models", "check", "--manifest", str(m), "--providers", "cpu", "--model", "vitpose_b_wholebody"]) == 0
    assert "CPU FALLBACK" not in capsys.readouterr().out
    # a damaged copy: exit 3, one line naming the model and sha256
    work = tmp_path / "m"
    shutil.copytree(m.parent, work)
    f = work / "vitpose_b_wholebody.onnx"
    f.write_bytes(f.read_bytes() + b"\0")
    assert main(["models", "check", "--manifest", str(work / "manifest.toml"), "--model", "vitpose_b_wholebody"]) == 3
    err = capsys.readouterr().err
    assert "vitpose_b_wholebody" in err and "sha256" in err
    assert main(["models", "check", "--manifest", str(m), "--providers", "tpu"]) == 2
