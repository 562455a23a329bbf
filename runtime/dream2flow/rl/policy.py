"""Policies as ONNX files: the export (an MLP's weights + the observation normalisation -> one
ONNX graph) and the runtime side (the engine runs it; ``PolicySpec`` says what it expects).

Graph (opset 17): ``obs`` float32 [batch, OBS_DIM] -> ``clip((obs - mean) / sqrt(var + eps), ±clip)``
-> (Gemm -> Relu) x hidden layers -> Gemm -> Tanh -> ``action`` float32 [batch, 4]. The
normalisation is the training run's running statistics (VecNormalize), frozen into the file, so
the caller passes raw observations. The tanh is the deterministic action of a squashed-Gaussian
SAC actor (its mean).

Files: ``<name>.onnx`` plus ``<name>.spec.json`` (its manifest entry: sha256, I/O, and the
environment it was trained for under ``preprocess``). ``dream2flow rl eval --policy FILE`` reads
the pair; the shipped policies are entries of ``exported_models/manifest.toml`` (role ``policy``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.perception.manifest import Manifest, ModelSpec, TensorSpec, sha256_file, spec_from_dict
from dream2flow.rl.observation import OBS_DIM, OBS_NAMES

ROLE = "policy"
OPSET = 17
ACTION_DIM = 4


@dataclass
class MlpWeights:
    """A tanh-squashed MLP actor with frozen observation normalisation. ``layers``: (W [out,in],
    b [out]) per layer, ReLU between them, tanh after the last."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_clip: float = 10.0
    obs_eps: float = 1e-8

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """NumPy reference of the graph ([batch, OBS_DIM] -> [batch, 4], float64)."""
        x = np.clip((np.asarray(obs, np.float64) - self.obs_mean) / np.sqrt(self.obs_var + self.obs_eps),
                    -self.obs_clip, self.obs_clip)
        for i, (W, b) in enumerate(self.layers):
            x = x @ W.T + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return np.tanh(x)


def export_onnx(weights: MlpWeights, path: str | Path) -> Path:
    """Write the policy graph (module docstring) to ``path``; needs the ``onnx`` package."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    inits = [numpy_helper.from_array(np.asarray(weights.obs_mean, f32).reshape(1, -1), "obs_mean"),
             numpy_helper.from_array(np.sqrt(np.asarray(weights.obs_var, np.float64) + weights.obs_eps).astype(f32)
                                     .reshape(1, -1), "obs_std"),
             numpy_helper.from_array(np.array(-weights.obs_clip, f32), "clip_lo"),
             numpy_helper.from_array(np.array(weights.obs_clip, f32), "clip_hi")]
    nodes = [helper.make_node("Sub", ["obs", "obs_mean"], ["centred"]),
             helper.make_node("Div", ["centred", "obs_std"], ["scaled"]),
             helper.make_node("Clip", ["scaled", "clip_lo", "clip_hi"], ["x0"])]
    x = "x0"
    for i, (W, b) in enumerate(weights.layers):
        inits += [numpy_helper.from_array(np.asarray(W, f32), f"W{i}"), numpy_helper.from_array(np.asarray(b, f32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [f"g{i}"], transB=1))
        x = f"g{i}"
        if i < len(weights.layers) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"h{i}"]))
            x = f"h{i}"
    nodes.append(helper.make_node("Tanh", [x], ["action"]))
    graph = helper.make_graph(nodes, "door_policy",
                              [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", OBS_DIM])],
                              [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", ACTION_DIM])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dream2flow.rl")
    model.ir_version = 8
    onnx.checker.check_model(model)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.SerializeToString())
    return out


def policy_spec(name: str, file: str, sha256: str, *, env: dict[str, Any], source: str, notes: str = "",
                parity: dict[str, Any] | None = None, export_command: str = "") -> ModelSpec:
    """The manifest entry of a policy file. ``env``: what the policy was trained for
    (embodiment, reward, rates, horizon, scene seed, controller) -> ``preprocess``."""
    pre = {k: v for k, v in env.items() if isinstance(v, (int, float, str, bool, list))}
    pre["obs_names"] = list(OBS_NAMES)
    return ModelSpec(name=name, role=ROLE, file=file, opset=OPSET, sha256=sha256,
                     inputs=(TensorSpec("obs", "float32", ("batch", OBS_DIM)),),
                     outputs=(TensorSpec("action", "float32", ("batch", ACTION_DIM)),),
                     status="exported", source_checkpoint=source, license="Apache-2.0",
                     export_command=export_command, notes=notes, parity=dict(parity or {}), preprocess=pre)


def write_spec(spec: ModelSpec, path: str | Path) -> Path:
    p = Path(path)
    p.write_text(json.dumps(spec.to_dict(), indent=1, sort_keys=True) + "\n")
    return p


def spec_path(onnx_path: str | Path) -> Path:
    p = Path(onnx_path)
    return p.with_name(p.stem + ".spec.json")


def load_spec_file(path: str | Path) -> ModelSpec:
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read the policy description {p}: {exc}") from None
    return spec_from_dict(d, str(p))


@dataclass
class PolicyHandle:
    """A loaded policy: ``act(obs [OBS_DIM]) -> action [4]`` through the engine's session."""

    spec: ModelSpec
    session: Any
    env: dict[str, Any] = field(default_factory=dict)

    def act(self, obs: np.ndarray) -> np.ndarray:
        out = self.session.run({"obs": np.asarray(obs, np.float32).reshape(1, OBS_DIM)})
        return np.asarray(out["action"][0], dtype=np.float64)


def load_policy(name_or_file: str, *, models_dir: str | Path | None = None, engine_config: Any = None) -> PolicyHandle:
    """A manifest policy by name (role ``policy``), or an ``.onnx`` file with its ``.spec.json``;
    loaded by the runtime's ``InferenceEngine`` (sha256 and I/O checked against the entry)."""
    from dream2flow.perception.engine import EngineConfig, InferenceEngine

    cfg = engine_config or EngineConfig.from_env(providers=("cpu",))
    p = Path(name_or_file)
    if name_or_file.endswith(".onnx") or p.is_file():
        if not p.is_file():
            raise InvalidInput(f"policy file not found: {p}")
        sp = spec_path(p)
        if not sp.is_file():
            raise InvalidInput(f"{p} has no {sp.name} beside it (written by 'dream2flow rl train'): it says what the "
                               f"policy expects and its sha256")
        spec = load_spec_file(sp)
        spec = ModelSpec(**{**spec.__dict__, "file": p.name})
        engine = InferenceEngine(Manifest(models=(spec,), path=sp), models_dir=p.parent, config=cfg)
    else:
        engine = InferenceEngine(models_dir=models_dir, config=cfg)
        spec = engine.manifest.get(name_or_file)
    if spec.role != ROLE:
        raise InvalidInput(f"model '{spec.name}' has role '{spec.role}', not '{ROLE}'")
    session = engine.session(spec.name)
    return PolicyHandle(spec=spec, session=session, env=dict(spec.preprocess))


def file_sha256(path: str | Path) -> str:
    return sha256_file(path)
