"""Issue 14: the shipped sim-trained models through the one perception factory
(``hw/perception.sim.toml``), ``models check --shipped`` (acceptance 1), and acceptance 2:
``dream2flow flow --perception hw/perception.sim.toml --prompt P`` (no --box, no --video-depth) on
simulator renders from held-out seeds (each task's acceptance seed 60500 + i, seed 60000, and the two
bread_in_bowl seeds an earlier depth model missed), against the ground-truth flow: within 1.5 cm median
on all of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dream2flow.perception.factory import load_perception

REPO = Path(__file__).resolve().parents[1]
SIM_TOML = REPO / "hw" / "perception.sim.toml"
TASKS = ("bread_in_bowl", "open_drawer", "open_oven", "open_door")
# held-out seeds (export_tools/sim_data.py: 60000-60999 never train or validate; the bench uses 60000..)
ACCEPT_SEED = 60500


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_sim_configuration_selects_the_sim_models_and_loads_them() -> None:
    p = load_perception(SIM_TOML)
    b = p.backends()
    assert b["detector"] == "onnx:sim_detector" and b["segmenter"] == "onnx:sim_segmenter"
    assert b["video_depth"] == "onnx:sim_video_depth" and b["tracker"] == "classical_lk"
    from dream2flow.perception.sim_models import SimBoxSegmenter, SimDetector, SimVideoDepth

    assert isinstance(p.detector(), SimDetector) and isinstance(p.segmenter(0), SimBoxSegmenter)
    assert isinstance(p.video_depth(), SimVideoDepth)


def test_an_unnamed_model_choice_never_picks_a_sim_stand_in() -> None:
    for spec in ("models", REPO / "hw" / "perception.toml"):
        b = load_perception(spec).backends()
        assert not any(str(v).startswith("onnx:sim_") for v in b.values()), b


def test_models_check_verifies_the_shipped_sim_models() -> None:
    """Acceptance 1: sha256 and I/O signature against the manifest, loaded and run (warm-up)."""
    r = _cli("models", "check", "--shipped")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    for name in ("sim_video_depth", "sim_segmenter", "sim_detector"):
        assert f"ok   {name} (" in out, out


class _Renders:
    """``sim render`` folders of held-out seeds, made on first use: ``renders[task]`` is the task's
    acceptance scene (seed 60500 + the task's index), ``renders[task, seed]`` any held-out seed."""

    def __init__(self, root: Path) -> None:
        self.root, self.done = root, {}

    def __getitem__(self, key: str | tuple[str, int]) -> Path:
        task, seed = key if isinstance(key, tuple) else (key, ACCEPT_SEED + TASKS.index(key))
        if (task, seed) not in self.done:
            d = self.root / f"{task}_{seed}"
            r = _cli("sim", "render", "--task", task, "--seed", str(seed), "--out", str(d))
            assert r.returncode == 0, r.stderr[-2000:]
            self.done[task, seed] = d
        return self.done[task, seed]


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> _Renders:
    return _Renders(tmp_path_factory.mktemp("renders"))


def test_unknown_prompt_is_one_line_naming_the_vocabulary(renders, tmp_path: Path) -> None:
    d = renders["open_drawer"]
    r = _cli("flow", "--video", str(d / "video.mp4"), "--rgb", str(d / "i0.png"), "--depth", str(d / "d0.npy"),
             "--camera", str(d / "camera.toml"), "--prompt", "purple elephant", "--perception", str(SIM_TOML),
             "--out", str(tmp_path / "f"))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1 and "closed-vocabulary" in lines[0] and "'drawer'" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "f" / "flow.npz").exists()


def _perceived_flow(renders, task: str | tuple[str, int], out: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    """``dream2flow flow --perception hw/perception.sim.toml --prompt P`` (no --box, no --video-depth) on a
    held-out render -> (the CLI's result, the flow's error against the ground truth or None)."""
    from dream2flow.config import load_camera
    from dream2flow.sim.flow_truth import flow_error
    from dream2flow.types import ObjectFlow

    d = renders[task]
    r = _cli("flow", "--video", str(d / "video.mp4"), "--rgb", str(d / "i0.png"), "--depth", str(d / "d0.npy"),
             "--camera", str(d / "camera.toml"), "--prompt", _prompt(d), "--perception", str(SIM_TOML),
             "--out", str(out))
    if r.returncode != 0:
        return r, None
    flow = ObjectFlow.load(out / "flow.npz")
    b = flow.meta["backends"]
    assert b["detector"] == "onnx:sim_detector" and b["video_depth"] == "onnx:sim_video_depth", b
    gt = ObjectFlow.load(d / "gt_flow.npz")
    return r, flow_error(flow, np.load(d / "d0.npy"), load_camera(d / "camera.toml"), gt)


@pytest.mark.slow
@pytest.mark.sim
def test_perceived_flow_of_the_drawer_runs_on_the_sim_models(renders, tmp_path: Path) -> None:
    """What the shipped stand-ins do reach (held-out seed): the whole flow from the prompt alone, within 3 cm."""
    r, err = _perceived_flow(renders, "open_drawer", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert err["median_err_m"] < 0.03 and err["visible_fraction"] > 0.3, err


# Acceptance 2 per task on held-out seeds, measured with the shipped weights (sim_video_depth: 75 scenes per task and
# 250 of bread_in_bowl, 9000 steps) and the flow stage's defaults (per-frame static alignment, tracks anchored to D0);
# the same numbers come from bench/sim_models_bench.py (bench/results/sim_models.md). Median error, mm:
#   acceptance seeds 60500 + i: bread_in_bowl 7.7, open_drawer 4.8, open_oven 6.6, open_door 7.6
#   seed 60000:                 bread_in_bowl 4.8, open_drawer 5.4, open_oven 6.0, open_door 10.1
#   bread_in_bowl 60001 / 60003 (19.4 / 16.7 mm with the 75-scene model): 6.9 / 8.1
# Over seeds 60000-60009 every task is within 15 mm on every seed (max 11.3 mm, open_drawer 60004).


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("task", ["bread_in_bowl", "open_drawer", "open_oven", "open_door"])
def test_acceptance_2_perceived_flow_within_15mm(renders, task: str, tmp_path: Path) -> None:
    r, err = _perceived_flow(renders, task, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert err["median_err_m"] < 0.015, err


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("task, seed", [(t, 60000) for t in TASKS] + [("bread_in_bowl", 60001), ("bread_in_bowl", 60003)])
def test_acceptance_2_on_other_held_out_seeds(renders, task: str, seed: int, tmp_path: Path) -> None:
    """The same on seed 60000 (the bench's first held-out scene: not tuned to the acceptance seeds) and on
    the two bread scenes the 75-scene depth model missed (a lifted bread's height from single frames)."""
    r, err = _perceived_flow(renders, (task, seed), tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert err["median_err_m"] < 0.015, err


def _prompt(d: Path) -> str:
    from dream2flow.config import load_toml

    return str(load_toml(d / "task.toml")["object_prompt"])
