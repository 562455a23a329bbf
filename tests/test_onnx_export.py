"""(Named test_onnx_* so it runs after tests/test_imports.py: it imports torch in-process.)
The export path on tiny randomly initialised models of the real architectures (Grounding DINO,
SAM 2, Depth Anything V2, ViTPose; transformers' implementations), through the same scripts as the
official checkpoints: parity vs PyTorch eager within the stated bounds, manifest entries that
match the files, and a parity check that does fail on a damaged export. Official weights are
never downloaded (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import importlib.util  # noqa: E402

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
    pytest.skip("torch/transformers not installed (export extra)", allow_module_level=True)

from export_tools import common, export_depth_anything, export_grounding_dino  # noqa: E402
from export_tools.tiny import cached_tiny_set  # noqa: E402
from dream2flow.perception.manifest import load_manifest, manifest_to_toml, sha256_file  # noqa: E402

EXPECTED_ROLES = {"detector", "segmenter_encoder", "segmenter_decoder", "video_depth", "hand_keypoints", "point_tracker"}


@pytest.fixture(scope="module")
def tiny():
    return load_manifest(cached_tiny_set())


def test_every_installable_architecture_exports_with_parity(tiny) -> None:
    assert {m.role for m in tiny.models} == EXPECTED_ROLES
    for m in tiny.models:
        path = tiny.path.parent / m.file
        assert path.is_file(), m.name
        assert m.sha256 == sha256_file(path), m.name
        assert m.parity["samples"] >= 1
        assert 0 <= m.parity["max_abs"] <= m.parity["bound"], (m.name, m.parity)
        assert m.parity["mean_abs"] <= m.parity["max_abs"]
        if m.fixture:
            assert m.name.endswith("_io_fixture") and "NOT CoTracker3" in m.source_checkpoint
            continue
        assert m.tiny_random and "NOT the official weights" in m.source_checkpoint
        assert "--tiny-random" in m.export_command
        # the outputs were not all ~0: the bound is relative to a real signal
        assert m.parity["ref_max_abs"] > 0.1, (m.name, m.parity)


def test_manifest_signature_is_the_files_own(tiny) -> None:
    import onnx

    for m in tiny.models:
        path = tiny.path.parent / m.file
        ins, outs = common.file_signature(path)
        assert tuple(ins) == m.inputs and tuple(outs) == m.outputs, m.name
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [m.opset]
        # dynamic axes only where declared
        dyn = {d for t in m.inputs for d in t.shape if isinstance(d, str)}
        assert dyn <= {"frames", "crops", "tokens", "points"}, (m.name, dyn)


def test_manifest_round_trips_exactly(tiny) -> None:
    text = manifest_to_toml(tiny.models, tiny.header)
    p = Path(cached_tiny_set()).parent / "roundtrip.toml"
    p.write_text(text)
    assert load_manifest(p).models == tiny.models


def test_parity_check_fails_on_a_damaged_export(tmp_path: Path) -> None:
    import onnx
    import torch
    from onnx import numpy_helper

    spec = export_depth_anything.main(["--tiny-random", "--out", str(tmp_path), "--seed", "3"])
    path = tmp_path / spec.file
    model = onnx.load(str(path))
    # nudge the largest weight tensor a little (what a bad op conversion or a truncated copy does)
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init).copy()
    w.flat[: max(1, w.size // 3)] *= 1.5
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    bad = tmp_path / "damaged.onnx"
    onnx.save(model, str(bad))
    net = export_depth_anything.build_model(SimpleNamespace(tiny_random=True, seed=3, checkpoint=None))
    x = torch.randn(2, 3, 70, 98, generator=torch.Generator().manual_seed(7))
    ref = common.torch_outputs(net, (x,), ["predicted_depth"])
    # the intact export passes on this new input, the damaged one fails
    common.check_parity("ok", [({"pixel_values": x.numpy()}, ref)], atol=1e-4, rtol=1e-3, onnx_path=path, printer=lambda s: None)
    with pytest.raises(common.ParityError, match="max_abs"):
        common.check_parity("damaged", [({"pixel_values": x.numpy()}, ref)], atol=1e-4, rtol=1e-3, onnx_path=bad,
                            printer=lambda s: None)


def test_compare_requires_same_nonfinite_pattern() -> None:
    ref = {"logits": np.array([1.0, -np.inf, 2.0], np.float32)}
    with pytest.raises(common.ParityError, match="non-finite"):
        common.compare(ref, {"logits": np.array([1.0, 0.0, 2.0], np.float32)}, atol=1e-3, rtol=0)
    with pytest.raises(common.ParityError, match="shape"):
        common.compare(ref, {"logits": np.zeros(2, np.float32)}, atol=1e-3, rtol=0)
    (p,) = common.compare(ref, {"logits": np.array([1.001, -np.inf, 2.0], np.float32)}, atol=1e-2, rtol=0)
    assert p.ok and p.max_abs == pytest.approx(0.001, rel=1e-3)


def test_grounding_dino_mask_rewrite_equals_transformers() -> None:
    rng = np.random.default_rng(0)
    seqs = [[101, 2005, 1012, 102], [101, 1012, 1012, 102], [101, 2005, 2006, 2007, 102], [101, 102]]
    for _ in range(30):
        n = int(rng.integers(3, 40))
        ids = rng.choice([2005, 2006, 2007, 1012, 1029], size=n).tolist()
        seqs.append([101] + ids + [102])
    export_grounding_dino.self_check_masks(seqs)


def test_export_scripts_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    from export_tools import export_cotracker3

    with pytest.raises(SystemExit):
        export_depth_anything.main(["--out", str(tmp_path)])  # neither --checkpoint nor --tiny-random
    with pytest.raises(SystemExit, match="not installable"):
        export_cotracker3.main(["--tiny-random", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="not installed|not found"):
        export_cotracker3.main(["--checkpoint", str(tmp_path / "scaled_offline.pth"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="multiples of 14"):
        export_depth_anything.main(["--tiny-random", "--out", str(tmp_path), "--height", "71"])


def test_committed_manifest_is_honest_and_current() -> None:
    from export_tools import real_manifest

    committed = load_manifest(REPO / "exported_models" / "manifest.toml")
    assert committed.models == tuple(real_manifest.specs())  # regenerated = committed (not stale)
    for m in committed.models:
        assert not m.tiny_random and not m.fixture
        if m.role == "policy":  # RL policies trained here (issue 20): the file is committed and hashed
            assert m.sha256 == sha256_file(REPO / "exported_models" / m.file) and m.status == "exported"
            assert m.export_command.startswith("dream2flow rl train") and m.parity["max_abs"] < 1e-4
            continue
        if m.name.startswith("sim_"):  # sim-trained stand-ins (issue 14): trained here, committed, hashed
            assert m.sha256 == sha256_file(REPO / "exported_models" / m.file) and m.status == "exported"
            assert m.export_command.startswith("python export_tools/train_sim_") and "--quick" not in m.export_command
            assert "SIM-TRAINED STAND-IN" in m.notes and m.parity["max_abs"] <= m.parity["bound"]
            assert m.training["quick"] is False and m.training["val_metrics"] and m.training["wall_time_s"] > 0
            continue
        script = m.export_command.split()[1]
        assert (REPO / script).is_file(), script
        assert m.license and m.source_checkpoint
        if m.status == "exported":  # MediaPipe's hands: converted here, the file is committed
            assert sha256_file(REPO / "exported_models" / m.file) == m.sha256, m.name
            assert "sha256" in m.source_checkpoint and m.parity["max_abs"] <= m.parity["bound"]
        else:
            assert m.sha256 is None and m.status == "not exported here"
    assert {m.name for m in committed.models if m.status == "exported" and m.role != "policy"} == {
        "mediapipe_palm_detection_full", "mediapipe_hand_landmark_full", "sim_video_depth", "sim_segmenter",
        "sim_detector"}
    assert {m.name for m in committed.models if m.role == "policy"} == {"door_panda_flow_reward"}


def test_committed_io_names_match_what_the_scripts_export(tiny) -> None:
    committed = load_manifest(REPO / "exported_models" / "manifest.toml")
    for real in committed.models:
        if real.status == "exported":  # real files (MediaPipe), checked against themselves by the engine
            continue
        twins = [m for m in tiny.models if m.role == real.role]
        assert twins, real.role
        t = twins[0]
        assert [x.name for x in real.inputs] == [x.name for x in t.inputs], real.name
        assert [x.name for x in real.outputs] == [x.name for x in t.outputs], real.name
        assert [len(x.shape) for x in real.inputs] == [len(x.shape) for x in t.inputs], real.name
        assert [x.dtype for x in real.inputs + real.outputs] == [x.dtype for x in t.inputs + t.outputs], real.name
        assert set(real.preprocess) <= set(t.preprocess) | {k for k in t.preprocess if k.startswith("sha256_")}, real.name
