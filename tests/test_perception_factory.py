"""Issue 13, item 1: one perception configuration (``--perception classical|models|FILE``) and one
factory. What each role resolves to (model, classical fallback, none) is decided without loading
anything and recorded; a role without a backend is NotReady naming the role and the fix; the
configuration file is strict. Model loading itself is tested on the tiny exports in
tests/test_perception_models.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from dream2flow.errors import InvalidInput, NotReady
from dream2flow.perception.config import ROLES, builtin_config, config_from_dict, load_perception_config
from dream2flow.perception.factory import load_perception

REPO = Path(__file__).resolve().parents[1]


def _manifest(folder: Path, entries: list[tuple[str, str, bool]]) -> Path:
    """A manifest with entries (name, role, file exists?). Files are placeholders: planning only
    checks that they exist (loading them would fail the sha256 check, which these tests never do)."""
    from dream2flow.perception.manifest import ModelSpec, TensorSpec, write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for name, role, exists in entries:
        specs.append(ModelSpec(name=name, role=role, file=f"{name}.onnx", opset=17,
                               inputs=(TensorSpec("x", "float32", (1,)),), outputs=(TensorSpec("y", "float32", (1,)),),
                               export_command=f"python export_tools/export_{name}.py"))
        if exists:
            (folder / f"{name}.onnx").write_bytes(b"placeholder")
    return write_manifest(folder / "manifest.toml", specs)


def _config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "perception.toml"
    p.write_text(text)
    return p


def test_builtin_specs_and_the_default_file() -> None:
    classical = load_perception("classical")
    assert classical.backends()["detector"] is None and classical.backends()["video_depth"] is None
    assert classical.backends()["hand"] is None and classical.backends()["tracker"] == "classical_lk"
    assert classical.backends()["segmenter"] == "classical_rgbd"
    models = builtin_config("models")
    assert all(models.role(r).use == "model" and models.role(r).fallback for r in ROLES)
    # The shipped hw/perception.toml: every role asks for its model (fallback where a classical one exists).
    shipped = load_perception_config(REPO / "hw" / "perception.toml")
    assert {r: shipped.role(r).use for r in ROLES} == {r: "model" for r in ROLES}
    assert shipped.models_dir is None  # the default models folder: $D2F_MODELS_DIR, else exported_models/
    assert load_perception_config(None).source.endswith("perception.toml")  # the default is that file


def test_missing_models_fall_back_only_where_a_classical_backend_exists(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _manifest(models, [("det", "detector", False), ("enc", "segmenter_encoder", False),
                       ("dec", "segmenter_decoder", False), ("trk", "point_tracker", True),
                       ("depth", "video_depth", False)])
    p = load_perception(_config(tmp_path, f'schema = 1\nmodels_dir = "{models}"\n'))
    plans = {r: p.plan(r) for r in ROLES}
    assert plans["tracker"].kind == "model" and plans["tracker"].name == "onnx:trk"  # its file is there
    assert plans["segmenter"].kind == "classical" and "fallback" in plans["segmenter"].note
    assert "enc" in plans["segmenter"].note and "export_enc" in plans["segmenter"].note  # says how to make it
    for role in ("detector", "video_depth", "hand"):
        assert plans[role].kind == "none" and plans[role].name is None
    desc = p.describe()
    assert desc["backends"]["segmenter"] == "classical_rgbd"
    assert set(desc["notes"]) == {"detector", "segmenter", "video_depth", "hand"}
    with pytest.raises(NotReady, match=r"no video-depth backend .*depth.*--video-depth"):
        p.require("video_depth")
    with pytest.raises(NotReady, match=r"no detector backend .*--box"):
        p.ensure("detector")


def test_fallback_false_and_explicit_choices(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _manifest(models, [("trk_a", "point_tracker", False), ("trk_b", "point_tracker", True),
                       ("depth", "video_depth", True)])
    text = (f'schema = 1\nmodels_dir = "{models}"\n[tracker]\nuse = "model:trk_a"\nfallback = false\n'
            '[segmenter]\nuse = "classical"\n[video_depth]\nuse = "none"\n')
    p = load_perception(_config(tmp_path, text))
    assert p.plan("tracker").kind == "none" and "trk_a" in p.plan("tracker").note
    assert p.plan("segmenter").kind == "classical" and p.plan("segmenter").note == "configured as classical"
    assert p.plan("video_depth").kind == "none"  # "none" wins over an available model
    p2 = load_perception(_config(tmp_path, f'schema = 1\nmodels_dir = "{models}"\n[tracker]\nuse = "model:trk_b"\n'))
    assert p2.plan("tracker").name == "onnx:trk_b"
    with pytest.raises(InvalidInput, match="has role 'video_depth'"):
        load_perception(_config(tmp_path, f'schema = 1\nmodels_dir = "{models}"\n[tracker]\nuse = "model:depth"\n')
                        ).plan("tracker")
    with pytest.raises(InvalidInput, match="not in the manifest"):
        load_perception(_config(tmp_path, f'schema = 1\nmodels_dir = "{models}"\n[tracker]\nuse = "model:nope"\n')
                        ).plan("tracker")


def test_no_manifest_means_no_models(tmp_path: Path) -> None:
    p = load_perception(_config(tmp_path, f'schema = 1\nmodels_dir = "{tmp_path / "empty"}"\n'))
    assert p.plan("detector").kind == "none" and "no model manifest" in p.plan("detector").note
    assert p.plan("tracker").kind == "classical"


@pytest.mark.parametrize("text, pattern", [
    ("schema = 2\n", "schema"),
    ("schema = 1\ncolour = 1\n", "unknown key"),
    ("schema = 1\n[detector]\nuse = \"classical\"\n", "no classical detector"),
    ("schema = 1\n[hand]\nuse = \"mediapipe\"\n", "'use' must be"),
    ("schema = 1\n[tracker]\nfallback = \"yes\"\n", "fallback"),
    ("schema = 1\n[engine]\nproviders = \"cuda\"\n", "providers"),
    ("schema = 1\n[engine]\nturbo = true\n", "unknown key"),
    ("schema = 1\ndetector = 3\n", "must be a table"),
])
def test_bad_files_are_refused_naming_the_key(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(InvalidInput, match=pattern):
        load_perception(_config(tmp_path, text))


def test_unknown_spec_and_options_that_do_not_apply(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="neither classical, models nor an existing TOML file"):
        load_perception("gdino")
    p = load_perception(_config(tmp_path, 'schema = 1\n[tracker]\nuse = "classical"\nbox_threshold = 0.3\n'))
    with pytest.raises(InvalidInput, match=r"box_threshold do not apply to ClassicalLKTracker"):
        p.tracker()
    p = load_perception(_config(tmp_path, 'schema = 1\n[tracker]\nuse = "classical"\nmax_level = 2\n'))
    assert p.tracker().max_level == 2


def test_classical_segmenter_is_seeded_per_call() -> None:
    p = load_perception("classical")
    assert p.segmenter(3).seed == 3 and p.segmenter(4).seed == 4 and p.segmenter(3) is p.segmenter(3)


def test_config_dict_engine_options() -> None:
    cfg = config_from_dict({"schema": 1, "engine": {"providers": ["CUDA", "cpu"], "fp16": False, "cache_dir": "/x",
                                                    "verify_sha256": True, "intra_op_threads": 0}})
    assert cfg.engine == {"providers": ("cuda", "cpu"), "trt_fp16": False, "trt_cache_dir": Path("/x"),
                          "verify_sha256": True, "intra_op_threads": None}
    from dream2flow.perception.engine import EngineConfig

    EngineConfig(**cfg.engine)  # every key is an EngineConfig field
