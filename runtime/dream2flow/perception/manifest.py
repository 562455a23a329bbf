"""The model manifest (``exported_models/manifest.toml``): which ONNX files the perception
stage may load, and what each must look like (sha256, input/output names, dtypes, shapes).

Why a manifest: a robot must never run a model file that is not the one that was exported and
checked (a half-copied file, a re-export with another opset, a model for another input size).
The export tools (``export_tools/``) write an entry after checking parity against PyTorch;
the engine (``perception.engine``) refuses any file that does not match its entry.

Schema (TOML, ``schema = 1``), one ``[[model]]`` table per file::

    schema = 1, about = "..." (what this manifest is), then per model:
    name, role, file, sha256?, opset, status ("exported" | "not exported here"),
    source_checkpoint, license, export_command, tiny_random?, fixture?, notes?
    [[model.inputs]] / [[model.outputs]]: name, dtype ("float32", "int64", "bool", ...),
        shape (a list of ints and strings; a string is a dynamic axis)
    [model.parity]: max_abs, mean_abs, bound, ref_max_abs (figures from the export)
    [model.preprocess]: role-specific numbers (input size, mean, std, thresholds)
    [model.trt_profile]: min / opt / max shapes for dynamic inputs ({input: [dims]})
    [model.training]: for models trained in this repository (the sim-trained stand-ins):
        trained_on, seeds, command, wall time, metrics

Roles: ``detector``, ``segmenter`` (one box-prompted model), ``segmenter_encoder``,
``segmenter_decoder`` (SAM 2's two halves), ``point_tracker``,
``video_depth``, ``hand_keypoints`` (a top-down keypoint model, e.g. ViTPose), ``hand_palm_detector``
and ``hand_landmarks`` (MediaPipe's two-stage hand models, used together), ``policy`` (an RL
policy: observation -> action, ``dream2flow.rl``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dream2flow.errors import InvalidInput

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.10
    import tomli as _toml

SCHEMA_VERSION = 1
ROLES = ("detector", "segmenter", "segmenter_encoder", "segmenter_decoder", "point_tracker", "video_depth",
         "hand_keypoints",
         "hand_palm_detector", "hand_landmarks", "policy")
DTYPES = ("float32", "float16", "int64", "int32", "bool", "uint8")
_ORT_TYPE_TO_DTYPE = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
    "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(uint8)": "uint8", "tensor(double)": "float64",
}


def ort_type_to_dtype(ort_type: str) -> str:
    """``'tensor(float)'`` (ONNX Runtime's spelling) -> ``'float32'``."""
    return _ORT_TYPE_TO_DTYPE.get(ort_type, ort_type)


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: ``shape`` entries are ints (fixed) or strings (dynamic axes)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}[{','.join(str(d) for d in self.shape)}]"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry (see the module docstring)."""

    name: str
    role: str
    file: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sha256: str | None = None
    status: str = "exported"
    source_checkpoint: str = ""
    license: str = ""
    export_command: str = ""
    tiny_random: bool = False
    fixture: bool = False
    notes: str = ""
    parity: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    trt_profile: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "role": self.role, "file": self.file}
        if self.sha256:
            d["sha256"] = self.sha256
        d.update({"opset": self.opset, "status": self.status, "source_checkpoint": self.source_checkpoint,
                  "license": self.license, "export_command": self.export_command})
        if self.tiny_random:
            d["tiny_random"] = True
        if self.fixture:
            d["fixture"] = True
        if self.notes:
            d["notes"] = self.notes
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        if self.parity:
            d["parity"] = dict(self.parity)
        if self.preprocess:
            d["preprocess"] = dict(self.preprocess)
        if self.trt_profile:
            d["trt_profile"] = {k: dict(v) for k, v in self.trt_profile.items()}
        if self.training:
            d["training"] = dict(self.training)
        return d


@dataclass(frozen=True)
class Manifest:
    """All entries of one manifest file; ``path`` is where it was read from (files are relative to
    its folder unless the engine is given another models folder)."""

    models: tuple[ModelSpec, ...]
    path: Path | None = None
    header: str = ""

    def get(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.models) or "none"
        raise InvalidInput(f"model '{name}' is not in the manifest {self.path or ''} (known: {known})")

    def by_role(self, role: str) -> list[ModelSpec]:
        return [m for m in self.models if m.role == role]

    def names(self) -> list[str]:
        return [m.name for m in self.models]


def _tensor(d: Any, where: str) -> TensorSpec:
    if not isinstance(d, dict) or not {"name", "dtype", "shape"} <= set(d):
        raise InvalidInput(f"{where}: each input/output needs name, dtype and shape")
    if d["dtype"] not in DTYPES:
        raise InvalidInput(f"{where}: dtype '{d['dtype']}' is not one of {', '.join(DTYPES)}")
    shape = d["shape"]
    if not isinstance(shape, list) or not all(isinstance(s, (int, str)) and not isinstance(s, bool) for s in shape):
        raise InvalidInput(f"{where}: shape must be a list of ints (fixed) and strings (dynamic), got {shape!r}")
    return TensorSpec(str(d["name"]), str(d["dtype"]), tuple(shape))


