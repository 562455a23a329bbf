"""``dream2flow models``: exported perception models: list|check (issue 6)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="exported perception models: list|check",
                       description="List the models of a manifest (exported_models/manifest.toml by default) with "
                                   "whether each file is present, or check them: sha256 and input/output signature "
                                   "against the manifest, load each on the best available execution provider "
                                   "(TensorRT -> CUDA -> CPU), warm up, and report the provider each really got. "
                                   "Exit 3 (not ready) if a model is missing or does not match.")
    p.add_argument("action", choices=("list", "check"), help="list: what the manifest holds; check: verify + load")
    p.add_argument("--manifest", help="manifest file (default MODELS_DIR/manifest.toml)")
    p.add_argument("--models-dir", help="folder of the .onnx files (default $D2F_MODELS_DIR or exported_models/)")
    p.add_argument("--providers", help="preference order, e.g. tensorrt,cuda,cpu (default; or $D2F_ORT_PROVIDERS)")
    p.add_argument("--trt-cache", help="TensorRT engine cache root (default MODELS_DIR/trt_cache or $D2F_TRT_CACHE)")
    p.add_argument("--no-fp16", action="store_true", help="TensorRT in FP32")
    p.add_argument("--model", action="append", help="check only this model (repeatable)")
    p.add_argument("--shipped", action="store_true",
                   help="check only the models shipped with their files (entries with a sha256 and status "
                        "'exported': MediaPipe hands, the RL policies, the sim-trained stand-ins); the foundation "
                        "models listed as 'not exported here' are skipped")
    p.set_defaults(func=run)


def _engine(args: argparse.Namespace):
    from pathlib import Path

    from dream2flow.perception.engine import EngineConfig, InferenceEngine
    from dream2flow.perception.manifest import default_models_dir

    overrides = {}
    if args.providers:
        overrides["providers"] = tuple(p.strip().lower() for p in args.providers.split(",") if p.strip())
    if args.trt_cache:
        overrides["trt_cache_dir"] = Path(args.trt_cache)
    if args.no_fp16:
        overrides["trt_fp16"] = False
    models_dir = Path(args.models_dir) if args.models_dir else None
    manifest = Path(args.manifest) if args.manifest else (models_dir or default_models_dir()) / "manifest.toml"
    return InferenceEngine(manifest, models_dir=models_dir, config=EngineConfig.from_env(**overrides))


def run(args: argparse.Namespace) -> int:
    from dream2flow.errors import Dream2FlowError, NotReady
    from dream2flow.log import progress

    engine = _engine(args)
    m = engine.manifest
    if args.action == "list":
        progress(f"manifest {m.path} ({len(m.models)} models, files under {engine.models_dir})")
        for s in m.models:
            path = engine.path_of(s)
            state = "present" if path.is_file() else "MISSING"
            kind = " [tiny random test model]" if s.tiny_random else (" [I/O fixture, not a model]" if s.fixture else "")
            sha = s.sha256[:12] if s.sha256 else "no sha256 (not exported here)"
            progress(f"  {s.name:36s} {s.role:18s} {state:8s} {sha}{kind}")
            if not path.is_file() and s.export_command:
                progress(f"      make it with: {s.export_command}")
        return 0
    names = args.model or ([s.name for s in m.models if s.sha256 and s.status == "exported"] if args.shipped
                           else m.names())
    problems: list[str] = []
    for name in names:
        try:
            engine.session(name)
        except Dream2FlowError as exc:
            problems.append(exc.message)
            progress(f"  FAIL {exc.message}")
    gpu = {"TensorrtExecutionProvider", "CUDAExecutionProvider"} & set(engine.available_providers())
    if not gpu and engine.report():
        progress(f"no GPU execution provider in this onnxruntime build (available: "
                 f"{', '.join(engine.available_providers())}): the models run on the CPU")
    for line in engine.report_lines():
        progress(f"  ok   {line}")
    if problems:
        raise NotReady(f"{len(problems)} of {len(names)} models not ready: " + " | ".join(problems))
    progress(f"models check: {len(names)} models ok")
    return 0
