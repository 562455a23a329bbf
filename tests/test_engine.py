"""perception.engine: provider choice (TensorRT -> CUDA -> CPU) and the TensorRT EP's options, the
cache key, the manifest check (sha256, I/O names/dtypes/shapes) refusing mismatches with a message
naming the difference, missing models naming their export command, CPU fallback reporting, warm-up.
Small hand-built ONNX graphs keep these fast; the tiny exported models check the real path."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tiny_perception import need_export_extra as _need_torch  # noqa: E402

from dream2flow.errors import InvalidInput, ModelMismatch, NotReady  # noqa: E402
from dream2flow.perception import engine as eng  # noqa: E402
from dream2flow.perception.manifest import (Manifest, ModelSpec, TensorSpec, load_manifest, sha256_file,  # noqa: E402
                                            write_manifest)

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def _scale_model(path: Path, in_name: str = "x", out_name: str = "y", width: int = 4) -> Path:
    """y = 2x, x float32 [batch, width]."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])),
         helper.make_node("Mul", [in_name, "two"], [out_name])], "scale",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", width])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _spec(path: Path, **kw) -> ModelSpec:
    d = dict(name="scale", role="video_depth", file=path.name, opset=17,
             inputs=(TensorSpec("x", "float32", ("batch", 4)),), outputs=(TensorSpec("y", "float32", ("batch", 4)),),
             sha256=sha256_file(path), export_command="python export_tools/make_scale.py --out X",
             trt_profile={"min": {"x": [1, 4]}, "opt": {"x": [3, 4]}, "max": {"x": [8, 4]}})
    d.update(kw)
    return ModelSpec(**d)


def _engine(tmp_path: Path, spec: ModelSpec, **cfg) -> eng.InferenceEngine:
    write_manifest(tmp_path / "manifest.toml", [spec])
    return eng.InferenceEngine(tmp_path / "manifest.toml", config=eng.EngineConfig(**cfg))


def test_provider_order_and_trt_options(tmp_path: Path) -> None:
    spec = _spec(_scale_model(tmp_path / "m.onnx"))
    plan = eng.plan_providers(spec, eng.EngineConfig(trt_fp16=True), [CPU, CUDA, TRT], tmp_path / "cache")
    assert plan.providers == (TRT, CUDA, CPU) and not plan.notes
    trt = plan.options[0]
    assert trt["trt_engine_cache_enable"] is True and trt["trt_engine_cache_path"] == str(tmp_path / "cache")
    assert trt["trt_timing_cache_enable"] is True and trt["trt_timing_cache_path"] == str(tmp_path / "cache")
    assert trt["trt_fp16_enable"] is True
    assert trt["trt_profile_min_shapes"] == "x:1x4" and trt["trt_profile_opt_shapes"] == "x:3x4"
    assert trt["trt_profile_max_shapes"] == "x:8x4"
    assert plan.options[1]["device_id"] == 0
    fp32 = eng.plan_providers(spec, eng.EngineConfig(trt_fp16=False), [TRT, CPU], tmp_path)
    assert fp32.options[0]["trt_fp16_enable"] is False and fp32.providers == (TRT, CPU)


def test_provider_fallbacks_are_explained(tmp_path: Path) -> None:
    spec = _spec(_scale_model(tmp_path / "m.onnx"))
    cpu_only = eng.plan_providers(spec, eng.EngineConfig(), [CPU])
    assert cpu_only.providers == (CPU,)
    assert TRT in cpu_only.notes[0] and CUDA in cpu_only.notes[0] and "not available" in cpu_only.notes[0]
    cuda_first = eng.plan_providers(spec, eng.EngineConfig(providers=("cuda",)), [TRT, CUDA, CPU])
    assert cuda_first.providers == (CUDA, CPU)
    assert any("last-resort" in n for n in cuda_first.notes)
    with pytest.raises(InvalidInput, match="unknown execution provider"):
        eng.EngineConfig(providers=("tpu",))


def test_config_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("D2F_ORT_PROVIDERS", "CUDA, cpu")
    monkeypatch.setenv("D2F_TRT_CACHE", str(tmp_path))
    monkeypatch.setenv("D2F_TRT_FP16", "0")
    c = eng.EngineConfig.from_env()
    assert c.providers == ("cuda", "cpu") and c.trt_cache_dir == tmp_path and c.trt_fp16 is False


