"""The simulated video generator: the stand-in for the cloud video model.

Given an env's current scene it renders the task being done *without the robot* (robot geoms
hidden, from frame 0 on), the task object driven kinematically along the task's scripted path,
plus the ground-truth 3D flow of points on the object's visible surface and a relative depth
video (random scale/shift + 1% noise) standing in for a video-depth model.

Artefacts (comma-combinable) imitate what real generators get wrong:
- ``noise``: per-pixel Gaussian noise; ``blur``: Gaussian blur of every frame;
- ``shake``: a small random rigid jitter of the image per frame (frame 0 stays put, it is I0);
- ``occlusion``: a skin-coloured hand passes between the camera and the object for a few frames;
- ``morphing``: the object's boxes are scaled non-uniformly, drifting over the video (the ground
  truth follows the morph: textures stretch with the geometry);
- ``extra_frames``: longer static stretches at the start and the end.
Ground truth is the 3D truth: ``shake``/``blur``/``noise`` do not change it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dream2flow.errors import InvalidInput, PerceptionFailed
from dream2flow.sim.scene import OCCLUDER_BODY, OCCLUDER_PARK
from dream2flow.sim.tasks.base import min_jerk
from dream2flow.types import ObjectFlow, Video

if TYPE_CHECKING:
    from dream2flow.sim.env import SimEnv

ARTIFACTS: tuple[str, ...] = ("clean", "noise", "blur", "shake", "occlusion", "morphing", "extra_frames")
VISIBILITY_TOL_M = 0.006  # projected depth vs rendered depth, for "not occluded"


@dataclass
class GeneratedVideo:
    """``video`` (frames [T,H,W,3] uint8, fps), ``rel_depth`` [T,H,W] float32 with
    depth_m = depth_scale · rel_depth + depth_shift (+ noise), ``gt_flow`` (base frame, metres),
    ``thumb_px`` [T,2] float32 (where a hand would hold the object) or None, ``artifacts``."""

    video: Video
    rel_depth: np.ndarray
    gt_flow: ObjectFlow
    thumb_px: np.ndarray | None
    artifacts: str
    depth_scale: float = 1.0
    depth_shift: float = 0.0
    depth_m: np.ndarray | None = None  # [T,H,W] metric depth of the clean render (evaluation only)
    segmentation: np.ndarray | None = None  # [T,H,W] int32 body ids of the clean render (evaluation only)
    meta: dict[str, Any] = field(default_factory=dict)


def parse_artifacts(artifacts: str) -> tuple[str, ...]:
    """"clean" | names from ARTIFACTS joined by commas -> sorted tuple without "clean"."""
    names = [a.strip() for a in str(artifacts).split(",") if a.strip()]
    bad = [a for a in names if a not in ARTIFACTS]
    if not names or bad:
        raise InvalidInput(f"unknown video artefact(s) {', '.join(bad) or repr(artifacts)} "
                           f"(choose from {', '.join(ARTIFACTS)}, comma-separated)")
    return tuple(sorted(set(names) - {"clean"}))


def _timeline(T: int, extra: bool, rng: np.random.Generator) -> np.ndarray:
    """Task progress s_t in [0,1] per frame: still at the start and end, min-jerk in between."""
    k0, k1 = (int(rng.integers(5, 9)), int(rng.integers(5, 9))) if extra else (2, 3)
    k0, k1 = min(k0, T // 4), min(k1, T // 4)
    span = max(1, T - 1 - k0 - k1)
    return min_jerk((np.arange(T) - k0) / span)


def _body_pose(data: Any, bid: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array(data.xpos[bid]), np.array(data.xmat[bid]).reshape(3, 3)


def generate_video(env: "SimEnv", artifacts: str = "clean", *, num_frames: int = 48, seed: int | None = None,
                   fps: float = 12.0, num_points: int = 256, with_segmentation: bool = False) -> GeneratedVideo:
    """Render the task done without the robot from ``env``'s current state (env left untouched).
    ``seed`` picks the path details and artefacts (default: the env's seed). ``with_segmentation``
    also returns per-frame body ids (clean render; evaluation/tests only)."""
    import mujoco

    arts = parse_artifacts(artifacts)
    if not 8 <= int(num_frames) <= 600:
        raise InvalidInput(f"num_frames must be in 8..600, got {num_frames}")
    if not fps > 0:
        raise InvalidInput(f"fps must be positive, got {fps}")
    T = int(num_frames)
    vseed = env.seed if seed is None else int(seed)
    ss = np.random.SeedSequence([env.seed, vseed, zlib.crc32(b"video"), zlib.crc32(env.task.encode())])
    rng = np.random.default_rng(ss)
    task = env.task_object
    model = env.model
    cam = env.camera_model()
    H, W = cam.height, cam.width
    path = task.video_path(rng)
    s_t = _timeline(T, "extra_frames" in arts, rng)

    data = mujoco.MjData(model)  # a copy: the env's state is not disturbed
    data.qpos[:] = env.data.qpos
    data.mocap_pos[:] = env.data.mocap_pos
    data.mocap_quat[:] = env.data.mocap_quat
    s0_state = np.array(data.qpos)
    dynamic = bool(getattr(task, "dynamic_video", False))
    if dynamic:  # the physics moves the object: start from the whole state, the arm held where it is
        data.qvel[:] = env.data.qvel
        data.act[:] = env.data.act
        data.ctrl[:] = env.data.ctrl
        data.time = env.data.time
        task.start_video(model, data, path)
        substeps = max(1, int(round(1.0 / (float(fps) * model.opt.timestep))))

    # morph: per-axis scale of the object's box geoms in their body frames, drifting linearly
    obj_bodies = [int(b) for b in env.object_body_ids]
    morph_geoms = [g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in obj_bodies]
    size0 = model.geom_size[morph_geoms].copy()
    pos0 = model.geom_pos[morph_geoms].copy()
    if "morphing" in arts:
        amp = rng.uniform(0.12, 0.25, size=3) * rng.choice([-1.0, 1.0], size=3)
        scale_t = 1.0 + np.linspace(0.0, 1.0, T)[:, None] * amp[None, :]
    else:
        scale_t = np.ones((T, 3))

    occ_frames: list[int] = []
    occ_side = 1.0
    if "occlusion" in arts:
        L = int(rng.integers(6, 10))
        t0 = int(rng.integers(T // 4, max(T // 4 + 1, 3 * T // 4 - L)))
        occ_frames = list(range(t0, min(T, t0 + L)))
        occ_side = float(rng.choice([-1.0, 1.0]))
    occ_id = model.body(OCCLUDER_BODY).mocapid[0]

    frames = np.zeros((T, H, W, 3), np.uint8)
    depth = np.zeros((T, H, W), np.float32)
    segs = np.zeros((T, H, W), np.int32) if with_segmentation else None
    body_poses: list[dict[int, tuple[np.ndarray, np.ndarray]]] = []
    flex_seg = {int(model.body(b).id): f for f, b in getattr(task, "flex_bodies", {}).items()}
    flex_ids = {b: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_FLEX, f) for b, f in flex_seg.items()}
    flex_verts: list[np.ndarray] = []
    renderer_model_state = (model.geom_size.copy(), model.geom_pos.copy())
    prev_key: tuple = ()
    same_as = np.arange(T)  # a frame of an unchanged scene is the frame before it
    # two thirds of the colour frames are drawn on a worker with its own renderer while this thread
    # steps the scene and draws the depth and the other colour frames (the software renderer leaves
    # the GIL: two cores; same pixels, the renderer is deterministic). Not while morphing: the
    # renderer reads the model's geometry, which changes per frame.
    worker = env.background_frames(1.0, robot=False, shadows=True) if "morphing" not in arts else None
    try:
        for t in range(T):
            if dynamic:
                for k in range(1, substeps + 1 if t > 0 else 1):
                    task.drive_video(model, data, float(s_t[t - 1] + (s_t[t] - s_t[t - 1]) * k / substeps), path)
                    mujoco.mj_step(model, data)
            else:
                data.qpos[:] = s0_state
                task.set_progress(model, data, float(s_t[t]), path)
            model.geom_size[morph_geoms] = size0 * _box_scale(model, morph_geoms, scale_t[t])
            model.geom_pos[morph_geoms] = pos0 * scale_t[t][None, :]
            data.mocap_pos[occ_id] = OCCLUDER_PARK
            mujoco.mj_forward(model, data)
            if t in occ_frames:
                a = (t - occ_frames[0]) / max(1, len(occ_frames) - 1)
                p, q = _occluder_pose(env, data, obj_bodies, occ_side * (a - 0.5))
                data.mocap_pos[occ_id], data.mocap_quat[occ_id] = p, q
                mujoco.mj_forward(model, data)
            body_poses.append({b: _body_pose(data, b) for b in obj_bodies})
            if flex_ids:
                flex_verts.append(np.array(data.flexvert_xpos))
            # a frame showing exactly the previous frame's scene (the still start and end) is that
            # frame: the renderer is deterministic, and a render is ~0.1 s on a software renderer
            key = (data.qpos.tobytes(), data.mocap_pos.tobytes(), data.mocap_quat.tobytes(),
                   data.flexvert_xpos.tobytes(), model.geom_size[morph_geoms].tobytes(),
                   model.geom_pos[morph_geoms].tobytes())
            if t > 0 and key == prev_key:
                same_as[t] = same_as[t - 1]
            else:
                if worker is not None and t % 3:  # a third here: with the depth frames, half the work
                    worker.add(t, data)
                else:
                    frames[t] = env._render(data, "rgb", robot=False)
                depth[t] = env._render(data, "depth", robot=False)
            prev_key = key
            if t == 0 or segs is not None:
                seg = env._render(data, "seg", robot=False)
                seg0 = seg if t == 0 else seg0
                if segs is not None:
                    segs[t] = seg
        if worker is not None:
            for t, rgb in worker.frames():
                frames[t] = rgb
        for t in np.flatnonzero(same_as != np.arange(T)):
            frames[t], depth[t] = frames[same_as[t]], depth[same_as[t]]
    finally:
        if worker is not None:
            worker.close()
        model.geom_size[:], model.geom_pos[:] = renderer_model_state

    # ground-truth points: sampled on the object's visible pixels in frame 0, carried in body frames
    obj_px = np.isin(seg0, obj_bodies) & (depth[0] > 0)
    vs, us = np.nonzero(obj_px)
    if us.size < 10:
        raise PerceptionFailed(f"the {task.object_prompt} is not visible in the generated video's first frame")
    pick = rng.choice(us.size, size=min(int(num_points), us.size), replace=False)
    pick.sort()
    u, v = us[pick], vs[pick]
    query_px = np.stack([u, v], axis=1).astype(np.float32)
    p0 = cam.backproject(query_px.astype(np.float64), depth[0][v, u])
    owner = seg0[v, u]
    local = np.zeros_like(p0)
    for b in obj_bodies:
        sel = owner == b
        x, R = body_poses[0][b]
        local[sel] = ((p0[sel] - x) @ R) / scale_t[0]
    pts = np.zeros((T, len(u), 3))
    for t in range(T):
        for b in obj_bodies:
            if b in flex_ids:
                continue
            sel = owner == b
            x, R = body_poses[t][b]
            pts[t, sel] = (local[sel] * scale_t[t]) @ R.T + x
    for b, fid in flex_ids.items():  # a cloth: each point rides on its triangle (barycentric + normal offset)
        sel = owner == b
        if sel.any():
            pts[:, sel] = _flex_track(model, fid, np.stack(flex_verts), p0[sel])
    visible = _visibility(cam, pts, depth)

    thumb = None
    if task.thumb_body is not None and task.thumb_local is not None:
        tb = model.body(task.thumb_body).id
        tp = np.stack([body_poses[t][tb][1] @ (task.thumb_local * scale_t[t]) + body_poses[t][tb][0]
                       for t in range(T)])
        thumb = cam.project(tp)[0].astype(np.float32)

    # artefacts on pixels (after the ground truth, which they do not change)
    frames_out = frames.copy()
    warps = None
    if "shake" in arts:
        warps = _shake_warps(T, W, H, rng)
        frames_out = _apply_warps(frames_out, warps, interp_linear=True)
    if "blur" in arts:
        frames_out = _blur(frames_out, rng)
    if "noise" in arts:
        frames_out = np.clip(frames_out.astype(np.float32) + rng.normal(0, 6.0, frames_out.shape), 0, 255).astype(np.uint8)

    scale = float(rng.uniform(0.5, 3.0))
    shift = float(rng.uniform(-0.5, 0.5))
    valid = depth > 0
    far = float(depth[valid].max()) if valid.any() else 1.0
    noisy = np.where(valid, depth, far) * (1.0 + 0.01 * rng.standard_normal(depth.shape))
    rel = ((noisy - shift) / scale).astype(np.float32)
    if warps is not None:
        rel = _apply_warps(rel, warps, interp_linear=False)

    meta = {"source": "dream2flow.sim ground truth", "task": env.task, "seed": env.seed, "video_seed": vseed,
            "artifacts": ",".join(arts) or "clean", "object_bodies": list(task.object_bodies),
            "progress": s_t.tolist(), "path": {k: np.asarray(v).tolist() for k, v in path.items()},
            "morph_scale_last": scale_t[-1].tolist(),
            "occlusion_frames": occ_frames,
            "visibility_tol_m": VISIBILITY_TOL_M}
    flow = ObjectFlow(points_base=pts.astype(np.float32), visible=visible, query_px=query_px, fps=float(fps),
                      depth_scale=scale, depth_shift=shift, meta=meta)
    return GeneratedVideo(video=Video(frames=frames_out, fps=float(fps)), rel_depth=rel, gt_flow=flow,
                          thumb_px=thumb, artifacts=",".join(arts) or "clean", depth_scale=scale,
                          depth_shift=shift, depth_m=depth, segmentation=segs, meta=meta)


def _flex_track(model: Any, fid: int, verts_t: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """[T,k,3] positions of surface points ``p0`` [k,3] (frame 0) of 2D flex ``fid`` over the frames
    ``verts_t`` [T,nflexvert,3]: each point is tied to its nearest triangle at frame 0 by barycentric
    coordinates and its offset along the triangle's normal (the fabric's rendered thickness)."""
    adr, num = int(model.flex_vertadr[fid]), int(model.flex_vertnum[fid])
    e0, en = int(model.flex_elemdataadr[fid]), int(model.flex_elemnum[fid]) * 3
    elems = np.asarray(model.flex_elem[e0:e0 + en]).reshape(-1, 3)
    V = verts_t[:, adr:adr + num]
    tri0 = V[0][elems]  # [m,3,3]
    best = np.full(len(p0), np.inf)
    pick = np.zeros(len(p0), int)
    bary = np.zeros((len(p0), 3))
    off = np.zeros(len(p0))
    for k in range(len(elems)):
        a, b, c = tri0[k]
        n = np.cross(b - a, c - a)
        n /= max(np.linalg.norm(n), 1e-12)
        h = (p0 - a) @ n
        q = p0 - h[:, None] * n  # projection onto the triangle's plane
        w = _barycentric(q, a, b, c)
        wc = np.clip(w, 0.0, None)
        wc /= np.maximum(wc.sum(1, keepdims=True), 1e-12)
        d = np.linalg.norm(p0 - wc @ tri0[k], axis=1)  # distance to the (clamped) triangle
        better = d < best
        best[better], pick[better], bary[better] = d[better], k, wc[better]
        off[better] = (p0[better] - wc[better] @ tri0[k]) @ n
    tri_t = V[:, elems[pick]]  # [T,k,3,3]
    base = np.einsum("kj,tkjd->tkd", bary, tri_t)
    n_t = np.cross(tri_t[:, :, 1] - tri_t[:, :, 0], tri_t[:, :, 2] - tri_t[:, :, 0])
    n_t /= np.maximum(np.linalg.norm(n_t, axis=-1, keepdims=True), 1e-12)
    return base + off[None, :, None] * n_t


def _barycentric(q: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """[k,3] barycentric coordinates of points ``q`` [k,3] in triangle (a, b, c) (in its plane)."""
    v0, v1, v2 = b - a, c - a, q - a
    d00, d01, d11 = v0 @ v0, v0 @ v1, v1 @ v1
    d20, d21 = v2 @ v0, v2 @ v1
    den = d00 * d11 - d01 * d01
    if abs(den) < 1e-18:
        return np.full((len(q), 3), 1.0 / 3.0)
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    return np.stack([1.0 - w1 - w2, w1, w2], axis=1)


def _box_scale(model: Any, geoms: list[int], s: np.ndarray) -> np.ndarray:
    """Size multipliers per geom for a body-frame scale ``s`` [3]: exact for axis-aligned boxes
    (every moving part of our tasks), isotropic mean for anything else."""
    import mujoco

    out = np.ones((len(geoms), 3))
    for i, g in enumerate(geoms):
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX and np.allclose(np.abs(model.geom_quat[g]), [1, 0, 0, 0]):
            out[i] = s
        else:
            out[i] = float(np.mean(s))
    return out


def _visibility(cam: Any, pts: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """In frame and not occluded: the point's depth matches the rendered depth at its pixel."""
    T, n, _ = pts.shape
    H, W = depth.shape[1:]
    px, z = cam.project(pts)
    ui = np.rint(px[..., 0]).astype(int)
    vi = np.rint(px[..., 1]).astype(int)
    inside = (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H) & (z > 0)
    vis = np.zeros((T, n), bool)
    for t in range(T):
        k = inside[t]
        d = depth[t][vi[t][k], ui[t][k]]
        vis[t][k] = (d > 0) & (np.abs(d - z[t][k]) < VISIBILITY_TOL_M + 0.004 * z[t][k])
    return vis


