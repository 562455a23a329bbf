"""The one perception factory: ``--perception SPEC`` -> the backends of every role.

Nothing else in the runtime constructs perception backends (DESIGN.md, "one factory per kind of
part"). ``load_perception(spec)`` reads the configuration (``perception.config``) and returns a
``Perception``: it decides per role which backend will run *without loading anything*
(``plan(role)``, ``backends()``: what reports record) and builds a backend on first use, so a
command that is given a box never loads the detector.

Resolution per role (``use = "model"`` / ``"model:NAME"``): the manifest entry (the first of the
role, or NAME) whose ONNX file exists -> the model wrapper (named ``onnx:<manifest name>``). A
model that is not there (no entry, or its file not exported) falls back to the role's classical
backend when one exists and ``fallback`` allows it, and the plan's ``note`` says why; otherwise
the role has no backend and ``require(role)`` raises ``NotReady`` naming the role and the fix.
A file that is there but does not match the manifest (sha256, I/O) is an error, never a fallback.

Hand: MediaPipe Hands (``hand_palm_detector`` + ``hand_landmarks`` entries) when the manifest has
it, else ViTPose (``hand_keypoints``, cropping with the configured detector model if any).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput, NotReady
from dream2flow.perception.config import CLASSICAL_ROLES, ROLES, PerceptionConfig, load_perception_config

# role -> manifest roles of the model(s) it needs (the first names the backend)
MODEL_ROLES: dict[str, tuple[str, ...]] = {
    "detector": ("detector",),
    "segmenter": ("segmenter_encoder", "segmenter_decoder"),
    "tracker": ("point_tracker",),
    "video_depth": ("video_depth",),
}
SEGMENTER_SINGLE = ("segmenter",)  # one box-prompted model (the sim-trained stand-in)
HAND_MEDIAPIPE = ("hand_palm_detector", "hand_landmarks")
HAND_VITPOSE = ("hand_keypoints",)
MEDIAPIPE_NAME = "mediapipe_hands"
# constructor arguments the factory fills itself (never options from the file)
_RESERVED = {"self", "engine", "model", "encoder", "decoder", "detector", "seed", "palm_model", "landmark_model"}


@dataclass(frozen=True)
class RolePlan:
    """What serves one role: ``kind`` ``model`` | ``classical`` | ``none``; ``name`` the backend's
    name (``onnx:<model>``, ``classical_lk``, ...; None for none); ``models`` the manifest entries it
    loads; ``note`` why (a fallback's reason, what is missing)."""

    role: str
    kind: str
    name: str | None
    models: tuple[str, ...] = ()
    note: str = ""
    variant: str = ""  # hand models: "mediapipe" | "vitpose"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "models": list(self.models), "note": self.note}


def _classical_cls(role: str) -> Any:
    if role == "segmenter":
        from dream2flow.perception.rgbd_segmenter import RGBDSegmenter  # colour + D0 (GrabCut without depth)

        return RGBDSegmenter
    if role == "tracker":
        from dream2flow.perception.classical import ClassicalLKTracker

        return ClassicalLKTracker
    raise KeyError(role)  # pragma: no cover - CLASSICAL_ROLES only


def is_sim_stand_in(spec: Any) -> bool:
    """A model trained here on the simulator (``perception.sim_models``): used only when named."""
    from dream2flow.perception.sim_models import WRAPPERS

    return str(spec.preprocess.get("wrapper", "")) in WRAPPERS


def _model_cls(role: str, spec: Any) -> Any:
    """The wrapper class of a role's (first) model: the sim-trained stand-ins by their
    ``preprocess.wrapper``, else the foundation model's."""
    wrapper = str(spec.preprocess.get("wrapper", ""))
    if wrapper:
        from dream2flow.perception import sim_models

        by_wrapper = {"sim_detector": sim_models.SimDetector, "sim_segmenter": sim_models.SimBoxSegmenter,
                      "sim_depth": sim_models.SimVideoDepth}
        if wrapper in by_wrapper:
            return by_wrapper[wrapper]
    if role == "detector":
        from dream2flow.perception.onnx_detector import OnnxGroundingDino

        return OnnxGroundingDino
    if role == "segmenter":
        from dream2flow.perception.onnx_segmenter import OnnxSam2Segmenter

        return OnnxSam2Segmenter
    if role == "tracker":
        from dream2flow.perception.onnx_tracker import OnnxCoTracker

        return OnnxCoTracker
    if role == "video_depth":
        from dream2flow.perception.onnx_depth import OnnxDepthAnything

        return OnnxDepthAnything
    raise KeyError(role)  # pragma: no cover


def _check_options(role: str, cls: Any, options: dict[str, Any], source: str) -> dict[str, Any]:
    """The role's options must be keyword arguments of the backend class that runs."""
    if not options:
        return {}
    params = inspect.signature(cls).parameters
    allowed = sorted(n for n, p in params.items() if n not in _RESERVED and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise InvalidInput(f"{source} [{role}]: option(s) {', '.join(bad)} do not apply to {cls.__name__} "
                           f"(its options: {', '.join(allowed) or 'none'})")
    return dict(options)


class Perception:
    """The backends of one configuration. Build with ``load_perception``."""

    def __init__(self, config: PerceptionConfig) -> None:
        self.config = config
        self._manifest: Any = None
        self._manifest_note = ""
        self._manifest_loaded = False
        self._engine: Any = None
        self._plans: dict[str, RolePlan] = {}
        self._built: dict[str, Any] = {}
        self._segmenters: dict[int, Any] = {}

    # ---- the models folder ---------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        from dream2flow.perception.manifest import default_models_dir

        return Path(self.config.models_dir) if self.config.models_dir else default_models_dir()

    @property
    def manifest(self) -> Any:
        """The manifest of the models folder, or None (then every model role is missing)."""
        if not self._manifest_loaded:
            self._manifest_loaded = True
            path = self.models_dir / "manifest.toml"
            if path.is_file():
                from dream2flow.perception.manifest import load_manifest

                self._manifest = load_manifest(path)
            else:
                self._manifest_note = f"no model manifest at {path}"
        return self._manifest

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from dream2flow.perception.engine import EngineConfig, InferenceEngine

            if self.manifest is None:
                raise NotReady(self._manifest_note)
            # The file's [engine] options, under the operator's environment overrides
            # (D2F_ORT_PROVIDERS, D2F_TRT_CACHE, D2F_TRT_FP16: EngineConfig.from_env).
            env_set = {"providers": "D2F_ORT_PROVIDERS", "trt_cache_dir": "D2F_TRT_CACHE", "trt_fp16": "D2F_TRT_FP16"}
            kw = {k: v for k, v in self.config.engine.items() if not os.environ.get(env_set.get(k, ""), "")}
            self._engine = InferenceEngine(self.manifest, models_dir=self.models_dir, config=EngineConfig.from_env(**kw))
        return self._engine

    def _file_of(self, spec: Any) -> Path:
        p = Path(spec.file)
        return p if p.is_absolute() else self.models_dir / p

    def _missing(self, spec: Any) -> str | None:
        """Why the model's file cannot be used (None when it is there)."""
        path = self._file_of(spec)
        if path.is_file():
            return None
        how = f" (make it with: {spec.export_command})" if spec.export_command else ""
        return f"model '{spec.name}' is not exported here: {path} does not exist{how}"

    # ---- planning (no loading) ----------------------------------------------------------
    def plan(self, role: str) -> RolePlan:
        if role not in ROLES:
            raise InvalidInput(f"unknown perception role {role!r} (roles: {', '.join(ROLES)})")
        if role not in self._plans:
            self._plans[role] = self._plan(role)
        return self._plans[role]

    def _plan(self, role: str) -> RolePlan:
        choice = self.config.role(role)
        if choice.use == "none":
            return RolePlan(role, "none", None, note=f"{role} is configured as none ({self.config.source})")
        if choice.use == "classical":
            cls = _classical_cls(role)
            return RolePlan(role, "classical", cls.name, note="configured as classical")
        found, why = self._find_models(role, choice.model)
        if found is not None:
            models, variant = found
            if role == "hand" and variant == "mediapipe":
                name = MEDIAPIPE_NAME
            else:
                name = f"onnx:{models[0]}"
            return RolePlan(role, "model", name, models, variant=variant)
        if role in CLASSICAL_ROLES and choice.fallback:
            cls = _classical_cls(role)
            return RolePlan(role, "classical", cls.name, note=f"fallback: {why}")
        return RolePlan(role, "none", None, note=why)

    def _find_models(self, role: str, name: str | None) -> tuple[tuple[tuple[str, ...], str] | None, str]:
        """((manifest names, variant), "") when the role's model files are there, else (None, why)."""
        m = self.manifest
        if m is None:
            return None, self._manifest_note
        if role == "hand":
            options = (("mediapipe", HAND_MEDIAPIPE), ("vitpose", HAND_VITPOSE))
        elif role == "segmenter":
            options = (("", MODEL_ROLES[role]), ("single", SEGMENTER_SINGLE))
        else:
            options = (("", MODEL_ROLES[role]),)
        if name is not None:
            spec = m.get(name)  # InvalidInput names the known models
            match = [(v, rs) for v, rs in options if spec.role in rs]
            if not match:
                want = " or ".join(rs[0] for _, rs in options)
                raise InvalidInput(f"{self.config.source} [{role}]: model '{name}' has role '{spec.role}', "
                                   f"a {role} needs a '{want}' model")
            options = tuple(match)
        whys: list[str] = []
        for variant, mroles in options:
            specs = []
            for i, mrole in enumerate(mroles):
                spec = None
                if name is not None and m.get(name).role == mrole:
                    spec = m.get(name)
                elif mrole == "segmenter_decoder" and specs and specs[0].preprocess.get("decoder"):
                    spec = m.get(str(specs[0].preprocess["decoder"]))
                else:
                    # an unnamed choice never picks a sim-trained stand-in: those are named
                    # (hw/perception.sim.toml), so "model" on a robot means the foundation model
                    cands = [c for c in m.by_role(mrole) if not is_sim_stand_in(c)]
                    spec = cands[0] if cands else None
                if spec is None:
                    specs = []
                    whys.append(f"the manifest {m.path} has no '{mrole}' model")
                    break
                specs.append(spec)
            if not specs:
                continue
            missing = [w for w in (self._missing(s) for s in specs) if w]
            if missing:
                whys.append("; ".join(missing))
                continue
            # a named landmark/palm model: the pair is looked up by role (one MediaPipe set per manifest)
            return (tuple(s.name for s in specs), variant), ""
        return None, "; ".join(whys) or f"no {role} model"

    def backends(self) -> dict[str, str | None]:
        """role -> the name of the backend that will run (None: no backend)."""
        return {r: self.plan(r).name for r in ROLES}

    def has(self, role: str) -> bool:
        return self.plan(role).kind != "none"

    def describe(self) -> dict[str, Any]:
        """For reports and ``meta``: the configuration, each role's backend and why."""
        plans = {r: self.plan(r) for r in ROLES}
        return {"config": self.config.source, "backends": {r: p.name for r, p in plans.items()},
                "notes": {r: p.note for r, p in plans.items() if p.note and p.kind != "model"}}

    # ---- building ------------------------------------------------------------------------
    def _options(self, role: str, cls: Any) -> dict[str, Any]:
        return _check_options(role, cls, self.config.role(role).options, self.config.source)

    def _build(self, role: str) -> Any:
        p = self.plan(role)
        if p.kind == "none":
            return None
        if p.kind == "classical":
            cls = _classical_cls(role)
            return cls(**self._options(role, cls))
        if role in MODEL_ROLES:
            cls = _model_cls(role, self.manifest.get(p.models[0]))
            return cls(self.engine, *p.models, **self._options(role, cls))
        if p.variant == "mediapipe":
            from dream2flow.perception.mediapipe_hand import MediaPipeHand as cls

            return cls(self.engine, p.models[0], p.models[1], **self._options(role, cls))
        from dream2flow.perception.onnx_hand import OnnxVitPoseHand as cls

        det = self.detector() if self.plan("detector").kind == "model" else None
        return cls(self.engine, p.models[0], detector=det, **self._options(role, cls))

    def get(self, role: str) -> Any:
        """The role's backend (built on first use) or None. The segmenter: ``segmenter(seed)``."""
        if role == "segmenter":
            return self.segmenter()
        if role not in self._built:
            self._built[role] = self._build(role)
        return self._built[role]

    def detector(self) -> Any:
        return self.get("detector")

    def tracker(self) -> Any:
        return self.get("tracker")

    def video_depth(self) -> Any:
        return self.get("video_depth")

    def hand(self) -> Any:
        return self.get("hand")

    def segmenter(self, seed: int = 0) -> Any:
        """A classical segmenter is seeded (its GMM initialisation); a model ignores the seed."""
        p = self.plan("segmenter")
        if p.kind == "classical":
            seed = int(seed)
            if seed not in self._segmenters:
                cls = _classical_cls("segmenter")
                self._segmenters[seed] = cls(seed=seed, **self._options("segmenter", cls))
            return self._segmenters[seed]
        if "segmenter" not in self._built:
            self._built["segmenter"] = self._build("segmenter")
        return self._built["segmenter"]

    def ensure(self, role: str, *, field: str | None = None) -> None:
        """``NotReady`` naming the role, why it has no backend and the fix (nothing is loaded);
        ``field``: the request field that would have supplied it (the service's BadRequest detail)."""
        p = self.plan(role)
        if p.kind == "none":
            fix = _FIXES.get(role, "configure a model for it")
            raise NotReady(f"no {role.replace('_', '-')} backend ({p.note}): {fix} "
                           f"([{role}] use = \"model\" in the perception configuration, now {self.config.source})",
                           reason="NOT_CONFIGURED", field=field)

    def require(self, role: str) -> Any:
        """The role's backend (built on first use), or ``NotReady`` as ``ensure``."""
        self.ensure(role)
        return self.get(role)


_FIXES = {
    "detector": "give the object's box (--box x0,y0,x1,y1; the service's `box`) or configure a detector model",
    "video_depth": "give the video's relative depth (--video-depth REL.npy; a VIDEO_DEPTH upload to the service) "
                   "or configure a video-depth model",
    "hand": "give the thumb pixel (--thumb-px) or configure a hand model",
}


def load_perception(spec: str | Path | PerceptionConfig | None = None) -> Perception:
    """``--perception SPEC`` (``classical``, ``models``, a TOML file; None = ``hw/perception.toml``)."""
    return Perception(load_perception_config(spec))


def thumb_in_image(hand: Any, image: np.ndarray) -> np.ndarray | None:
    """The thumb tip [2] px in one image, or None: ``hand.thumb_in_image`` when the backend has
    one, else its video call on a one-frame video."""
    f = getattr(hand, "thumb_in_image", None)
    if callable(f):
        out = f(image)
    else:
        track = hand(np.asarray(image)[None])
        out = None if track is None else track[0]
    if out is None:
        return None
    out = np.asarray(out, np.float32).reshape(2)
    return None if not np.isfinite(out).all() else out


__all__ = ["Perception", "RolePlan", "load_perception", "thumb_in_image", "MODEL_ROLES"]