def spec_from_dict(d: dict[str, Any], where: str = "manifest") -> ModelSpec:
    """Validate one ``[[model]]`` table; every problem is an ``InvalidInput`` naming the key."""
    for key in ("name", "role", "file", "opset", "inputs", "outputs"):
        if key not in d:
            raise InvalidInput(f"{where}: model entry {d.get('name', '?')!r} lacks '{key}'")
    name = str(d["name"])
    w = f"{where} [{name}]"
    if d["role"] not in ROLES:
        raise InvalidInput(f"{w}: role '{d['role']}' is not one of {', '.join(ROLES)}")
    sha = d.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise InvalidInput(f"{w}: sha256 must be 64 lowercase hex digits, got {sha!r}")
    if not isinstance(d["opset"], int):
        raise InvalidInput(f"{w}: opset must be an integer")
    prof = d.get("trt_profile", {})
    if not isinstance(prof, dict):
        raise InvalidInput(f"{w}: trt_profile must be a table")
    for level in prof:
        if level not in ("min", "opt", "max"):
            raise InvalidInput(f"{w}: trt_profile keys are min/opt/max, got '{level}'")
    return ModelSpec(
        name=name, role=str(d["role"]), file=str(d["file"]), opset=int(d["opset"]),
        inputs=tuple(_tensor(t, f"{w} input") for t in d["inputs"]),
        outputs=tuple(_tensor(t, f"{w} output") for t in d["outputs"]),
        sha256=sha, status=str(d.get("status", "exported")),
        source_checkpoint=str(d.get("source_checkpoint", "")), license=str(d.get("license", "")),
        export_command=str(d.get("export_command", "")), tiny_random=bool(d.get("tiny_random", False)),
        fixture=bool(d.get("fixture", False)), notes=str(d.get("notes", "")),
        parity=dict(d.get("parity", {})), preprocess=dict(d.get("preprocess", {})),
        trt_profile={k: {n: list(v) for n, v in dict(p).items()} for k, p in prof.items()},
        training=dict(d.get("training", {})),
    )


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file (``InvalidInput`` naming the file and key on any problem)."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"model manifest not found: {p}")
    try:
        with p.open("rb") as f:
            data = _toml.load(f)
    except _toml.TOMLDecodeError as exc:
        raise InvalidInput(f"{p}: not valid TOML ({exc})") from None
    if data.get("schema") != SCHEMA_VERSION:
        raise InvalidInput(f"{p}: 'schema' must be {SCHEMA_VERSION}, got {data.get('schema')!r}")
    models = tuple(spec_from_dict(m, str(p)) for m in data.get("model", []))
    names = [m.name for m in models]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InvalidInput(f"{p}: duplicate model names: {', '.join(dup)}")
    return Manifest(models=models, path=p, header=str(data.get("about", "")))


def default_models_dir() -> Path:
    """``$D2F_MODELS_DIR`` if set, else the repository's ``exported_models/`` (editable install)."""
    env = os.environ.get("D2F_MODELS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "exported_models"


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# ---- writing (used by export_tools; a tiny TOML emitter for this fixed schema) -------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"cannot write non-finite float {v} to the manifest")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to the manifest")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def manifest_to_toml(models: list[ModelSpec] | tuple[ModelSpec, ...], header: str = "") -> str:
    """Serialise entries so that ``load_manifest`` reads back the same specs."""
    lines = [f"schema = {SCHEMA_VERSION}"]
    if header:
        lines.append(f"about = {_toml_value(header)}")
    lines.append("")
    for m in models:
        d = m.to_dict()
        lines.append("[[model]]")
        for k, v in d.items():
            if k in ("inputs", "outputs", "parity", "preprocess", "trt_profile", "training"):
                continue
            lines.append(f"{_key(k)} = {_toml_value(v)}")
        for sub in ("parity", "preprocess", "trt_profile", "training"):
            if sub in d:
                lines.append(f"[model.{sub}]")
                for k, v in d[sub].items():
                    lines.append(f"{_key(k)} = {_toml_value(v)}")
        for sub in ("inputs", "outputs"):
            for t in d[sub]:
                lines.append(f"[[model.{sub}]]")
                lines.append(f"name = {_toml_value(t['name'])}")
                lines.append(f"dtype = {_toml_value(t['dtype'])}")
                lines.append(f"shape = {_toml_value(t['shape'])}")
        lines.append("")
    return "\n".join(lines)


def write_manifest(path: str | Path, models: list[ModelSpec] | tuple[ModelSpec, ...], header: str = "") -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a manifest."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(manifest_to_toml(models, header))
    tmp.replace(p)
    return p


def upsert_model(path: str | Path, spec: ModelSpec, header: str = "") -> Manifest:
    """Add ``spec`` to the manifest at ``path`` (created if absent), replacing an entry of the same name."""
    p = Path(path)
    if p.is_file():
        old = load_manifest(p)
        models = [m for m in old.models if m.name != spec.name]
        header = header or old.header
    else:
        models = []
    models.append(spec)
    write_manifest(p, models, header)
    return load_manifest(p)
