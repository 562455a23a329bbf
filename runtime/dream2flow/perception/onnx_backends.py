"""Build the ONNX perception backends from a manifest, side by side with the classical ones.

``make_onnx_backends(engine)`` returns whichever of detector / segmenter / tracker / video depth /
hand the manifest has (``None`` for a role without a model, so a caller can fall back to the
classical backend for it, and ``describe()`` says which is which). ``select_backends(kind)`` is
the one switch the pipeline needs: ``"classical"`` or ``"onnx"``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dream2flow.errors import InvalidInput


@dataclass
class OnnxBackends:
    detector: Any = None
    segmenter: Any = None
    tracker: Any = None
    video_depth: Any = None
    hand: Any = None
    engine: Any = None

    def describe(self) -> dict[str, str | None]:
        return {k: getattr(getattr(self, k), "name", None) for k in ("detector", "segmenter", "tracker", "video_depth", "hand")}


def make_onnx_backends(engine: Any, *, roles: tuple[str, ...] | None = None, hand_uses_detector: bool = True) -> OnnxBackends:
    from dream2flow.perception.onnx_depth import OnnxDepthAnything
    from dream2flow.perception.onnx_detector import OnnxGroundingDino
    from dream2flow.perception.onnx_hand import OnnxVitPoseHand
    from dream2flow.perception.onnx_segmenter import OnnxSam2Segmenter
    from dream2flow.perception.onnx_tracker import OnnxCoTracker

    m = engine.manifest
    want = set(roles or ("detector", "segmenter", "tracker", "video_depth", "hand"))
    b = OnnxBackends(engine=engine)
    if "detector" in want and m.by_role("detector"):
        b.detector = OnnxGroundingDino(engine)
    if "segmenter" in want and m.by_role("segmenter_encoder") and m.by_role("segmenter_decoder"):
        b.segmenter = OnnxSam2Segmenter(engine)
    if "tracker" in want and m.by_role("point_tracker"):
        b.tracker = OnnxCoTracker(engine)
    if "video_depth" in want and m.by_role("video_depth"):
        b.video_depth = OnnxDepthAnything(engine)
    if "hand" in want and m.by_role("hand_keypoints"):
        b.hand = OnnxVitPoseHand(engine, detector=b.detector if hand_uses_detector else None)
    return b


def select_backends(kind: str = "classical", *, models_dir: str | Path | None = None, config: Any = None) -> dict[str, Any]:
    """{"segmenter", "tracker", "video_depth"?, ...} for ``extract_flow`` keyword arguments.
    ``classical``: GrabCut + Lucas-Kanade (video depth must then be given). ``onnx``: the manifest's
    models (each missing role falls back to its classical backend, named as such)."""
    from dream2flow.perception.classical import GrabCutSegmenter, LucasKanadeTracker

    if kind == "classical":
        return {"segmenter": GrabCutSegmenter(), "tracker": LucasKanadeTracker()}
    if kind != "onnx":
        raise InvalidInput(f"perception backend must be 'classical' or 'onnx', got {kind!r}")
    from dream2flow.perception.engine import InferenceEngine

    b = make_onnx_backends(InferenceEngine(models_dir=models_dir, config=config))
    out: dict[str, Any] = {"segmenter": b.segmenter or GrabCutSegmenter(), "tracker": b.tracker or LucasKanadeTracker()}
    if b.video_depth is not None:
        out["video_depth"] = b.video_depth
    if b.detector is not None:
        out["detector"] = b.detector
    if b.hand is not None:
        out["hand"] = b.hand
    return out
