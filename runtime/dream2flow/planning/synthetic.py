"""Synthetic planning problems with known answers, for tests and the benchmark.

A scene is a few (oriented) boxes on the table plane z = 0, seen by a pinhole camera: D0 is
ray-cast exactly, the flow's query points are sampled on the moving object's visible pixels,
lifted with D0, and moved by a known rigid motion (min-jerk timing, a static lead-in and
tail as in a generated video). Optional per-frame invisibility and Gaussian noise.

Tasks: ``drawer`` (pulled 20 cm towards the robot by its handle), ``door`` (a handle on a door
swinging 60° about a vertical hinge), ``block`` (a 5 cm block lifted and placed 30 cm away).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dream2flow.types import RGBD, CameraModel, ObjectFlow

TASKS = ("drawer", "door", "block")


@dataclass
class Box:
    center: np.ndarray
    half: np.ndarray
    label: int
    R: np.ndarray = field(default_factory=lambda: np.eye(3))


@dataclass
class SyntheticTask:
    name: str
    rgbd: RGBD
    flow: ObjectFlow            # what the planner gets (possibly noisy / partly invisible)
    gt_points: np.ndarray       # [T,n,3] noise-free positions of every flow point
    gt_motion: np.ndarray       # [T,4,4] the object's rigid motion (frame 0 -> t)
    object_mask: np.ndarray     # [H,W] bool: pixels of the moving object in D0
    handle_center: np.ndarray   # [3] where a grasp is expected (handle / block)


def look_at_camera(eye, target, width: int = 640, height: int = 480, f: float = 615.0) -> CameraModel:
    """Camera at ``eye`` looking at ``target`` (base frame), OpenCV axes, world z up."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    return CameraModel(K=K, width=width, height=height, T_base_cam=T)


