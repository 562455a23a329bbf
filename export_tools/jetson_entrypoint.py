"""Container entrypoint of Dockerfile.jetson: check the mounted models, build the TensorRT engines
at first start into the persistent volume (skipped when they are already there for these models
and versions), then hand over to the ``dream2flow`` command (``serve`` by default).

Why at first start and not at image build: TensorRT engines are specific to the exact GPU (an
Orin NX and an AGX Orin differ) and TensorRT version, and ``docker build`` has no GPU.

Environment: ``D2F_MODELS_DIR`` (the exported .onnx files + manifest.toml, mounted read-only),
``D2F_TRT_CACHE`` (the persistent engine volume), ``D2F_ORT_PROVIDERS`` (default
``tensorrt,cuda,cpu``), ``D2F_TRT_FP16`` (default 1), ``D2F_SKIP_ENGINE_BUILD=1`` to start without
building (then the first request builds lazily).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Sequence

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))


def prepare(env: dict[str, str] | None = None, log: Callable[[str], None] = print) -> int:
    """Everything before ``exec``: returns 0, or the runtime's exit code for a model problem."""
    from export_tools.build_trt import build_via_ort

    env = dict(os.environ if env is None else env)
    models = Path(env.get("D2F_MODELS_DIR", "/models"))
    manifest = models / "manifest.toml"
    if not manifest.is_file():
        log(f"entrypoint: no model manifest at {manifest}: mount the exported models (see exported_models/README.md)")
        return 3
    if env.get("D2F_SKIP_ENGINE_BUILD") == "1":
        log("entrypoint: engine build skipped (D2F_SKIP_ENGINE_BUILD=1)")
        return 0
    cache = Path(env.get("D2F_TRT_CACHE", "/data/trt_cache"))
    providers = [p.strip() for p in env.get("D2F_ORT_PROVIDERS", "tensorrt,cuda,cpu").split(",") if p.strip()]
    fp16 = env.get("D2F_TRT_FP16", "1") not in ("0", "false", "no")
    from dream2flow.errors import Dream2FlowError

    try:
        res = build_via_ort(manifest, cache, fp16=fp16, providers=providers, first_start=True, models=None, log=log)
    except Dream2FlowError as exc:
        log(f"entrypoint: {exc.message}")
        return exc.exit_code
    log(f"entrypoint: engines {'already in' if res['skipped'] else 'built into'} {res['cache_dir']}")
    return 0


DEFAULT_ARGS = ("serve", "--config", "/config/service.toml", "--data-dir", "/data")


def missing_config(args: Sequence[str]) -> str | None:
    """For ``serve --config FILE`` with FILE absent: one line saying exactly what to mount."""
    if not args or args[0] != "serve" or "--config" not in args:
        return None
    i = list(args).index("--config")
    cfg = Path(args[i + 1]) if i + 1 < len(args) else None
    if cfg is None or cfg.is_file():
        return None
    folder = cfg.parent
    return (f"entrypoint: no service config at {cfg}: mount the folder that `dream2flow serve --init` wrote at "
            f"{folder} (-v /srv/d2f-config:{folder}:ro); make it once with `docker run --rm -v "
            f"/srv/d2f-config:{folder} IMAGE serve --init {folder} --hosts $(hostname)` (keep the printed token)")


def main(argv: Sequence[str] | None = None, log: Callable[[str], None] = print) -> int:
    args = list(sys.argv[1:] if argv is None else argv) or list(DEFAULT_ARGS)
    if "--init" not in args:  # making the service folder needs no models and no config
        problem = missing_config(args)
        if problem:
            log(problem)
            return 2
        code = prepare(log=log)
        if code:
            return code
    os.execvp("dream2flow", ["dream2flow", *args])
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
