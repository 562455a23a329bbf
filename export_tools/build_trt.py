"""Build TensorRT engines for the manifest's models, on the target device (engines are specific to
the GPU, TensorRT and ONNX Runtime versions: never copy them between machines).

Two ways, same shape profiles (the manifest's ``trt_profile`` min/opt/max) and precision flag:

- ``--via ort`` (default; what the runtime uses): load every model through the runtime's engine
  with the TensorRT execution provider, engine + timing caches on, and warm it up; ONNX Runtime
  builds the engines into ``<cache>/<gpu arch>-trt<ver>-ort<ver>/``, where the runtime's sessions
  find them next time. ``--first-start`` makes this idempotent for a container entrypoint: a
  ``READY.json`` stamp in that folder records the manifest's sha256s, and a later start with the
  same models and versions skips the build (seconds instead of minutes).
- ``--via tensorrt``: standalone ``.engine`` files with the TensorRT Python API (``tensorrt``
  module from JetPack / the TensorRT wheel), for trtexec-style benchmarking or other runtimes.

No torch import here (it runs inside the Jetson runtime image).

    python export_tools/build_trt.py --manifest exported_models/manifest.toml --cache /data/trt_cache --fp16
    python export_tools/build_trt.py --first-start --manifest /models/manifest.toml --cache /data/trt_cache
    python export_tools/build_trt.py --via tensorrt --manifest exported_models/manifest.toml --cache /data/engines --fp32
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "runtime") not in sys.path:
    sys.path.insert(0, str(REPO / "runtime"))


def stamp_for(manifest: Any, providers: Sequence[str], fp16: bool) -> dict[str, Any]:
    return {"models": {m.name: m.sha256 for m in manifest.models}, "providers": list(providers), "fp16": bool(fp16)}


def build_via_ort(manifest_path: Path, cache: Path | None, *, fp16: bool, providers: Sequence[str],
                  first_start: bool, models: Sequence[str] | None, log: Any = print) -> dict[str, Any]:
    """Load + warm up each model through the runtime engine (TensorRT EP builds/caches engines).
    Returns {"skipped": bool, "cache_dir": str, "report": [...]}; raises the runtime's NotReady /
    ModelMismatch for a missing or mismatched model."""
    from dream2flow.perception.engine import EngineConfig, InferenceEngine

    cfg = EngineConfig(providers=tuple(providers), trt_fp16=fp16, trt_cache_dir=cache, warmup=True, warmup_runs=1)
    engine = InferenceEngine(manifest_path, config=cfg)
    cache_dir = engine.trt_cache_dir
    stamp_path = cache_dir / "READY.json"
    want = stamp_for(engine.manifest, providers, fp16)
    if first_start and stamp_path.is_file():
        try:
            have = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            have = None
        if have and {k: have.get(k) for k in want} == want:
            log(f"engines already built for these models in {cache_dir}: skipping")
            return {"skipped": True, "cache_dir": str(cache_dir), "report": []}
    t0 = time.perf_counter()
    names = list(models) if models else engine.manifest.names()
    for n in names:
        log(f"building/loading {n} ...")
        engine.session(n)
    for line in engine.report_lines():
        log(line)
    cache_dir.mkdir(parents=True, exist_ok=True)
    record = dict(want, built_s=round(time.perf_counter() - t0, 2), report=engine.report(),
                  built_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    if not models:  # only a full build may mark the cache ready
        tmp = stamp_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(stamp_path)
    return {"skipped": False, "cache_dir": str(cache_dir), "report": engine.report()}


def build_via_tensorrt(manifest_path: Path, out: Path, *, fp16: bool, workspace_gb: float,
                       models: Sequence[str] | None, log: Any = print) -> list[Path]:
    """Standalone engines with the TensorRT Python API (explicit batch, one optimisation profile from
    the manifest, a shared timing cache file)."""
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit("the tensorrt Python module is not installed (JetPack ships it; on x86: pip install tensorrt)") from None
    from dream2flow.perception.engine import check_file, EngineConfig, trt_cache_key
    from dream2flow.perception.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    out = Path(out) / trt_cache_key()
    out.mkdir(parents=True, exist_ok=True)
    logger = trt.Logger(trt.Logger.WARNING)
    timing_path = out / "timing.cache"
    built = []
    for spec in manifest.models:
        if models and spec.name not in models:
            continue
        path = manifest_path.parent / spec.file
        check_file(spec, path, EngineConfig())
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
                                         if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") else 0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(path)):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise SystemExit(f"TensorRT could not parse {path}: {errs}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        cache = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        prof = spec.trt_profile
        if prof:
            profile = builder.create_optimization_profile()
            for name in prof.get("opt", {}):
                profile.set_shape(name, prof["min"][name], prof["opt"][name], prof["max"][name])
            config.add_optimization_profile(profile)
        t0 = time.perf_counter()
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise SystemExit(f"TensorRT failed to build {spec.name}")
        dest = out / f"{spec.name}.{'fp16' if fp16 else 'fp32'}.engine"
        dest.write_bytes(bytes(blob))
        timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        log(f"{spec.name}: {dest} ({time.perf_counter() - t0:.1f} s)")
        built.append(dest)
    return built


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default=str(REPO / "exported_models" / "manifest.toml"))
    p.add_argument("--cache", help="engine cache root (a persistent volume); default MODELS_DIR/trt_cache")
    p.add_argument("--via", choices=("ort", "tensorrt"), default="ort")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp16", dest="fp16", action="store_true", default=True)
    prec.add_argument("--fp32", dest="fp16", action="store_false")
    p.add_argument("--providers", default="tensorrt,cuda,cpu", help="--via ort: provider preference order")
    p.add_argument("--first-start", action="store_true", help="skip when READY.json matches (container entrypoint)")
    p.add_argument("--model", action="append", help="only this model (repeatable; never writes READY.json)")
    p.add_argument("--workspace-gb", type=float, default=2.0)
    a = p.parse_args(argv)
    from dream2flow.errors import Dream2FlowError

    try:
        if a.via == "ort":
            build_via_ort(Path(a.manifest), Path(a.cache) if a.cache else None, fp16=a.fp16,
                          providers=[s.strip() for s in a.providers.split(",") if s.strip()],
                          first_start=a.first_start, models=a.model)
        else:
            build_via_tensorrt(Path(a.manifest), Path(a.cache or Path(a.manifest).parent / "trt_engines"),
                               fp16=a.fp16, workspace_gb=a.workspace_gb, models=a.model)
    except Dream2FlowError as exc:
        print(f"build_trt: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