def raycast(camera: CameraModel, boxes: list[Box], table_half_m: float = 1.5,
            table_center: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact depth [H,W] (m along the optical axis, 0 = nothing) and labels [H,W]
    (-1 nothing, 0 table, box labels) of boxes on the table plane z = 0."""
    H, W = camera.height, camera.width
    v, u = np.mgrid[0:H, 0:W]
    d_cam = np.stack([(u + 0.0 - camera.K[0, 2]) / camera.K[0, 0], (v + 0.0 - camera.K[1, 2]) / camera.K[1, 1],
                      np.ones((H, W))], axis=-1).reshape(-1, 3)
    Rb, o = camera.T_base_cam[:3, :3], camera.T_base_cam[:3, 3]
    d = d_cam @ Rb.T  # ray directions in base; parameter t = depth along the optical axis
    depth = np.full(len(d), np.inf)
    label = np.full(len(d), -1, dtype=np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[2] / d[:, 2]
        hit = (d[:, 2] < 0) & (t > 0)
        p = o + d * t[:, None]
        c = np.zeros(2) if table_center is None else table_center[:2]
        hit &= (np.abs(p[:, 0] - c[0]) < table_half_m) & (np.abs(p[:, 1] - c[1]) < table_half_m)
        depth[hit] = t[hit]
        label[hit] = 0
        for b in boxes:
            ol = (o - b.center) @ b.R
            dl = d @ b.R
            t1 = (-b.half[None] - ol[None]) / dl
            t2 = (b.half[None] - ol[None]) / dl
            tmin = np.nanmax(np.minimum(t1, t2), axis=1)
            tmax = np.nanmin(np.maximum(t1, t2), axis=1)
            hb = (tmax >= np.maximum(tmin, 0)) & (tmin > 0) & (tmin < depth)
            depth[hb] = tmin[hb]
            label[hb] = b.label
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    return depth.reshape(H, W), label.reshape(H, W)


def _minjerk(n: int) -> np.ndarray:
    tau = np.linspace(0, 1, n)
    return tau ** 3 * (10 - 15 * tau + 6 * tau ** 2)


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _scene(name: str):
    """(boxes, moving labels, camera eye, camera target, motion(s) -> 4x4, handle centre)."""
    if name == "drawer":
        boxes = [Box(np.array([0.85, 0.0, 0.25]), np.array([0.15, 0.25, 0.25]), 1),      # cabinet
                 Box(np.array([0.69, 0.0, 0.3]), np.array([0.01, 0.15, 0.07]), 2),      # drawer front
                 Box(np.array([0.635, 0.0, 0.3]), np.array([0.01, 0.06, 0.01]), 3),     # handle bar
                 Box(np.array([0.6625, 0.05, 0.3]), np.array([0.0175, 0.005, 0.005]), 4),
                 Box(np.array([0.6625, -0.05, 0.3]), np.array([0.0175, 0.005, 0.005]), 4)]

        def motion(s: float) -> np.ndarray:
            T = np.eye(4)
            T[0, 3] = -0.20 * s
            return T

        return boxes, (2, 3, 4), (0.05, -0.45, 0.8), (0.65, 0.0, 0.3), motion, np.array([0.635, 0.0, 0.3])
    if name == "door":
        hinge = np.array([0.78, 0.25, 0.0])
        boxes = [Box(np.array([0.95, 0.05, 0.25]), np.array([0.15, 0.23, 0.25]), 1),     # cabinet
                 Box(np.array([0.79, 0.05, 0.25]), np.array([0.01, 0.19, 0.2]), 2),      # door panel
                 Box(np.array([0.735, -0.05, 0.3]), np.array([0.01, 0.01, 0.06]), 3),    # vertical handle
                 Box(np.array([0.7625, -0.05, 0.34]), np.array([0.0175, 0.005, 0.005]), 4),
                 Box(np.array([0.7625, -0.05, 0.26]), np.array([0.0175, 0.005, 0.005]), 4)]

        def motion(s: float) -> np.ndarray:
            R = _rot_z(np.radians(-60.0) * s)
            T = np.eye(4)
            T[:3, :3] = R
            T[:3, 3] = hinge - R @ hinge
            return T

        return boxes, (2, 3, 4), (0.05, -0.5, 0.85), (0.7, 0.0, 0.3), motion, np.array([0.735, -0.05, 0.3])
    if name == "block":
        boxes = [Box(np.array([0.5, -0.15, 0.025]), np.array([0.025, 0.025, 0.025]), 2)]

        def motion(s: float) -> np.ndarray:
            T = np.eye(4)
            T[1, 3] = 0.30 * s
            T[2, 3] = 0.12 * np.sin(np.pi * s)
            return T

        return boxes, (2,), (0.1, -0.6, 0.7), (0.5, -0.05, 0.05), motion, np.array([0.5, -0.15, 0.025])
    raise ValueError(f"unknown synthetic task {name!r} (use one of {', '.join(TASKS)})")


def make_task(name: str, *, n_points: int = 256, frames: int = 40, lead_in: int = 5, tail: int = 5,
              invisible_frac: float = 0.0, noise_m: float = 0.0, seed: int = 0,
              offset: tuple[float, float, float] = (0.0, 0.0, 0.0), fps: float = 8.0,
              width: int = 640, height: int = 480) -> SyntheticTask:
    """A synthetic task. ``noise_m``: per-axis Gaussian σ added to every flow position (frame 0
    too); ``invisible_frac``: each point hidden with this probability per frame; ``offset``
    moves the whole scene (and the camera) — e.g. 2 m away for an unreachable flow."""
    rng = np.random.default_rng(seed)
    boxes, moving, eye, target, motion, handle = _scene(name)
    off = np.asarray(offset, dtype=float)
    for b in boxes:
        b.center = b.center + off
    cam = look_at_camera(np.asarray(eye) + off, np.asarray(target) + off, width, height, f=615.0 * width / 640)
    depth, label = raycast(cam, boxes, table_center=off)
    obj_mask = np.isin(label, moving)
    vs, us = np.nonzero(obj_mask)
    if len(us) < n_points:
        raise ValueError(f"only {len(us)} object pixels visible")
    pick = np.sort(rng.choice(len(us), size=n_points, replace=False))
    query = np.stack([us[pick], vs[pick]], axis=1).astype(np.float64)
    X0 = cam.backproject(query, depth[vs[pick], us[pick]])
    move_frames = frames - lead_in - tail
    s = np.concatenate([np.zeros(lead_in), _minjerk(move_frames), np.ones(tail)])
    Toff = np.eye(4)
    Toff[:3, 3] = off
    Toff_inv = np.eye(4)
    Toff_inv[:3, 3] = -off
    Ts = np.stack([Toff @ motion(float(si)) @ Toff_inv for si in s])
    gt = X0[None] @ np.swapaxes(Ts[:, :3, :3], 1, 2) + Ts[:, None, :3, 3]
    P = gt + (rng.normal(0.0, noise_m, gt.shape) if noise_m > 0 else 0.0)
    vis = np.ones(gt.shape[:2], dtype=bool)
    if invisible_frac > 0:
        vis = rng.random(gt.shape[:2]) >= invisible_frac
    P = np.where(vis[..., None], P, np.nan)  # hidden points carry no value
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    palette = {-1: (30, 30, 30), 0: (150, 120, 90), 1: (200, 200, 200), 2: (60, 110, 200), 3: (220, 60, 50),
               4: (220, 60, 50)}
    for lab, colour in palette.items():
        rgb[label == lab] = colour
    x0, y0, x1, y1 = int(us.min()), int(vs.min()), int(us.max()), int(vs.max())
    flow = ObjectFlow(points_base=P.astype(np.float32), visible=vis, query_px=query.astype(np.float32), fps=fps,
                      meta={"box": [x0, y0, x1, y1], "seed": seed, "source": f"synthetic:{name}"})
    return SyntheticTask(name=name, rgbd=RGBD(rgb=rgb, depth_m=depth, camera=cam), flow=flow, gt_points=gt,
                         gt_motion=Ts, object_mask=obj_mask, handle_center=handle + off)
