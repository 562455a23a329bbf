"""Issue 13 acceptance 2, 5 (perceive) and 6 on the project's tiny random ONNX exports (plumbing:
their outputs are random, so these tests check which backends run and where their results go,
never accuracy).

- ``dream2flow flow`` without ``--video-depth`` and ``--box``, given ``--prompt`` and a perception
  configuration whose roles have models, runs those models and records them; with no video-depth
  backend it exits 3 (NotReady) naming the role.
- ``dream2flow perceive`` writes perception.json + overlay.png, with models and with the default
  configuration from only ``--rgb`` and ``--out``.
- ``dream2flow eval --inputs perceived`` runs on the configured models; its table and JSON say
  which inputs and backends were used.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

if importlib.util.find_spec("torch") is None:
    pytest.skip("torch not installed: the tiny models cannot be exported (the export extra)", allow_module_level=True)

from tiny_perception import plumbing_scene, tiny_models_dir, write_perception_toml  # noqa: E402

from dream2flow.perception.factory import load_perception  # noqa: E402
from dream2flow.types import ObjectFlow  # noqa: E402

TINY = {"detector": "onnx:grounding_dino_tiny", "segmenter": "onnx:sam2_1_hiera_tiny_image_encoder",
        "tracker": "onnx:cotracker3_io_fixture", "video_depth": "onnx:depth_anything_v2_small",
        "hand": "onnx:vitpose_b_wholebody"}


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tiny_perception")
    models = tiny_models_dir()
    cfg = write_perception_toml(d / "models.toml", models)
    no_depth = write_perception_toml(d / "no_depth.toml", models, roles={"video_depth": "none"})
    scene = plumbing_scene(d / "scene", load_perception(cfg))
    return {"config": cfg, "no_depth": no_depth, **scene}


def _flow(tiny: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["flow", "--video", str(tiny["video"]), "--rgb", str(tiny["rgb"]), "--depth", str(tiny["depth"]),
            "--camera", str(tiny["camera"]), "--points", "32", "--out", str(out), *extra]


def test_flow_with_only_a_prompt_runs_the_configured_models(tiny, tmp_path: Path) -> None:
    r = _cli(*_flow(tiny, tmp_path / "out", "--prompt", "the textured block", "--perception", str(tiny["config"])))
    assert r.returncode == 0, r.stderr
    assert "'the textured block' at (" in r.stdout and "detector=onnx:grounding_dino_tiny" in r.stdout
    flow = ObjectFlow.load(tmp_path / "out" / "flow.npz")
    assert flow.meta["backends"] == TINY
    assert flow.meta["object_prompt"] == "the textured block" and 0 < flow.meta["box_score"] <= 1
    assert flow.meta["perception"]["config"] == str(tiny["config"])
    assert flow.meta["first_frame"]["ok"]
    assert flow.points_base.shape == (8, 32, 3) and flow.visible[0].mean() > 0.5
    # Overrides are used when given, and said so.
    r = _cli(*_flow(tiny, tmp_path / "given", "--box", "100,70,210,160", "--perception", str(tiny["config"])))
    assert r.returncode == 0, r.stderr
    meta = ObjectFlow.load(tmp_path / "given" / "flow.npz").meta
    assert meta["backends"]["detector"] == "given_box" and meta["box_score"] is None
    assert meta["backends"]["video_depth"] == TINY["video_depth"]


def test_flow_without_a_video_depth_backend_is_not_ready_naming_the_role(tiny, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for spec in (str(tiny["no_depth"]), "classical"):
        r = _cli(*_flow(tiny, out, "--box", "100,70,210,160", "--perception", spec))
        assert r.returncode == 3, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "no video-depth backend" in lines[0] and "--video-depth" in lines[0]
        assert "Traceback" not in r.stderr and not out.exists()
    r = _cli(*_flow(tiny, out, "--prompt", "block", "--perception", "classical"))
    assert r.returncode == 3 and "no detector backend" in r.stderr and "--box" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_perceive_with_models(tiny, tmp_path: Path) -> None:
    out = tmp_path / "p"
    r = _cli("perceive", "--rgb", str(tiny["rgb"]), "--video", str(tiny["video"]), "--depth", str(tiny["depth"]),
             "--prompt", "block", "--perception", str(tiny["config"]), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "perception.json").read_text())
    assert rep["backends"] == {**TINY, "tracker": None, "video_depth": None}  # what ran on this image
    assert rep["configured"] == TINY
    assert len(rep["box"]) == 4 and 0 < rep["box_score"] <= 1 and rep["mask_pixels"] > 0
    assert rep["thumb_px"] is None or len(rep["thumb_px"]) == 2
    assert len(rep["thumb_px_per_frame"]) == 8 and rep["video"]["first_frame"]["ok"]
    assert {"detect", "segment", "hand_image", "hand_video"} <= set(rep["timings_s"])
    assert (out / "overlay.png").stat().st_size > 0


def test_perceive_with_only_an_image_and_the_default_configuration(tiny, tmp_path: Path) -> None:
    out = tmp_path / "p"
    r = _cli("perceive", "--rgb", str(tiny["rgb"]), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "perception.json").read_text())
    assert set(rep) >= {"backends", "box", "box_score", "mask_pixels", "thumb_px", "thumb_px_per_frame", "timings_s"}
    assert rep["box"] is None and rep["mask_pixels"] is None and rep["thumb_px_per_frame"] is None
    assert rep["config"].endswith("hw/perception.toml")
    assert (out / "overlay.png").is_file()
    # Classical configuration with a box: the classical segmenter's mask.
    r = _cli("perceive", "--rgb", str(tiny["rgb"]), "--box", "100,70,210,160", "--perception", "classical",
             "--out", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "c" / "perception.json").read_text())
    assert rep["backends"]["detector"] == "given_box" and rep["backends"]["segmenter"] == "classical_rgbd"
    assert rep["mask_pixels"] > 1000 and rep["errors"].get("hand", "").startswith("no hand backend")


@pytest.mark.sim
def test_eval_perceived_says_which_inputs_and_backends(tiny, tmp_path: Path) -> None:
    j = tmp_path / "eval.json"
    r = _cli("eval", "--tasks", "bread_in_bowl", "--episodes", "1", "--methods", "dream2flow", "--inputs",
             "perceived", "--perception", str(tiny["config"]), "--json", str(j))
    assert r.returncode == 0, r.stderr
    assert "inputs: perceived: RGB video, I0, D0, camera, instruction and object prompt only" in r.stdout
    assert "detector=onnx:grounding_dino_tiny" in r.stdout and "video_depth=onnx:depth_anything_v2_small" in r.stdout
    data = json.loads(j.read_text())
    assert data["inputs"] == "perceived" and data["perception"]["config"] == str(tiny["config"])
    assert data["backends"]["detector"] == ["onnx:grounding_dino_tiny"]
    ep = data["episodes"][0]
    assert {"task", "seed", "shared_stages", "methods"} <= set(ep) and ep["inputs"] == "perceived"
    assert ep["backends"]["video_depth"] == "onnx:depth_anything_v2_small"
    assert {"method", "success", "stages"} <= set(ep["methods"][0]) and "table" in data
    # Without a detector / video-depth model, perceived inputs are refused up front, naming the role.
    r = _cli("eval", "--tasks", "bread_in_bowl", "--episodes", "1", "--inputs", "perceived", "--perception", "classical")
    assert r.returncode == 3 and "no detector backend" in r.stderr and len(r.stderr.strip().splitlines()) == 1
