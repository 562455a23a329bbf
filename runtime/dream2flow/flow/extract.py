"""The flow stage end to end: video + first RGB-D frame + object box -> ``ObjectFlow``.

    box --segmenter--> mask --sample--> n query points --tracker--> 2D tracks + visibility
    video --video depth--> relative depth --refit per frame on the static scene (drift)-->
          --align to D0 over the mask--> s*, b*
    tracks + calibrated depth --lift--> points_base[T,n,3], visible[T,n] --(filter)--> ObjectFlow

Nothing here knows about the robot; backends are swappable through the perception protocols
and recorded by name in ``ObjectFlow.meta`` with the seed, box, alignment and versions.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from dream2flow.errors import InvalidInput, PerceptionFailed
from dream2flow.flow import MAX_NUM_POINTS
from dream2flow.flow.align import (AlignConfig, Alignment, FrameAlignConfig, FrameAlignment, StaticSceneFitter,
                                   fit_scale_shift, fit_shift_on_mask, fit_static_per_frame)
from dream2flow.flow.anchor import AnchorConfig, anchor_to_d0
from dream2flow.flow.filtering import FilterConfig, filter_flow
from dream2flow.flow.lift import LiftConfig, lift_tracks
from dream2flow.perception.protocols import Box, PointTracker, Segmenter, VideoDepth, validate_box
from dream2flow.types import RGBD, ObjectFlow, Video

if TYPE_CHECKING:
    from jaxtyping import Bool, Float

DEFAULT_NUM_POINTS = 256


@dataclass(frozen=True)
class FlowConfig:
    """Knobs of the flow stage (defaults measured on the synthetic scene; see the report in
    bench/flow_bench.py and tests/test_flow_*.py)."""

    align: AlignConfig = field(default_factory=AlignConfig)
    frame_align: FrameAlignConfig = field(default_factory=FrameAlignConfig)
    lift: LiftConfig = field(default_factory=LiftConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)  # each track's frame-0 depth = D0 (flow.anchor)
    filter: FilterConfig = field(default_factory=FilterConfig)
    erode_px: int = 3                  # query points stay this far inside the mask
    min_visible_frac0: float = 0.1     # fewer lifted points in frame 0 -> PerceptionFailed
    frame_align_while_tracking: bool = True  # a tracker that streams its frames: fit them on a worker meanwhile


@dataclass
class FlowResult:
    """``flow``: the ObjectFlow; ``mask`` [H,W] bool (segmentation of I0); ``tracks_px`` [T,n,2]
    and ``visible_2d`` [T,n] (tracker output, before depth checks); ``alignment``;
    ``timings_s``: seconds per stage (not part of the flow's provenance: not deterministic)."""

    flow: ObjectFlow
    mask: Bool[np.ndarray, "H W"]
    tracks_px: Float[np.ndarray, "T n 2"]
    visible_2d: Bool[np.ndarray, "T n"]
    alignment: Alignment
    timings_s: dict[str, float] = field(default_factory=dict)


def _versions() -> dict[str, str]:
    import cv2

    from dream2flow import __version__

    return {"dream2flow": __version__, "opencv": cv2.__version__, "numpy": np.__version__}


class _StaticFitWhileTracking:
    """The per-frame static-scene fit (``StaticSceneFitter``) on a worker thread, fed frame by frame by a
    tracker that streams its final frames (``ClassicalLKTracker(on_frame=...)``), so that it runs while
    the tracker goes on rather than after it (issue 21). Every frame's fit is the one
    ``fit_static_per_frame`` makes from the returned tracks: ``finish`` checks that the streamed tracks
    are those (else None: the caller fits them in a row)."""

    def __init__(self, rel: np.ndarray, depth_m: np.ndarray, mask: np.ndarray, config: FrameAlignConfig,
                 seed: int, num_frames: int, num_points: int) -> None:
        self._args = (rel, depth_m, mask, config, seed)
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self.tracks = np.full((num_frames, num_points, 2), np.nan, np.float32)
        self.visible = np.zeros((num_frames, num_points), bool)
        self._seen = np.zeros(num_frames, bool)
        self._fitted = np.zeros(num_frames, bool)  # written by the worker only
        self._twice = False
        self._fitter: StaticSceneFitter | None = None
        self._error: BaseException | None = None
        self._stop = False
        self.busy_s = 0.0  # seconds the worker spent fitting
        self._thread = threading.Thread(target=self._run, name="d2f-frame-align", daemon=True)
        self._thread.start()

    def on_frame(self, t: int, tracks_t: np.ndarray, visible_t: np.ndarray) -> None:
        if not (0 <= t < len(self._seen) and tracks_t.shape == self.tracks.shape[1:]
                and visible_t.shape == self.visible.shape[1:]):
            return
        if self._seen[t]:  # a frame streamed twice was not final: not trusted (finish says so)
            self._twice = True
            return
        self.tracks[t], self.visible[t], self._seen[t] = tracks_t, visible_t, True
        self._todo.put(t)

    def _run(self) -> None:
        rel, depth_m, mask, config, seed = self._args
        while True:
            t = self._todo.get()
            if t is None:
                return
            if self._stop or self._error is not None:
                continue
            t0 = time.perf_counter()
            try:
                if t == 0:
                    self._fitter = StaticSceneFitter(rel, depth_m, mask, self.tracks[0], self.visible[0],
                                                     config=config, seed=seed)
                    self._fitted[0] = True
                elif self._fitter is not None:  # frames streamed before frame 0 stay unfitted (not trusted)
                    self._fitter.fit_frame(t, self.tracks[t], self.visible[t])
                    self._fitted[t] = True
            except BaseException as exc:  # noqa: BLE001 (raised by finish(), in the caller's thread)
                self._error = exc
            self.busy_s += time.perf_counter() - t0

    def cancel(self) -> None:
        self._stop = True
        self._todo.put(None)
        self._thread.join()

    def finish(self, tracks_px: np.ndarray, visible_2d: np.ndarray) -> FrameAlignment | None:
        self._todo.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        if (self._fitter is None or self._twice or not self._fitted.all()
                or not np.array_equal(self.tracks, tracks_px, equal_nan=True) or not np.array_equal(self.visible, visible_2d)):
            return None
        return self._fitter.result()


def check_inputs(video: Video, rgbd: RGBD) -> None:
    """Size/validity checks shared by the CLI and the pipeline -> ``InvalidInput``."""
    T = video.num_frames
    if T < 2:
        raise InvalidInput(f"the video has {T} frame(s); a flow needs at least 2")
    W, H = video.size_wh
    if (W, H) != (rgbd.camera.width, rgbd.camera.height):
        raise InvalidInput(f"video is {W}x{H} but the camera (and I0/D0) is {rgbd.camera.width}x{rgbd.camera.height}")
    d = rgbd.depth_m
    if not (np.isfinite(d) & (d > 0)).any():
        raise InvalidInput("D0 has no valid depth (all zero, negative or NaN)")


def extract_flow(video: Video, rgbd: RGBD, box: Box, video_depth: VideoDepth | np.ndarray, *,
                 num_points: int = DEFAULT_NUM_POINTS, seed: int = 0, segmenter: Segmenter | None = None,
                 tracker: PointTracker | None = None, config: FlowConfig | None = None,
                 progress: Callable[[str, float], None] | None = None,
                 on_mask: Callable[[np.ndarray], None] | None = None, mask: Any = None) -> FlowResult:
    """Video (frame 0 ~ I0) + RGB-D of I0 + object box (x0,y0,x1,y1 px in I0) + video depth (a
    ``VideoDepth`` or a relative depth array [T,H,W]) -> ``FlowResult``.

    Defaults: ``RGBDSegmenter(seed=seed)`` (colour + D0), ``ClassicalLKTracker()``,
    ``GivenVideoDepth`` for an array. Raises ``InvalidInput`` (sizes, box, empty depth), ``PerceptionFailed`` (empty mask,
    nothing tracked), ``AlignmentFailed`` (depth fit degenerate or poor). ``progress(phase,
    fraction)`` is called as each perception role starts ("video_depth", "segment", "sample",
    "track", "align", "lift", "filter"); it may raise to stop the extraction (a cancel).
    ``on_mask(mask)`` is called with the object mask [H,W] bool as soon as it exists, before tracking
    (e.g. to start grasp proposals while the tracker runs: ``planning.grasp_prefetch``). ``mask``: the
    segmenter's mask of I0 [H,W] bool computed beforehand, or a future of it (``flow.early``: I0 and
    the box exist before the video does, so the segmentation can run while the video is made or
    decoded); ``segmenter`` then only names it, and ``timings_s["segment"]`` is the wait for it.
    """
    from dream2flow.perception.classical import ClassicalLKTracker, GivenVideoDepth, sample_query_points
    from dream2flow.perception.rgbd_segmenter import RGBDSegmenter

    cfg = config or FlowConfig()
    if not isinstance(num_points, (int, np.integer)) or not 1 <= int(num_points) <= MAX_NUM_POINTS:
        raise InvalidInput(f"number of points must be an integer in [1, {MAX_NUM_POINTS}], got {num_points!r}")
    check_inputs(video, rgbd)
    T = video.num_frames
    W, H = video.size_wh
    box_f = validate_box(box, W, H)
    seg = segmenter or RGBDSegmenter(seed=seed)
    trk = tracker or ClassicalLKTracker()
    vd: VideoDepth = GivenVideoDepth(video_depth) if isinstance(video_depth, np.ndarray) else video_depth
    timings: dict[str, float] = {}
    report = progress or (lambda phase, fraction: None)

    report("video_depth", 0.0)
    t0 = time.perf_counter()
    rel = np.asarray(vd(video), dtype=np.float32)
    timings["video_depth"] = time.perf_counter() - t0
    if rel.shape != (T, H, W):
        raise InvalidInput(f"video depth is {list(rel.shape)} but the video is [{T}, {H}, {W}]")

    report("segment", 0.3)
    t0 = time.perf_counter()
    if mask is None:
        mask = seg(rgbd.rgb, box_f, depth_m=rgbd.depth_m)
    elif hasattr(mask, "result"):  # started before the video was there: wait for it
        mask = mask.result()
    mask = np.asarray(mask, dtype=bool)
    timings["segment"] = time.perf_counter() - t0
    if mask.shape != (H, W):
        raise PerceptionFailed(f"segmenter {seg.name} returned a {list(mask.shape)} mask for a {W}x{H} image")
    if not mask.any():
        raise PerceptionFailed(f"segmentation of box {tuple(round(v, 1) for v in box_f)} is empty: nothing to track")
    if on_mask is not None:
        on_mask(mask)

    report("sample", 0.4)
    t0 = time.perf_counter()
    query = sample_query_points(mask, int(num_points), seed, erode_px=cfg.erode_px)
    timings["sample"] = time.perf_counter() - t0

    report("track", 0.45)
    t0 = time.perf_counter()
    # a per-frame depth model drifts in scale: refit on what does not move -- frame by frame while the
    # tracker goes on, when it streams its frames
    stream = (_StaticFitWhileTracking(rel, rgbd.depth_m, mask, cfg.frame_align, seed, T, len(query))
              if cfg.frame_align.enabled and cfg.frame_align_while_tracking and getattr(trk, "streams_frames", False)
              else None)
    try:
        tracks_px, visible_2d = trk(video, query, on_frame=stream.on_frame) if stream is not None else trk(video, query)
        tracks_px = np.asarray(tracks_px, np.float32)
        visible_2d = np.asarray(visible_2d, bool)
        timings["track"] = time.perf_counter() - t0
        if tracks_px.shape != (T, len(query), 2) or visible_2d.shape != (T, len(query)):
            raise PerceptionFailed(f"tracker {trk.name} returned tracks {list(tracks_px.shape)} / visibility "
                                   f"{list(visible_2d.shape)} for {len(query)} points over {T} frames")
        report("align", 0.8)  # may raise (a cancel)
    except BaseException:
        if stream is not None:
            stream.cancel()
        raise

    frame_align = None
    if cfg.frame_align.enabled:
        t0 = time.perf_counter()  # with a stream: the wait for the frames it has not fitted yet
        frame_align = stream.finish(tracks_px, visible_2d) if stream is not None else None
        if frame_align is None:
            frame_align = fit_static_per_frame(rel, rgbd.depth_m, mask, tracks_px, visible_2d,
                                               config=cfg.frame_align, seed=seed)
        rel = frame_align.view(rel)  # mapped lazily: lifting reads a few crops per frame
        timings["frame_align"] = time.perf_counter() - t0
        if stream is not None:
            timings["frame_align_worker"] = stream.busy_s

    t0 = time.perf_counter()
    if (frame_align is not None and cfg.frame_align.object_fit == "shift" and frame_align.ok[0]
            and np.isfinite(frame_align.residual_m[0])):
        # the object keeps frame 0's static-scene scale; only its shift comes from its own pixels
        alignment = fit_shift_on_mask(rel[0], rgbd.depth_m, mask, frame_align.scale0, config=cfg.align)
    else:
        alignment = fit_scale_shift(rel[0], rgbd.depth_m, mask, config=cfg.align, seed=seed)
    timings["align"] = time.perf_counter() - t0

    report("lift", 0.85)
    t0 = time.perf_counter()
    points, visible = lift_tracks(tracks_px, visible_2d, rel, alignment, rgbd.camera, cfg.lift)
    anchor_stats: dict[str, Any] = {"enabled": False}
    if cfg.anchor.enabled:
        points, anchor_stats = anchor_to_d0(points, visible, query, rgbd.depth_m, rgbd.camera, cfg.anchor)
    timings["lift"] = time.perf_counter() - t0
    if visible[0].mean() < cfg.min_visible_frac0:
        raise PerceptionFailed(f"only {100 * visible[0].mean():.0f}% of the query points have usable depth in "
                               f"frame 0 (need {100 * cfg.min_visible_frac0:.0f}%)")

    report("filter", 0.95)
    t0 = time.perf_counter()
    points, visible, fstats = filter_flow(points, visible, cfg.filter)
    timings["filter"] = time.perf_counter() - t0

    meta: dict[str, Any] = {
        "stage": "flow",
        "backends": {"segmenter": seg.name, "tracker": trk.name, "video_depth": vd.name},
        "seed": int(seed),
        "box": [float(v) for v in box_f],
        "num_points": int(len(query)),
        "num_frames": int(T),
        "image_size": [int(W), int(H)],
        "alignment": alignment.to_dict(),
        "residual_m": alignment.residual_m,
        "frame_align": frame_align.to_dict() if frame_align is not None else {"enabled": False},
        "visible_fraction": float(visible.mean()),
        "visible_fraction_2d": float(visible_2d.mean()),
        "mask_pixels": int(mask.sum()),
        "filter": {"enabled": cfg.filter.enabled, "outliers_removed": fstats.outliers_removed,
                   "smooth_half_window": cfg.filter.smooth_half_window if cfg.filter.enabled else 0},
        "lift": {"median_px": cfg.lift.median_px},
        "anchor": anchor_stats,
        "versions": _versions(),
    }
    flow = ObjectFlow(points_base=points.astype(np.float32), visible=visible, query_px=query, fps=video.fps,
                      depth_scale=alignment.scale, depth_shift=alignment.shift, meta=meta)
    return FlowResult(flow=flow, mask=mask, tracks_px=tracks_px, visible_2d=visible_2d, alignment=alignment,
                      timings_s=timings)
