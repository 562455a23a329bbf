"""The perception configuration: which backend serves each role, from ``--perception SPEC``.

Why one file: the pipeline, ``dream2flow flow|plan|perceive|demo|eval`` and the service must
agree on what perceives the scene, and every report must say which backend ran. ``SPEC`` is
``classical``, ``models`` or a TOML file (default: ``hw/perception.toml``)::

    schema = 1
    models_dir = "../exported_models"   # manifest.toml + ONNX files; relative to this file.
                                        # Omitted: $D2F_MODELS_DIR, else the repository's exported_models/
    [engine]                            # ONNX Runtime (perception.engine.EngineConfig); all optional
    providers = ["tensorrt", "cuda", "cpu"]
    fp16 = true
    cache_dir = ""                      # TensorRT engine cache; "" = <models_dir>/trt_cache
    verify_sha256 = true
    [detector]                          # one table per role: detector, segmenter, tracker, video_depth, hand
    use = "model"                       # "model" (the manifest's model for the role), "model:NAME"
                                        # (that manifest entry), "classical", or "none"
    fallback = true                     # model missing -> the role's classical backend, where one exists
    box_threshold = 0.35                # any other key: a keyword option of the backend that runs

Classical backends exist for ``segmenter`` (RGB-D segmenter) and ``tracker`` (Lucas-Kanade)
only: there is no honest classical detector, video-depth estimator or hand detector, so such a
role with no model has no backend (``perception.factory`` then answers ``NotReady`` naming the
role and the fix). A role table left out means ``use = "model"``.

Another configuration (e.g. ``hw/perception.sim.toml`` selecting sim-trained models) is the
same file with ``use = "model:<manifest name>"`` per role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dream2flow.errors import InvalidInput

SCHEMA_VERSION = 1
ROLES = ("detector", "segmenter", "tracker", "video_depth", "hand")
CLASSICAL_ROLES = ("segmenter", "tracker")  # roles with an honest classical backend
BUILTIN_SPECS = ("classical", "models")
_ENGINE_KEYS = {"providers", "fp16", "cache_dir", "verify_sha256", "warmup", "intra_op_threads", "device_id"}


@dataclass(frozen=True)
class RoleChoice:
    """``use``: ``"model"``, ``"classical"`` or ``"none"``; ``model``: a manifest name (``use =
    "model:NAME"``) or None (the first entry of the role); ``fallback``: a missing model falls
    back to the classical backend; ``options``: keyword options of the backend."""

    use: str = "model"
    model: str | None = None
    fallback: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"model:{self.model}" if self.use == "model" and self.model else self.use


@dataclass(frozen=True)
class PerceptionConfig:
    """A parsed ``--perception`` spec. ``source``: ``classical``, ``models`` or the file's path
    (what reports print); ``models_dir`` None = the default models folder; ``engine``: keyword
    overrides of ``EngineConfig``."""

    roles: dict[str, RoleChoice]
    source: str = "models"
    models_dir: Path | None = None
    engine: dict[str, Any] = field(default_factory=dict)

    def role(self, name: str) -> RoleChoice:
        return self.roles[name]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "models_dir": str(self.models_dir) if self.models_dir else None,
                "roles": {r: self.roles[r].describe() for r in ROLES}}


def default_config_path() -> Path:
    """``perception.toml`` of the configuration folder in use (``--hw-dir`` / ``$D2F_HW_DIR``), else
    the shipped one."""
    from dream2flow.config import hw_dir, shipped_hw_dir

    own = hw_dir() / "perception.toml"
    return own if own.is_file() else shipped_hw_dir() / "perception.toml"


def builtin_config(name: str) -> PerceptionConfig:
    """``classical``: classical backends only (no detector, video depth or hand); ``models``: the
    manifest's model for every role, classical fallback where one exists."""
    if name == "classical":
        roles = {r: RoleChoice(use="classical" if r in CLASSICAL_ROLES else "none") for r in ROLES}
        return PerceptionConfig(roles=roles, source="classical")
    if name == "models":
        return PerceptionConfig(roles={r: RoleChoice() for r in ROLES}, source="models")
    raise InvalidInput(f"unknown perception spec {name!r}: use classical, models or a TOML file")


def _parse_use(value: Any, where: str) -> tuple[str, str | None]:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: 'use' must be \"model\", \"model:NAME\", \"classical\" or \"none\", got {value!r}")
    v = value.strip()
    if v in ("model", "classical", "none"):
        return v, None
    if v.startswith("model:") and v[len("model:"):].strip():
        return "model", v[len("model:"):].strip()
    raise InvalidInput(f"{where}: 'use' must be \"model\", \"model:NAME\", \"classical\" or \"none\", got {value!r}")