def _occluder_pose(env: "SimEnv", data: Any, obj_bodies: list[int], a: float) -> tuple[np.ndarray, np.ndarray]:
    """The hand sweeps across the object (``a`` from -0.5 to 0.5), 25% of the way from the object
    to the camera, palm towards the camera."""
    cam = env.camera_model()
    centre = np.mean([data.xpos[b] for b in obj_bodies], axis=0)
    eye = cam.T_base_cam[:3, 3]
    right = cam.T_base_cam[:3, 0]
    down = cam.T_base_cam[:3, 1]
    base = centre + 0.25 * (eye - centre)
    sweep = 0.16 * np.linalg.norm(centre - eye) / 0.9
    pos = base + 2 * a * sweep * right - 0.03 * down
    # palm faces the camera: hand frame y -> towards the camera, z -> image up
    y_axis = eye - pos
    y_axis /= np.linalg.norm(y_axis)
    z_axis = -down - np.dot(-down, y_axis) * y_axis
    z_axis /= np.linalg.norm(z_axis)
    x_axis = np.cross(y_axis, z_axis)
    R = np.stack([x_axis, y_axis, z_axis], axis=1)
    return pos, _mat_to_quat(R)


def _mat_to_quat(R: np.ndarray) -> np.ndarray:
    import mujoco

    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).reshape(9))
    return q


def _shake_warps(T: int, W: int, H: int, rng: np.random.Generator) -> np.ndarray:
    """[T,2,3] affine warps: frame 0 identity, then a jittery random walk (±~4 px, ±0.6 deg)."""
    import cv2

    warps = np.zeros((T, 2, 3))
    state = np.zeros(3)
    for t in range(T):
        if t > 0:
            state = 0.6 * state + rng.normal(0, [2.0, 2.0, 0.3])
        dx, dy, ang = state if t > 0 else (0.0, 0.0, 0.0)
        M = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), float(ang), 1.0)
        M[:, 2] += [dx, dy]
        warps[t] = M
    return warps


def _apply_warps(frames: np.ndarray, warps: np.ndarray, *, interp_linear: bool) -> np.ndarray:
    import cv2

    out = np.empty_like(frames)
    H, W = frames.shape[1:3]
    flag = cv2.INTER_LINEAR if interp_linear else cv2.INTER_NEAREST
    for t in range(frames.shape[0]):
        out[t] = cv2.warpAffine(frames[t], warps[t], (W, H), flags=flag, borderMode=cv2.BORDER_REPLICATE)
    return out


def _blur(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    sigma = float(rng.uniform(0.8, 1.6))
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])