def test_cache_key_names_gpu_trt_and_ort(monkeypatch: pytest.MonkeyPatch) -> None:
    k = eng.trt_cache_key("sm87", "10.3.0", "1.20.0")
    assert k == "sm87-trt10.3.0-ort1.20.0"
    assert len({k, eng.trt_cache_key("sm86", "10.3.0", "1.20.0"), eng.trt_cache_key("sm87", "8.6.2", "1.20.0"),
                eng.trt_cache_key("sm87", "10.3.0", "1.19.0")}) == 4
    monkeypatch.setenv("D2F_GPU_ARCH", "sm90")
    monkeypatch.setenv("D2F_TRT_VERSION", "10.7.0")
    import onnxruntime

    assert eng.trt_cache_key() == f"sm90-trt10.7.0-ort{onnxruntime.__version__}"


def test_loads_on_cpu_reports_fallback_and_warms_up(tmp_path: Path) -> None:
    e = _engine(tmp_path, _spec(_scale_model(tmp_path / "m.onnx")))
    s = e.session("scale")
    assert s.providers == [CPU] and s.provider == CPU
    assert s.on_cpu_fallback and s.preferred == TRT
    assert "CPU FALLBACK" in s.report_line() and "not available" in s.report_line()
    assert s.warmup_s is not None
    out = s.run({"x": np.arange(8, dtype=np.float32).reshape(2, 4)})
    np.testing.assert_array_equal(out["y"], 2 * np.arange(8, dtype=np.float32).reshape(2, 4))
    assert s.dummy_feeds()["x"].shape == (3, 4)  # warm-up at the opt profile
    rep = e.report()[0]
    assert rep["providers"] == [CPU] and rep["cpu_fallback"] is True
    lines = eng.startup_report(e)
    assert any("no GPU execution provider" in line for line in lines)
    (tmp_path / "b").mkdir()
    cpu_asked = _engine(tmp_path / "b", _spec(_scale_model(tmp_path / "b" / "m.onnx")), providers=("cpu",))
    assert not cpu_asked.session("scale").on_cpu_fallback


def test_sha256_mismatch_is_refused_naming_both_hashes(tmp_path: Path) -> None:
    path = _scale_model(tmp_path / "m.onnx")
    spec = _spec(path)
    _scale_model(path, width=5)  # the file changed after registration
    e = _engine(tmp_path, spec)
    with pytest.raises(ModelMismatch) as ei:
        e.session("scale")
    msg = ei.value.message
    assert "sha256" in msg and spec.sha256 in msg and sha256_file(path) in msg and str(path) in msg


@pytest.mark.parametrize("change, phrase", [
    (dict(inputs=(TensorSpec("pixel_values", "float32", ("batch", 4)),)), "input 'pixel_values' is missing"),
    (dict(inputs=(TensorSpec("x", "int64", ("batch", 4)),)), "input 'x' dtype float32 != manifest int64"),
    (dict(inputs=(TensorSpec("x", "float32", ("batch", 5)),)), "input 'x' shape [batch,4] != manifest [batch,5]"),
    (dict(outputs=(TensorSpec("y", "float32", ("batch", 4, 1)),)), "output 'y' shape [batch,4] != manifest [batch,4,1]"),
    (dict(outputs=(TensorSpec("y", "float32", ("batch", 4)), TensorSpec("z", "float32", (1,)))),
     "output 'z' is missing"),
])
def test_signature_mismatch_is_refused_naming_the_difference(tmp_path: Path, change: dict, phrase: str) -> None:
    path = _scale_model(tmp_path / "m.onnx")
    e = _engine(tmp_path, dataclasses.replace(_spec(path), **change))
    with pytest.raises(ModelMismatch) as ei:
        e.session("scale")
    assert phrase in ei.value.message and "does not match the manifest" in ei.value.message


def test_extra_input_in_file_is_named(tmp_path: Path) -> None:
    spec = _spec(_scale_model(tmp_path / "m.onnx"))
    got_in = spec.inputs + (TensorSpec("extra", "float32", (1,)),)
    diffs = eng.signature_differences(spec, got_in, spec.outputs)
    assert diffs == ["the file has an extra input 'extra' not in the manifest"]