def config_from_dict(d: dict[str, Any], *, where: str = "perception config",
                     base_dir: str | Path = ".") -> PerceptionConfig:
    """Validate a parsed TOML table (every problem an ``InvalidInput`` naming the key)."""
    if d.get("schema") != SCHEMA_VERSION:
        raise InvalidInput(f"{where}: 'schema' must be {SCHEMA_VERSION}, got {d.get('schema')!r}")
    known = {"schema", "about", "models_dir", "engine", *ROLES}
    unknown = sorted(set(d) - known)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    models_dir = None
    if d.get("models_dir") not in (None, ""):
        if not isinstance(d["models_dir"], str):
            raise InvalidInput(f"{where}: 'models_dir' must be a path string")
        p = Path(d["models_dir"]).expanduser()
        models_dir = p if p.is_absolute() else (Path(base_dir) / p).resolve()
    engine = d.get("engine", {})
    if not isinstance(engine, dict):
        raise InvalidInput(f"{where}: [engine] must be a table")
    bad = sorted(set(engine) - _ENGINE_KEYS)
    if bad:
        raise InvalidInput(f"{where} [engine]: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(_ENGINE_KEYS))})")
    roles: dict[str, RoleChoice] = {}
    for r in ROLES:
        t = d.get(r, {})
        if not isinstance(t, dict):
            raise InvalidInput(f"{where}: [{r}] must be a table")
        t = dict(t)
        use, model = _parse_use(t.pop("use", "model"), f"{where} [{r}]")
        if use == "classical" and r not in CLASSICAL_ROLES:
            raise InvalidInput(f"{where} [{r}]: there is no classical {r} backend (classical ones exist for "
                               f"{', '.join(CLASSICAL_ROLES)}); use \"model\", \"model:NAME\" or \"none\"")
        fallback = t.pop("fallback", True)
        if not isinstance(fallback, bool):
            raise InvalidInput(f"{where} [{r}]: 'fallback' must be true or false")
        roles[r] = RoleChoice(use=use, model=model, fallback=fallback, options=t)
    return PerceptionConfig(roles=roles, source=str(where), models_dir=models_dir, engine=_engine_kwargs(engine, where))


def _engine_kwargs(engine: dict[str, Any], where: str) -> dict[str, Any]:
    """[engine] keys -> ``EngineConfig`` keyword arguments (checked there too)."""
    kw: dict[str, Any] = {}
    if "providers" in engine:
        p = engine["providers"]
        if not isinstance(p, list) or not p or not all(isinstance(x, str) for x in p):
            raise InvalidInput(f"{where} [engine]: 'providers' must be a list such as [\"cuda\", \"cpu\"]")
        kw["providers"] = tuple(x.strip().lower() for x in p)
    for key, dest in (("fp16", "trt_fp16"), ("verify_sha256", "verify_sha256"), ("warmup", "warmup")):
        if key in engine:
            if not isinstance(engine[key], bool):
                raise InvalidInput(f"{where} [engine]: '{key}' must be true or false")
            kw[dest] = engine[key]
    if engine.get("cache_dir"):
        if not isinstance(engine["cache_dir"], str):
            raise InvalidInput(f"{where} [engine]: 'cache_dir' must be a path string")
        kw["trt_cache_dir"] = Path(engine["cache_dir"]).expanduser()
    for key in ("intra_op_threads", "device_id"):
        if key in engine:
            v = engine[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidInput(f"{where} [engine]: '{key}' must be an integer >= 0")
            kw[key] = (v or None) if key == "intra_op_threads" else v
    return kw


def load_perception_config(spec: str | Path | PerceptionConfig | None = None) -> PerceptionConfig:
    """``None`` -> ``perception.toml`` of the hw folder in use, else the shipped one (the built-in
    ``models`` configuration when neither exists); ``classical`` / ``models``; else a TOML path."""
    if isinstance(spec, PerceptionConfig):
        return spec
    if spec is None or str(spec).strip() == "":
        p = default_config_path()
        return _load_file(p) if p.is_file() else builtin_config("models")
    s = str(spec).strip()
    if s in BUILTIN_SPECS:
        return builtin_config(s)
    p = Path(s).expanduser()
    if not p.is_file():
        raise InvalidInput(f"perception spec {s!r} is neither classical, models nor an existing TOML file")
    return _load_file(p)


def _load_file(p: Path) -> PerceptionConfig:
    from dream2flow.config import load_toml

    d = load_toml(p)
    return config_from_dict(d, where=str(p), base_dir=p.resolve().parent)


__all__ = ["ROLES", "CLASSICAL_ROLES", "RoleChoice", "PerceptionConfig", "builtin_config", "config_from_dict",
           "load_perception_config", "default_config_path"]
