"""The perceive + flow stage as the robot runs it: (I0, D0, camera, object prompt, RGB video)
-> ``ObjectFlow``, with the configured perception filling in whatever was not given.

    video frame 0 vs I0 -----------------------------> refuse another scene / a moved camera
    box given?        else detector(I0, object prompt) -> box
    video depth given? else video-depth model(video)   -> relative depth
    segmenter + tracker (configured) -> extract_flow    -> ObjectFlow
    thumb given?      else hand backend(video)          -> thumb_px [T,2] (or None)

Used by ``dream2flow flow``, ``pipeline.run_task`` (the service) and the simulated episodes, so
every path perceives the same way. Each given input is an explicit override, recorded as such
(``given_box``, ``given_video_depth``, ``given_thumb``) in the flow's ``meta["backends"]``, next to
the backends that ran and the perception configuration (``meta["perception"]``). A role needed
but without a backend is ``NotReady`` before anything is computed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from dream2flow.errors import InvalidInput, PerceptionFailed
from dream2flow.flow.extract import FlowConfig, FlowResult, check_inputs, extract_flow
from dream2flow.perception.protocols import VideoDepth, validate_box
from dream2flow.types import RGBD, Video

if TYPE_CHECKING:
    from dream2flow.perception.factory import Perception
    from dream2flow.video.fit import Fit
    from dream2flow.video.first_frame import FirstFrameCheck

GIVEN_BOX = "given_box"
GIVEN_THUMB = "given_thumb"


@dataclass
class PerceivedFlow:
    """``result``: the flow stage's ``FlowResult``; ``box`` (x0,y0,x1,y1) px in I0 and where it came
    from (``box_source``: ``given_box`` or the detector's name; ``box_score`` its score);
    ``thumb_px`` [T,2] px (NaN where unseen) or None; ``first_frame``: the video check."""

    result: FlowResult
    box: tuple[float, float, float, float]
    box_source: str
    box_score: float | None
    thumb_px: np.ndarray | None
    thumb_source: str | None
    first_frame: "FirstFrameCheck | None"
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def flow(self) -> Any:
        return self.result.flow


class _MaskedVideoDepth:
    """A ``VideoDepth`` whose output is NaN outside the video's content (letterbox padding)."""

    def __init__(self, inner: VideoDepth, valid: np.ndarray) -> None:
        self.inner = inner
        self.valid = valid
        self.name = inner.name

    def __call__(self, video: Any) -> np.ndarray:
        d = np.array(self.inner(video), dtype=np.float32, copy=True)
        d[:, ~self.valid] = np.nan
        return d


def detect_box(perception: "Perception", rgb: np.ndarray, prompt: str) -> tuple[tuple[float, float, float, float], float, str]:
    """The best usable box of ``prompt`` in ``rgb`` from the configured detector -> (box, score,
    detector name): the highest-scoring detection that is a valid box (at least 4 px a side,
    inside the image). ``NotReady`` without a detector; ``PerceptionFailed`` when it finds nothing
    usable."""
    det = perception.require("detector")
    text = (prompt or "").strip()
    if not text:
        raise InvalidInput("no box and no object prompt: give the object's box or an object prompt for the detector")
    found = det(rgb, text)
    if len(found.scores) == 0:
        raise PerceptionFailed(f"detector {det.name} found no '{text}' in I0")
    H, W = rgb.shape[:2]
    why = ""
    for b, score in zip(found.boxes, found.scores):
        try:
            return validate_box(tuple(float(v) for v in b), W, H), float(score), det.name
        except InvalidInput as exc:
            why = why or exc.message
    raise PerceptionFailed(f"detector {det.name}: none of its {len(found.scores)} boxes for '{text}' is usable "
                           f"(best: {why})")


def perceive_flow(video: Video, rgbd: RGBD, *, perception: "Perception", box: Any = None, prompt: str = "",
                  video_depth: VideoDepth | np.ndarray | None = None, thumb_px: np.ndarray | None = None,
                  num_points: int = 256, seed: int = 0, fit: "Fit | None" = None, check_first_frame: bool = True,
                  find_thumb: bool = True, config: FlowConfig | None = None,
                  progress: Callable[[str, float], None] | None = None,
                  on_mask: Callable[[np.ndarray], None] | None = None, mask: Any = None,
                  detection: Any = None) -> PerceivedFlow:
    """See the module docstring. ``box``, ``video_depth``, ``thumb_px``: overrides (None = perceive
    it); ``prompt``: the object prompt (needed without a box); ``fit``: how the video was fitted to
    the camera (``video.fit``; its padding is excluded from the checks and the depth); ``on_mask``,
    ``mask`` (I0's segmentation by ``perception.segmenter(seed)``, made beforehand): see ``extract_flow``;
    ``detection``: without a box, ``detect_box(perception, rgbd.rgb, prompt)``'s result (box, score,
    detector) made beforehand, or a future of it (``flow.early.detect_early``; its error is raised here,
    where the detector would have run)."""
    from dream2flow.video.first_frame import check_first_frame as check_ff

    timings: dict[str, float] = {}
    # Everything this run will need must exist before anything is computed.
    if box is None:
        if not (prompt or "").strip():
            raise InvalidInput("no box and no object prompt: give the object's box (--box) or its name (--prompt)")
        perception.ensure("detector")
    if video_depth is None:
        perception.ensure("video_depth")
    check_inputs(video, rgbd)

    ff = None
    if check_first_frame:
        t0 = time.perf_counter()
        valid_rect = fit.valid_rect() if fit is not None and fit.mode == "letterbox" else None
        ff = check_ff(video.frames[0], rgbd.rgb, valid_rect=valid_rect)
        timings["first_frame"] = time.perf_counter() - t0

    W, H = video.size_wh
    if box is not None:
        box_f = validate_box(box, W, H)
        box_source, box_score = GIVEN_BOX, None
    else:
        t0 = time.perf_counter()
        if detection is None:
            box_f, box_score, box_source = detect_box(perception, rgbd.rgb, prompt)
        else:  # detected before the video was there: wait for it
            box_f, box_score, box_source = detection.result() if hasattr(detection, "result") else detection
        timings["detect"] = time.perf_counter() - t0

    if video_depth is None:
        vd: Any = perception.require("video_depth")
    elif isinstance(video_depth, np.ndarray):
        from dream2flow.perception.classical import GivenVideoDepth

        d = video_depth
        if fit is not None and not fit.identity and d.ndim == 3 and (d.shape[2], d.shape[1]) != (W, H):
            d = fit.apply_depth(d)
        vd = GivenVideoDepth(d)
    else:
        vd = video_depth
    if fit is not None and fit.mode == "letterbox":
        vd = _MaskedVideoDepth(vd, fit.valid_mask())

    result = extract_flow(video, rgbd, box_f, vd, num_points=num_points, seed=seed,
                          segmenter=perception.segmenter(seed), tracker=perception.tracker(), config=config,
                          progress=progress, on_mask=on_mask, mask=mask)
    timings.update(result.timings_s)

    thumb_source = None
    if thumb_px is not None:
        thumb = np.asarray(thumb_px, np.float32)
        thumb_source = GIVEN_THUMB
    elif find_thumb and perception.has("hand"):
        t0 = time.perf_counter()
        hand = perception.hand()
        thumb = hand(video)
        thumb = None if thumb is None else np.asarray(thumb, np.float32)
        thumb_source = hand.name
        timings["hand"] = time.perf_counter() - t0
    else:
        thumb = None

    meta = result.flow.meta
    meta["backends"] = {"detector": box_source, **meta.get("backends", {}), "hand": thumb_source}
    meta["box_score"] = box_score
    meta["object_prompt"] = (prompt or "").strip()
    meta["perception"] = perception.describe()
    if ff is not None:
        meta["first_frame"] = ff.to_dict()
    if fit is not None and not fit.identity:
        meta["fit"] = fit.to_dict(rgbd.camera.K)
    if thumb is not None:
        meta["thumb_px"] = [None if not np.isfinite(p).all() else [round(float(p[0]), 3), round(float(p[1]), 3)]
                            for p in thumb]
    return PerceivedFlow(result, box_f, box_source, box_score, thumb, thumb_source, ff, timings)


def thumb_from_meta(meta: dict[str, Any]) -> np.ndarray | None:
    """The thumb track a flow recorded (``meta["thumb_px"]``) -> [T,2] float32 with NaN rows, or None."""
    rows = meta.get("thumb_px")
    if not rows:
        return None
    out = np.full((len(rows), 2), np.nan, np.float32)
    for t, r in enumerate(rows):
        if r is not None:
            out[t] = r
    return None if np.isnan(out).all() else out


__all__ = ["PerceivedFlow", "perceive_flow", "detect_box", "thumb_from_meta", "GIVEN_BOX", "GIVEN_THUMB"]