def test_missing_model_names_its_export_command(tmp_path: Path) -> None:
    spec = _spec(_scale_model(tmp_path / "m.onnx"))
    (tmp_path / "m.onnx").unlink()
    e = _engine(tmp_path, spec)
    with pytest.raises(NotReady) as ei:
        e.session("scale")
    assert not isinstance(ei.value, ModelMismatch)
    assert "missing" in ei.value.message and "python export_tools/make_scale.py --out X" in ei.value.message


def test_unhashed_entry_is_refused_unless_allowed(tmp_path: Path) -> None:
    spec = dataclasses.replace(_spec(_scale_model(tmp_path / "m.onnx")), sha256=None)
    with pytest.raises(ModelMismatch, match="no sha256"):
        _engine(tmp_path, spec).session("scale")
    assert _engine(tmp_path, spec, require_sha256=False).session("scale").provider == CPU


def test_unloadable_file_with_matching_hash_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not an onnx model at all")
    spec = _spec(_scale_model(tmp_path / "ok.onnx"), file="m.onnx", sha256=sha256_file(bad))
    with pytest.raises(ModelMismatch, match="could not load"):
        _engine(tmp_path, spec).session("scale")


def test_unknown_model_and_role(tmp_path: Path) -> None:
    e = _engine(tmp_path, _spec(_scale_model(tmp_path / "m.onnx")))
    with pytest.raises(InvalidInput, match="not in the manifest"):
        e.session("nope")
    with pytest.raises(NotReady, match="no model with role 'detector'"):
        e.session_for_role("detector")
    with pytest.raises(InvalidInput, match="has role 'video_depth'"):
        e.session_for_role("detector", "scale")


def test_manifest_validation(tmp_path: Path) -> None:
    p = tmp_path / "manifest.toml"
    p.write_text('schema = 1\n[[model]]\nname = "a"\nrole = "juggler"\nfile = "a.onnx"\nopset = 17\ninputs = []\noutputs = []\n')
    with pytest.raises(InvalidInput, match="role 'juggler'"):
        load_manifest(p)
    p.write_text('schema = 1\n[[model]]\nname = "a"\nrole = "detector"\nfile = "a.onnx"\nopset = 17\nsha256 = "abc"\n'
                 'inputs = []\noutputs = []\n')
    with pytest.raises(InvalidInput, match="sha256"):
        load_manifest(p)
    p.write_text("schema = 2\n")
    with pytest.raises(InvalidInput, match="schema"):
        load_manifest(p)
    with pytest.raises(InvalidInput, match="not found"):
        load_manifest(tmp_path / "none.toml")


def test_tiny_exported_models_load_through_the_engine(tmp_path: Path) -> None:
    _need_torch()
    from export_tools.tiny import cached_tiny_set

    src = cached_tiny_set()
    e = eng.InferenceEngine(src, config=eng.EngineConfig(providers=("tensorrt", "cuda", "cpu")))
    lines = eng.startup_report(e)
    assert len(e.report()) == len(e.manifest.models)
    assert all(r["provider"] == CPU and r["warmup_s"] is not None for r in e.report())
    # a byte flipped in a copied tiny model is caught before any session is made
    work = tmp_path / "models"
    shutil.copytree(src.parent, work)
    f = work / e.manifest.get("depth_anything_v2_small").file
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(ModelMismatch, match="sha256"):
        eng.InferenceEngine(work / "manifest.toml").session("depth_anything_v2_small")
    assert lines


@pytest.mark.gpu
def test_gpu_gets_tensorrt_and_writes_engine_cache(tmp_path: Path) -> None:
    """On a GPU machine with onnxruntime-gpu + TensorRT (D2F_GPU=1): the provider really obtained is
    TensorRT and the engine/timing caches land in the keyed folder."""
    _need_torch()
    from export_tools.tiny import cached_tiny_set

    e = eng.InferenceEngine(cached_tiny_set(), config=eng.EngineConfig(trt_cache_dir=tmp_path))
    s = e.session("depth_anything_v2_small")
    assert s.provider == TRT, s.report_line()
    assert any(e.trt_cache_dir.iterdir())
    assert e.trt_cache_dir.parent == tmp_path and "-trt" in e.trt_cache_dir.name


def test_manifest_dataclass_lookup() -> None:
    m = Manifest(models=())
    with pytest.raises(InvalidInput, match="known: none"):
        m.get("x")
