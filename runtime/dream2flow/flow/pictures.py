"""Pictures a person looks at to judge a flow:

- ``write_tracks_video``: the video with every track drawn -- a filled green dot with a short
  trail where the point is visible, a hollow red ring at its last estimate where it is not.
- ``write_flow_png``: the 3D flow -- start -> end of every point (first and last *visible*
  positions) in a 3D view and a top view (x-y, the table plane), coloured by distance moved,
  plus I0 with the query points when given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.perception.protocols import VideoLike, video_frames
from dream2flow.types import ObjectFlow, Video
from dream2flow.video.encode import write_video

if TYPE_CHECKING:
    from jaxtyping import Bool, Float

VISIBLE_RGB = (40, 220, 90)
OCCLUDED_RGB = (235, 50, 40)


def draw_tracks(frames: np.ndarray, tracks_px: np.ndarray, visible: np.ndarray, *, trail: int = 6,
                radius: int | None = None) -> np.ndarray:
    """Frames [T,H,W,3] RGB uint8 with the tracks drawn (a copy)."""
    import cv2

    T, H, W = frames.shape[:3]
    if tracks_px.shape[:2] != visible.shape or tracks_px.shape[0] != T:
        raise InvalidInput(f"tracks {list(tracks_px.shape)} / visibility {list(visible.shape)} do not match {T} frames")
    r = radius or max(2, round(min(W, H) / 160))
    sh = 4  # sub-pixel drawing: coordinates in 1/16 px
    out = np.ascontiguousarray(frames.copy())
    finite = np.isfinite(tracks_px).all(-1)
    for t in range(T):
        img = out[t]
        segs = []
        for s in range(max(1, t - trail + 1), t + 1):  # trails of visible segments
            seg = visible[t] & visible[s] & visible[s - 1] & finite[s] & finite[s - 1]
            if seg.any():
                ab = np.stack([tracks_px[s - 1, seg], tracks_px[s, seg]], axis=1)  # [k,2,2]
                segs.extend(np.round(np.clip(ab, -1e4, 1e4) * (1 << sh)).astype(np.int32))
        if segs:
            cv2.polylines(img, segs, False, VISIBLE_RGB, 1, cv2.LINE_AA, sh)
        pts = np.round(tracks_px[t] * (1 << sh)).astype(np.int64)
        ok = finite[t] & (np.abs(tracks_px[t]) < 1e5).all(-1)
        for i in np.flatnonzero(ok & ~visible[t]):
            cv2.circle(img, (int(pts[i, 0]), int(pts[i, 1])), r << sh, OCCLUDED_RGB, 1, cv2.LINE_AA, sh)
        for i in np.flatnonzero(ok & visible[t]):
            cv2.circle(img, (int(pts[i, 0]), int(pts[i, 1])), r << sh, VISIBLE_RGB, -1, cv2.LINE_AA, sh)
        label = f"t={t}  visible {int(visible[t].sum())}/{visible.shape[1]}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(img, (0, 0), (tw + 10, th + 10), (0, 0, 0), -1)
        cv2.putText(img, label, (5, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_tracks_video(path: str | Path, video: Video | VideoLike, tracks_px: Float[np.ndarray, "T n 2"],
                       visible: Bool[np.ndarray, "T n"], *, fps: float | None = None, trail: int = 6) -> Path:
    """H.264 MP4 of the video with tracks drawn (visible: green dot + trail; not: red ring)."""
    frames = video_frames(video)
    rate = fps if fps is not None else (video.fps if isinstance(video, Video) else 10.0)
    drawn = draw_tracks(frames, np.asarray(tracks_px, np.float64), np.asarray(visible, bool), trail=trail)
    return write_video(path, drawn, rate)


def _start_end(flow: ObjectFlow) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First and last visible position of each point that is visible at least once."""
    v = flow.visible
    seen = v.any(0)
    T = v.shape[0]
    first = np.argmax(v, axis=0)
    last = T - 1 - np.argmax(v[::-1], axis=0)
    cols = np.arange(v.shape[1])
    P = flow.points_base.astype(np.float64)
    return P[first, cols][seen], P[last, cols][seen], seen


def write_flow_png(path: str | Path, flow: ObjectFlow, background_rgb: np.ndarray | None = None, *,
                   title: str | None = None) -> Path:
    """PNG of the 3D flow: 3D view + top view of start -> end per point (metres, base frame),
    and, with ``background_rgb`` (I0), the query points on the image coloured the same way."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    start, end, seen = _start_end(flow)
    moved = np.linalg.norm(end - start, axis=1) if len(start) else np.zeros(0)
    ncols = 3 if background_rgb is not None else 2
    fig = Figure(figsize=(5.4 * ncols, 5.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    cmap = matplotlib.colormaps["viridis"]
    vmax = max(float(moved.max()) if len(moved) else 0.0, 1e-6)
    colors = cmap(moved / vmax) if len(moved) else np.zeros((0, 4))

    ax3 = fig.add_subplot(1, ncols, 1, projection="3d")
    if len(start):
        ax3.scatter(*start.T, s=6, c="tab:blue", label="start", depthshade=False)
        ax3.scatter(*end.T, s=6, c="tab:red", label="end", depthshade=False)
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        ax3.add_collection3d(Line3DCollection(np.stack([start, end], 1), colors=colors, linewidths=0.6))
        _equal_3d(ax3, np.concatenate([start, end]))
        ax3.legend(loc="upper left", fontsize=8)
    ax3.set_xlabel("x (m)")
    ax3.set_ylabel("y (m)")
    ax3.set_zlabel("z (m)")
    ax3.set_title("3D flow, base frame")

    ax = fig.add_subplot(1, ncols, 2)
    if len(start):
        d = end[:, :2] - start[:, :2]
        ax.quiver(start[:, 0], start[:, 1], d[:, 0], d[:, 1], color=colors, angles="xy", scale_units="xy", scale=1,
                  width=0.003, headwidth=4, headlength=5)
        ax.scatter(*start[:, :2].T, s=5, c="tab:blue")
        ax.scatter(*end[:, :2].T, s=5, c="tab:red")
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title("top view (start -> end)")
    ax.grid(alpha=0.3)

    if background_rgb is not None:
        axi = fig.add_subplot(1, ncols, 3)
        axi.imshow(background_rgb)
        q = flow.query_px[seen]
        if len(q):
            axi.scatter(q[:, 0], q[:, 1], s=6, c=colors)
        never = flow.query_px[~seen]
        if len(never):
            axi.scatter(never[:, 0], never[:, 1], s=8, facecolors="none", edgecolors="red")
        axi.set_title("I0 + query points (colour = distance moved)")
        axi.axis("off")
    sm = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(0, vmax))
    fig.colorbar(sm, ax=ax, shrink=0.8, label="moved (m)")
    T, n = flow.visible.shape
    fig.suptitle(title or f"{n} points, {T} frames, visible {100 * flow.visible.mean():.0f}%, "
                          f"s*={flow.depth_scale:.4g}, b*={flow.depth_shift:.4g} m")
    p = Path(path)
    fig.savefig(p)
    return p


def _equal_3d(ax, pts: np.ndarray) -> None:
    c = (pts.max(0) + pts.min(0)) / 2
    r = max(float((pts.max(0) - pts.min(0)).max()) / 2, 0.01)
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
