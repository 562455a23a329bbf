"""The sim-trained perception models (issue 14): the training recipe in its ``--quick`` form
(render, train, export, parity, manifest entry) and the runtime wrappers on its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mujoco")

from dream2flow.errors import InvalidInput  # noqa: E402
from dream2flow.perception.engine import InferenceEngine  # noqa: E402
from dream2flow.perception.manifest import load_manifest  # noqa: E402
from dream2flow.perception.sim_models import (SimBoxSegmenter, SimDetector, SimVideoDepth,  # noqa: E402
                                              normalise_prompt)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"sim_video_depth": "train_sim_depth.py", "sim_segmenter": "train_sim_segmenter.py",
           "sim_detector": "train_sim_detector.py"}

pytestmark = [pytest.mark.sim, pytest.mark.slow]


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    """The three ``--quick`` trainings into one folder (one shared render cache)."""
    out = tmp_path_factory.mktemp("sim_models")
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    for script in SCRIPTS.values():
        r = subprocess.run([sys.executable, str(REPO / "export_tools" / script), "--quick", "--out", str(out),
                            "--cache", str(out / "cache")], capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def engine(quick: Path) -> InferenceEngine:
    return InferenceEngine(quick / "manifest.toml", models_dir=quick)


@pytest.fixture(scope="module")
def scene():
    from dream2flow import sim

    with sim.make_env("open_drawer", 7) as env:  # a test seed, never a training seed (100000+)
        rgbd = env.render_rgbd()
        box = env.object_box()
        gen = env.generate_video(num_frames=8, seed=7, num_points=16)
    return rgbd, box, gen


def test_quick_recipe_ships_every_model_with_its_record(quick: Path) -> None:
    m = load_manifest(quick / "manifest.toml")
    assert sorted(m.names()) == sorted(SCRIPTS)
    for name, script in SCRIPTS.items():
        spec = m.get(name)
        assert (quick / spec.file).is_file() and spec.sha256
        assert (quick / spec.file).stat().st_size < 8 * 2 ** 20  # a few MB at most
        assert "SIM-TRAINED STAND-IN" in spec.notes
        assert script in spec.export_command and "--quick" in spec.export_command
        tr = spec.training
        assert tr["quick"] is True and tr["steps"] <= 30 and "val_metrics" in tr
        assert min(lo for lo, _ in tr["train_seeds"].values()) >= 100000  # disjoint from test/eval seeds
        assert spec.parity["max_abs"] <= spec.parity["bound"]
        assert json.loads((quick / f"{name}.spec.json").read_text())["sha256"] == spec.sha256


def test_training_scenes_hold_a_generated_video_frame_at_rest(quick: Path) -> None:
    """Every scene's robot-hidden (generated-video) frames start at rest (s = 0) and then move along the
    path: a depth model that saw the resting object only with the robot in view misplaced it in a video."""
    from export_tools import sim_data

    paths = sorted((quick / "cache" / "train").glob("*.npz"))
    assert len(paths) == len(sim_data.TASKS)
    for p in paths:
        sf = sim_data.load_scene(p)
        path_s = sf.progress[sf.kind == sim_data.FRAME_KINDS.index("path")]
        assert len(path_s) == sim_data.SPLIT_FRAMES["train"][0] and path_s[0] == 0.0 and (path_s[1:] > 0).all(), p


def test_models_check_verifies_the_quick_models(quick: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "dream2flow.cli", "models", "check", "--models-dir", str(quick)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "3 models ok" in r.stderr + r.stdout


def test_wrappers_run_on_a_scene(engine: InferenceEngine, scene) -> None:
    rgbd, box, gen = scene
    depth = SimVideoDepth(engine)(gen.video)
    assert depth.shape == gen.video.frames.shape[:3] and depth.dtype == np.float32 and np.isfinite(depth).all()
    seg = SimBoxSegmenter(engine)
    logits, win = seg.logits(rgbd.rgb, box, rgbd.depth_m)
    assert logits.shape == (win[3] - win[1], win[2] - win[0]) and np.isfinite(logits).all()
    det = SimDetector(engine)
    out = det(rgbd.rgb, "the drawer")
    assert out.boxes.shape[1:] == (4,) and len(out.boxes) == len(out.scores)
    assert (np.diff(out.scores) <= 0).all()


def test_detector_is_closed_vocabulary(engine: InferenceEngine, scene) -> None:
    det = SimDetector(engine)
    assert det.class_of("The Bread.") == "bread" and det.class_of("oven door") == "hinged_door"
    assert normalise_prompt("  a  Cabinet drawer ") == "cabinet drawer"
    with pytest.raises(InvalidInput, match="closed-vocabulary.*'bread'"):
        det(scene[0].rgb, "a purple elephant")


def test_wrappers_refuse_a_model_of_another_kind(engine: InferenceEngine) -> None:
    with pytest.raises(InvalidInput):
        SimDetector(engine, "sim_video_depth")
