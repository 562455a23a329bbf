"""ONNX Runtime sessions for the exported perception models: provider choice (TensorRT -> CUDA ->
CPU, configurable), the TensorRT execution provider's engine and timing caches, FP16, explicit
shape profiles, a manifest check before anything runs, warm-up, and a startup report of which
provider each model really got.

Why the manifest check comes first: a robot must refuse a model file that is not the exported
one (sha256) or whose inputs/outputs differ from what the wrappers feed and read (names, dtypes,
shapes), with a message that names the difference, instead of failing deep inside inference.

Why the report: ONNX Runtime silently drops a provider it cannot load (no GPU, a CUDA or
TensorRT library missing), so the requested provider list proves nothing; ``session.get_providers()``
does. The engine logs, per model, what was asked for and what it got, and says when it fell back
to the CPU.

TensorRT engine cache: engines are specific to the GPU architecture, the TensorRT version and the
ONNX Runtime version, so the cache folder is keyed by all three (``trt_cache_key``); a JetPack
upgrade then rebuilds instead of loading a stale engine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from dream2flow.errors import InvalidInput, ModelMismatch, NotReady
from dream2flow.log import get_logger
from dream2flow.perception.manifest import (Manifest, ModelSpec, TensorSpec, default_models_dir, load_manifest,
                                            ort_type_to_dtype, sha256_file)

log = get_logger("perception.engine")

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
DEFAULT_PROVIDERS = ("tensorrt", "cuda", "cpu")


@dataclass(frozen=True)
class EngineConfig:
    """How sessions are made. ``providers``: preference order among ``tensorrt``, ``cuda``, ``cpu``
    (the first available wins per model, the others stay as ONNX Runtime's per-node fallback).
    ``trt_cache_dir``: root of the engine cache (a persistent volume on the robot); the engine
    uses ``trt_cache_dir/<trt_cache_key()>``. ``verify_sha256``: hash each file before loading
    (seconds for a large model; never turn off on a robot). ``require_sha256``: refuse entries
    without a recorded hash (models not exported through ``export_tools``)."""

    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    device_id: int = 0
    trt_fp16: bool = True
    trt_cache_dir: Path | None = None
    trt_engine_cache: bool = True
    trt_timing_cache: bool = True
    trt_max_workspace_bytes: int = 2 << 30
    trt_builder_optimization_level: int = 3
    intra_op_threads: int | None = None
    warmup: bool = True
    warmup_runs: int = 1
    verify_sha256: bool = True
    require_sha256: bool = True

    def __post_init__(self) -> None:
        bad = [p for p in self.providers if p not in PROVIDER_NAMES]
        if bad or not self.providers:
            raise InvalidInput(f"unknown execution provider(s) {bad or '(none)'}: use a list of tensorrt, cuda, cpu")

    @classmethod
    def from_env(cls, **overrides: Any) -> "EngineConfig":
        """``D2F_ORT_PROVIDERS=cuda,cpu`` (order), ``D2F_TRT_CACHE`` (folder), ``D2F_TRT_FP16=0|1``."""
        kw: dict[str, Any] = {}
        if os.environ.get("D2F_ORT_PROVIDERS"):
            kw["providers"] = tuple(p.strip().lower() for p in os.environ["D2F_ORT_PROVIDERS"].split(",") if p.strip())
        if os.environ.get("D2F_TRT_CACHE"):
            kw["trt_cache_dir"] = Path(os.environ["D2F_TRT_CACHE"])
        if os.environ.get("D2F_TRT_FP16"):
            kw["trt_fp16"] = os.environ["D2F_TRT_FP16"] not in ("0", "false", "no")
        kw.update(overrides)
        return cls(**kw)


# ---- versions and the TensorRT cache key ------------------------------------------------------

def _cuda_compute_capability(device_id: int = 0) -> str | None:
    """``'sm87'`` (Orin), ``'sm90'`` (H100)... from the CUDA driver API via ctypes (no Python CUDA
    package needed); None when there is no driver or device."""
    if os.environ.get("D2F_GPU_ARCH"):
        return os.environ["D2F_GPU_ARCH"]
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    try:
        if lib.cuInit(0) != 0:
            return None
        dev = ctypes.c_int()
        if lib.cuDeviceGet(ctypes.byref(dev), device_id) != 0:
            return None
        major, minor = ctypes.c_int(), ctypes.c_int()
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
        if lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) != 0:
            return None
        if lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) != 0:
            return None
        return f"sm{major.value}{minor.value}"
    except AttributeError:
        return None


def _tensorrt_version() -> str | None:
    """TensorRT version from the Python module, else from ``libnvinfer``'s ``getInferLibVersion``."""
    if os.environ.get("D2F_TRT_VERSION"):
        return os.environ["D2F_TRT_VERSION"]
    try:
        import tensorrt  # type: ignore[import-not-found]

        return str(tensorrt.__version__)
    except Exception:  # not installed (x86 dev box) or broken
        pass
    for name in (ctypes.util.find_library("nvinfer"), "libnvinfer.so.10", "libnvinfer.so.8"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            v = int(lib.getInferLibVersion())
        except (OSError, AttributeError):
            continue
        # 10.3.0 -> 100300 (TRT >= 10: major*10000+minor*100+patch); 8.6.1 -> 8601
        if v >= 10000:
            return f"{v // 10000}.{(v // 100) % 100}.{v % 100}"
        return f"{v // 1000}.{(v // 100) % 10}.{v % 100}"
    return None


def ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def trt_cache_key(gpu_arch: str | None = None, trt_version: str | None = None, ort_ver: str | None = None,
                  device_id: int = 0) -> str:
    """Folder name for TensorRT engines: ``<gpu arch>-trt<version>-ort<version>``, e.g.
    ``sm87-trt10.3.0-ort1.20.0``. Unknown parts read ``unknown`` (then a rebuild is likely but a
    wrong engine is never loaded: TensorRT checks the engine's own header too)."""
    arch = gpu_arch or _cuda_compute_capability(device_id) or "unknownarch"
    trt = trt_version or _tensorrt_version() or "unknown"
    ortv = ort_ver or ort_version()
    key = f"{arch}-trt{trt}-ort{ortv}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", key)


# ---- provider choice -------------------------------------------------------------------------

def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def trt_provider_options(spec: ModelSpec, config: EngineConfig, cache_dir: Path) -> dict[str, Any]:
    """The TensorRT EP's options for one model: engine + timing caches under ``cache_dir``, FP16,
    and explicit min/opt/max shape profiles for its dynamic inputs (from the manifest)."""
    opts: dict[str, Any] = {
        "device_id": config.device_id,
        "trt_fp16_enable": bool(config.trt_fp16),
        "trt_engine_cache_enable": bool(config.trt_engine_cache),
        "trt_engine_cache_path": str(cache_dir),
        "trt_engine_cache_prefix": re.sub(r"[^A-Za-z0-9_]", "_", spec.name),
        "trt_timing_cache_enable": bool(config.trt_timing_cache),
        "trt_timing_cache_path": str(cache_dir),
        "trt_max_workspace_size": int(config.trt_max_workspace_bytes),
        "trt_builder_optimization_level": int(config.trt_builder_optimization_level),
    }
    prof = spec.trt_profile
    if prof:
        for level in ("min", "opt", "max"):
            shapes = prof.get(level, {})
            if shapes:
                opts[f"trt_profile_{level}_shapes"] = ",".join(f"{n}:{_dims(s)}" for n, s in shapes.items())
    return opts


@dataclass(frozen=True)
class ProviderPlan:
    """What a session will be asked to use: ``providers`` (ORT names, in order), their options,
    and ``notes`` saying why a preferred provider was skipped."""

    providers: tuple[str, ...]
    options: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.providers[0]


def plan_providers(spec: ModelSpec, config: EngineConfig, available: Iterable[str], cache_dir: Path | None = None
                   ) -> ProviderPlan:
    """Pick providers in ``config.providers`` order among ``available`` (``ort.get_available_providers()``).
    The CPU provider is always appended last as ONNX Runtime's fallback for unsupported nodes."""
    avail = set(available)
    chosen: list[str] = []
    options: list[dict[str, Any]] = []
    notes: list[str] = []
    missing: list[str] = []
    for short in config.providers:
        ort_name = PROVIDER_NAMES[short]
        if ort_name not in avail:
            missing.append(ort_name)
            continue
        if ort_name in chosen:
            continue
        chosen.append(ort_name)
        if short == "tensorrt":
            options.append(trt_provider_options(spec, config, cache_dir or Path(".")))
        elif short == "cuda":
            options.append({"device_id": config.device_id, "cudnn_conv_algo_search": "EXHAUSTIVE"})
        else:
            options.append({})
    if missing:
        notes.append(f"{' and '.join(missing)} not available in this onnxruntime build")
    if "CPUExecutionProvider" not in chosen:
        if "cpu" not in config.providers:
            notes.append("CPUExecutionProvider added as the last-resort fallback")
        chosen.append("CPUExecutionProvider")
        options.append({})
    return ProviderPlan(tuple(chosen), tuple(options), tuple(notes))


# ---- the manifest check ----------------------------------------------------------------------

def _fmt_shape(shape: Sequence[Any]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def signature_differences(spec: ModelSpec, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> list[str]:
    """Every difference between the manifest's I/O and the file's, as short phrases
    (``input 'pixel_values' shape [1,3,224,224] != manifest [1,3,518,518]``)."""
    diffs: list[str] = []
    for kind, want, got in (("input", spec.inputs, inputs), ("output", spec.outputs, outputs)):
        want_by = {t.name: t for t in want}
        got_by = {t.name: t for t in got}
        for n in want_by:
            if n not in got_by:
                diffs.append(f"{kind} '{n}' is missing from the file (file has: {', '.join(got_by) or 'none'})")
        for n in got_by:
            if n not in want_by:
                diffs.append(f"the file has an extra {kind} '{n}' not in the manifest")
        for n, w in want_by.items():
            g = got_by.get(n)
            if g is None:
                continue
            if g.dtype != w.dtype:
                diffs.append(f"{kind} '{n}' dtype {g.dtype} != manifest {w.dtype}")
            if len(g.shape) != len(w.shape) or any(
                    (isinstance(a, int) or isinstance(b, int)) and a != b for a, b in zip(g.shape, w.shape)):
                diffs.append(f"{kind} '{n}' shape {_fmt_shape(g.shape)} != manifest {_fmt_shape(w.shape)}")
        if not diffs and [t.name for t in want] != [t.name for t in got]:
            diffs.append(f"{kind} order {[t.name for t in got]} != manifest {[t.name for t in want]}")
    return diffs


def _session_signature(session: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    def conv(args: Any) -> list[TensorSpec]:
        return [TensorSpec(a.name, ort_type_to_dtype(a.type),
                           tuple(d if isinstance(d, (int, str)) else "?" for d in a.shape)) for a in args]

    return conv(session.get_inputs()), conv(session.get_outputs())


def check_file(spec: ModelSpec, path: Path, config: EngineConfig) -> str | None:
    """Existence and sha256 (before any session is made). Returns the file's sha256 (or None when
    not verified). ``NotReady`` names the export command for a missing file; ``ModelMismatch``
    names the two hashes for a changed one."""
    if not path.is_file():
        how = f" Make it with: {spec.export_command}" if spec.export_command else ""
        raise NotReady(f"model '{spec.name}' ({spec.role}) is missing: {path} does not exist.{how}")
    if spec.sha256 is None:
        if config.require_sha256:
            how = f" (run: {spec.export_command})" if spec.export_command else ""
            raise ModelMismatch(f"model '{spec.name}': the manifest records no sha256 for {path.name}, so the file "
                                f"cannot be verified; export it through export_tools to register it{how}")
        return None
    if not config.verify_sha256:
        return None
    got = sha256_file(path)
    if got != spec.sha256:
        raise ModelMismatch(f"model '{spec.name}': {path} has sha256 {got} but the manifest expects {spec.sha256} "
                            f"(a different or corrupted file; re-export it or restore the exported one)")
    return got


# ---- sessions --------------------------------------------------------------------------------

@dataclass
class ModelSession:
    """One loaded model: ``run(feeds)`` -> {output name: array}. ``providers`` is what ONNX
    Runtime actually uses (``session.get_providers()``), ``requested`` what was asked for."""

    spec: ModelSpec
    path: Path
    session: Any
    requested: tuple[str, ...]
    notes: tuple[str, ...] = ()
    preferred: str = "CPUExecutionProvider"
    load_s: float = 0.0
    warmup_s: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    @property
    def provider(self) -> str:
        """The provider that runs the graph (the first one the session kept)."""
        return self.providers[0]

    @property
    def on_cpu_fallback(self) -> bool:
        return self.provider == "CPUExecutionProvider" and self.preferred != "CPUExecutionProvider"

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [t.name for t in self.spec.inputs]
        missing = [n for n in names if n not in feeds]
        if missing:
            raise InvalidInput(f"model '{self.name}': missing inputs {missing}")
        outs = self.session.run(None, {n: feeds[n] for n in names})
        return {t.name: o for t, o in zip(self.spec.outputs, outs)}

    def dummy_feeds(self, level: str = "opt") -> dict[str, np.ndarray]:
        """Zero inputs at the manifest's ``level`` profile shape (dynamic axes of inputs without a
        profile take 1, or the value ``preprocess.warmup_<axis>`` when given)."""
        prof = self.spec.trt_profile.get(level, {})
        feeds: dict[str, np.ndarray] = {}
        for t in self.spec.inputs:
            if t.name in prof:
                shape = tuple(int(d) for d in prof[t.name])
            else:
                shape = tuple(d if isinstance(d, int) else int(self.spec.preprocess.get(f"warmup_{d}", 1)) for d in t.shape)
            dtype = np.dtype("bool") if t.dtype == "bool" else np.dtype(t.dtype)
            feeds[t.name] = np.ones(shape, dtype) if t.dtype in ("int64", "int32") and "mask" in t.name else np.zeros(shape, dtype)
        return feeds

    def warmup(self, runs: int = 1) -> float:
        """Run ``runs`` inferences on zero inputs (TensorRT builds or loads its engine on the first)."""
        t0 = time.perf_counter()
        feeds = self.dummy_feeds()
        for _ in range(max(1, runs)):
            self.session.run(None, feeds)
        self.warmup_s = time.perf_counter() - t0
        return self.warmup_s

    def report(self) -> dict[str, Any]:
        return {
            "model": self.name, "role": self.spec.role, "file": str(self.path), "preferred": self.preferred, "requested": list(self.requested),
            "providers": self.providers, "provider": self.provider, "cpu_fallback": self.on_cpu_fallback,
            "notes": list(self.notes), "load_s": round(self.load_s, 3),
            "warmup_s": None if self.warmup_s is None else round(self.warmup_s, 3),
        }

    def report_line(self) -> str:
        r = self.report()
        line = f"{self.name} ({self.spec.role}): running on {r['provider']}"
        if self.on_cpu_fallback:
            line += f" -- CPU FALLBACK (asked for {self.preferred}"
            line += f": {'; '.join(self.notes)})" if self.notes else ")"
        if self.warmup_s is not None:
            line += f", warm-up {self.warmup_s:.2f} s"
        return line


class InferenceEngine:
    """Loads manifest models on demand (``session(name)``), each checked, placed on the best
    available provider, warmed up and reported. One engine per process; sessions are cached."""

    def __init__(self, manifest: Manifest | str | Path | None = None, models_dir: str | Path | None = None,
                 config: EngineConfig | None = None) -> None:
        if manifest is None:
            models_dir = Path(models_dir) if models_dir else default_models_dir()
            manifest = models_dir / "manifest.toml"
        self.manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        if models_dir is not None:
            self.models_dir = Path(models_dir)
        elif self.manifest.path is not None:
            self.models_dir = self.manifest.path.parent
        else:
            self.models_dir = default_models_dir()
        self.config = config or EngineConfig.from_env()
        self._sessions: dict[str, ModelSession] = {}
        self._cache_dir: Path | None = None
        self._warned_cpu = False

    # The TensorRT cache folder is only computed when TensorRT is actually in play.
    @property
    def trt_cache_dir(self) -> Path:
        if self._cache_dir is None:
            root = self.config.trt_cache_dir or (self.models_dir / "trt_cache")
            self._cache_dir = Path(root) / trt_cache_key(device_id=self.config.device_id)
        return self._cache_dir

    def path_of(self, spec: ModelSpec) -> Path:
        p = Path(spec.file)
        return p if p.is_absolute() else self.models_dir / p

    def available_providers(self) -> list[str]:
        import onnxruntime as ort

        return list(ort.get_available_providers())

    def session(self, name: str) -> ModelSession:
        if name not in self._sessions:
            self._sessions[name] = self._load(self.manifest.get(name))
        return self._sessions[name]

    def session_for_role(self, role: str, name: str | None = None) -> ModelSession:
        """The named model, or the first manifest entry with ``role``."""
        if name:
            spec = self.manifest.get(name)
            if spec.role != role:
                raise InvalidInput(f"model '{name}' has role '{spec.role}', not '{role}'")
            return self.session(name)
        cands = self.manifest.by_role(role)
        if not cands:
            raise NotReady(f"the manifest {self.manifest.path or ''} has no model with role '{role}'")
        return self.session(cands[0].name)

    def _load(self, spec: ModelSpec) -> ModelSession:
        import onnxruntime as ort

        path = self.path_of(spec)
        check_file(spec, path, self.config)
        available = self.available_providers()
        uses_trt = "tensorrt" in self.config.providers and PROVIDER_NAMES["tensorrt"] in available
        cache_dir = self.trt_cache_dir if uses_trt else None
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
        plan = plan_providers(spec, self.config, available, cache_dir)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if self.config.intra_op_threads:
            so.intra_op_num_threads = int(self.config.intra_op_threads)
        t0 = time.perf_counter()
        try:
            sess = ort.InferenceSession(str(path), sess_options=so, providers=list(plan.providers),
                                        provider_options=list(plan.options))
        except Exception as exc:  # ORT raises its own types (InvalidProtobuf, Fail, ...)
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelMismatch(f"model '{spec.name}': onnxruntime could not load {path} ({msg})") from None
        load_s = time.perf_counter() - t0
        ins, outs = _session_signature(sess)
        diffs = signature_differences(spec, ins, outs)
        if diffs:
            raise ModelMismatch(f"model '{spec.name}': {path.name} does not match the manifest: " + "; ".join(diffs))
        notes = list(plan.notes)
        got = list(sess.get_providers())
        if got[0] != plan.first:
            notes.append(f"onnxruntime could not start {plan.first} for this model (see its log)")
        ms = ModelSession(spec=spec, path=path, session=sess, requested=plan.providers, notes=tuple(notes),
                          preferred=PROVIDER_NAMES[self.config.providers[0]], load_s=load_s)
        if self.config.warmup:
            ms.warmup(self.config.warmup_runs)
        log.info("%s", ms.report_line())
        if ms.on_cpu_fallback and not self._warned_cpu:
            self._warned_cpu = True
            # A machine without any CUDA device runs on the CPU by nature (a developer's laptop, CI):
            # said at INFO. A GPU that the models do not get (a CPU-only onnxruntime on a Jetson, a
            # missing CUDA/TensorRT library) is the misconfiguration worth a warning.
            gpu = _cuda_compute_capability(self.config.device_id) is not None
            log.log(logging.WARNING if gpu else logging.INFO, "no %s for the perception models (%s): running on the CPU%s",
                    ms.preferred, "; ".join(ms.notes) or "see the startup report",
                    "" if gpu else " (this machine has no CUDA device)")
        return ms

    def load(self, names: Iterable[str] | None = None) -> list[ModelSession]:
        """Load (check, place, warm up) the named models, or every manifest entry."""
        return [self.session(n) for n in (names if names is not None else self.manifest.names())]

    def report(self) -> list[dict[str, Any]]:
        return [s.report() for s in self._sessions.values()]

    def report_lines(self) -> list[str]:
        return [s.report_line() for s in self._sessions.values()]


def startup_report(engine: InferenceEngine, names: Sequence[str] | None = None) -> list[str]:
    """Load the models and return one line per model saying which provider it really got
    (and a CPU-fallback warning where a GPU provider was asked for but not obtained)."""
    engine.load(names)
    lines = engine.report_lines()
    avail = engine.available_providers()
    if not any(p in avail for p in (PROVIDER_NAMES["tensorrt"], PROVIDER_NAMES["cuda"])):
        lines.insert(0, f"no GPU execution provider in this onnxruntime build ({ort_version()}; available: "
                        f"{', '.join(avail)}): every model runs on the CPU")
    return lines


__all__ = [
    "EngineConfig", "InferenceEngine", "ModelSession", "ProviderPlan", "plan_providers", "trt_provider_options",
    "trt_cache_key", "signature_differences", "check_file", "startup_report", "PROVIDER_NAMES",
]
