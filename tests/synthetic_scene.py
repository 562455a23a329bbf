"""A synthetic scene with exact ground truth for the flow stage (test helper, also used by
bench/flow_bench.py).

A textured planar rectangle moves rigidly in 3D (rotation + translation) in front of a pinhole
camera with known ``K`` and a non-identity ``T_base_cam``, over a textured background plane at
another depth, optionally crossed by a near occluder bar. Rendering is homography warps of
the textures (``cv2.warpPerspective``) at 2x supersampling; depth, masks and 3D points come
from exact ray-plane intersection, so every number a test checks is known analytically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from dream2flow.types import RGBD, CameraModel, Video

TRUE_SCALE = 2.3   # Z = TRUE_SCALE * rel + TRUE_SHIFT  (the example: x2.3, -0.4 m)
TRUE_SHIFT = -0.4


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    R, _ = cv2.Rodrigues(axis * angle)
    return R


def _pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def look_at_T_base_cam(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera -> base transform of an OpenCV camera at ``eye`` looking at ``target`` (z forward, y down)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return _pose(np.stack([x, y, z], axis=1), eye)


def make_camera(width: int = 640, height: int = 480) -> CameraModel:
    """D435-like intrinsics (fx=fy=615 at 640x480, scaled with the size) and a tilted camera
    0.6 m above the table looking at the workspace in front of the robot."""
    s = width / 640.0
    f = 615.0 * s
    K = np.array([[f, 0, (319.5 + 0.5) * s - 0.5], [0, f, (239.5 + 0.5) * s - 0.5], [0, 0, 1]])
    T = look_at_T_base_cam(eye=(1.05, 0.25, 0.60), target=(0.45, 0.0, 0.05))
    return CameraModel(K=K, width=width, height=height, T_base_cam=T)


def _noise_texture(rng: np.random.Generator, w: int, h: int, lo: int = 30, span: int = 200,
                   tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Colour multi-octave noise (coarse blobs + fine detail): trackable at every pyramid level."""
    tex = np.zeros((h, w, 3), np.float32)
    for cells, amp in ((4, 0.8), (12, 0.6), (32, 0.5), (max(w, h) // 3, 0.45)):
        cw, ch = max(2, int(cells * w / max(w, h))), max(2, int(cells * h / max(w, h)))
        small = rng.random((ch, cw, 3)).astype(np.float32)
        tex += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    tex = cv2.GaussianBlur(tex, (0, 0), 0.8)
    tex -= tex.min()
    tex /= tex.max()
    return np.clip((lo + span * tex) * np.asarray(tint, np.float32), 0, 255).astype(np.uint8)


def _material_texture(rng: np.random.Generator, w: int, h: int, px_per_m: float,
                      cells_m: tuple[float, ...] = (0.06, 0.02, 0.008, 0.003)) -> np.ndarray:
    """A stationary two-colour material (a painted, speckled board): noise octaves whose cell sizes
    are fixed in metres (``cells_m``), so any 10 cm patch has the same colour statistics as any
    other -- unlike ``_noise_texture``'s big blobs. Fine enough to track at ~1 m."""
    mix = np.zeros((h, w), np.float32)
    for cell, amp in zip(cells_m, (0.9, 0.7, 0.5, 0.4)):
        cw, ch = max(2, int(w / (cell * px_per_m))), max(2, int(h / (cell * px_per_m)))
        mix += amp * cv2.resize(rng.random((ch, cw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    mix = (mix - mix.mean()) / (mix.std() + 1e-6)
    a, b = np.float32([150, 110, 70]), np.float32([210, 180, 130])  # two wood-like tones
    t = 1.0 / (1.0 + np.exp(-1.5 * mix))[..., None]
    return np.clip(a * (1 - t) + b * t, 0, 255).astype(np.uint8)


@dataclass
class Plane:
    """A textured rectangle of ``size_m`` (w, h) in its own x-y plane, posed per frame."""

    texture: np.ndarray  # [th, tw, 3] uint8 RGB
    size_m: tuple[float, float]
    T_cam_plane: np.ndarray  # [T,4,4]

    def texture_to_plane(self) -> np.ndarray:
        th, tw = self.texture.shape[:2]
        w, h = self.size_m
        return np.array([[w / tw, 0, -w / 2 + 0.5 * w / tw], [0, h / th, -h / 2 + 0.5 * h / th], [0, 0, 1]])

    def homography(self, K: np.ndarray, t: int) -> np.ndarray:
        T = self.T_cam_plane[t]
        M = np.stack([T[:3, 0], T[:3, 1], T[:3, 3]], axis=1)
        return K @ M @ self.texture_to_plane()

    def intersect(self, K: np.ndarray, t: int, px: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rays through pixels ``px`` [...,2] -> (depth Z [...], point in plane coords [...,3], inside [...])."""
        T = self.T_cam_plane[t]
        n, p0 = T[:3, 2], T[:3, 3]
        d = np.stack([(px[..., 0] - K[0, 2]) / K[0, 0], (px[..., 1] - K[1, 2]) / K[1, 1], np.ones(px.shape[:-1])], -1)
        denom = d @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = (p0 @ n) / denom
        pc = d * lam[..., None]
        pp = (pc - p0) @ T[:3, :3]
        w, h = self.size_m
        inside = (lam > 0) & (np.abs(pp[..., 0]) <= w / 2) & (np.abs(pp[..., 1]) <= h / 2)
        return lam, pp, inside


@dataclass
class SyntheticScene:
    camera: CameraModel
    frames: np.ndarray        # [T,H,W,3] uint8 RGB
    depth_m: np.ndarray       # [T,H,W] float32 true depth along the optical axis
    object_mask: np.ndarray   # [T,H,W] bool: object pixels not hidden by the occluder
    occluder_mask: np.ndarray  # [T,H,W] bool
    obj: Plane
    occluder: Plane | None
    fps: float = 10.0
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def video(self) -> Video:
        return Video(frames=self.frames.copy(), fps=self.fps)

    def rgbd0(self, depth_noise_m: float = 0.0, seed: int = 0) -> RGBD:
        d = self.depth_m[0].copy()
        if depth_noise_m:
            d = d + np.random.default_rng(seed).normal(0, depth_noise_m, d.shape).astype(np.float32)
        return RGBD(rgb=self.frames[0].copy(), depth_m=d.astype(np.float32), camera=self.camera)

    def box(self, margin_px: int = 6) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(self.object_mask[0])
        H, W = self.object_mask.shape[1:]
        return (max(0, int(xs.min()) - margin_px), max(0, int(ys.min()) - margin_px),
                min(W, int(xs.max()) + 1 + margin_px), min(H, int(ys.max()) + 1 + margin_px))

    def rel_depth(self, *, scale: float = TRUE_SCALE, shift: float = TRUE_SHIFT, noise: float = 0.01,
                  outlier_frac: float = 0.0, blobs_per_frame: int = 0, blob_radius_px: int = 8,
                  seed: int = 0) -> np.ndarray:
        """Relative depth with Z = scale*rel + shift, multiplicative Gaussian noise (``noise`` = std as
        a fraction of each value, iid per pixel and frame), ``outlier_frac`` of pixels replaced by
        uniform junk over [0.5*min, 1.5*max] of the frame, and ``blobs_per_frame`` discs (radius
        ``blob_radius_px``) per frame 1..T-1 on the object whose depth is off by +-15 % (the blob-like
        failures of real depth models, too big for a median filter)."""
        rng = np.random.default_rng(seed)
        rel = (self.depth_m.astype(np.float64) - shift) / scale
        rel = rel * (1.0 + noise * rng.standard_normal(rel.shape))
        if outlier_frac > 0:
            bad = rng.random(rel.shape) < outlier_frac
            lo, hi = 0.5 * rel.min(), 1.5 * rel.max()
            rel[bad] = rng.uniform(lo, hi, int(bad.sum()))
        if blobs_per_frame > 0:
            H, W = rel.shape[1:]
            for t in range(1, rel.shape[0]):
                ys, xs = np.nonzero(self.object_mask[t])
                if len(xs) == 0:
                    continue
                for _ in range(blobs_per_frame):
                    i = int(rng.integers(len(xs)))
                    disc = np.zeros((H, W), np.uint8)
                    cv2.circle(disc, (int(xs[i]), int(ys[i])), blob_radius_px, 1, -1)
                    rel[t][disc.astype(bool)] *= 1.0 + rng.choice([-0.15, 0.15])
        return rel.astype(np.float32)

    def query_truth(self, query_px: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For query pixels in frame 0 (assumed on the object): true base-frame points [T,n,3],
        true pixels [T,n,2], true visibility [T,n] (in the image and not behind the occluder),
        and the distance [T,n] (px) of each true pixel to the nearest image border / occluder
        edge (to leave ambiguous boundary cases out of a test)."""
        K = self.camera.K
        _, pp0, inside0 = self.obj.intersect(K, 0, np.asarray(query_px, np.float64))
        p_obj = np.concatenate([pp0, np.ones(pp0.shape[:-1] + (1,))], -1)  # plane coords, homogeneous
        T = self.num_frames
        H, W = self.frames.shape[1:3]
        pts_base, px, vis, margin = [], [], [], []
        for t in range(T):
            pc = p_obj @ self.obj.T_cam_plane[t].T
            pb = pc @ self.camera.T_base_cam.T
            uv = np.stack([K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2], K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]], -1)
            in_img = (uv[:, 0] >= 0) & (uv[:, 0] <= W - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= H - 1) & (pc[:, 2] > 0)
            m = np.minimum.reduce([uv[:, 0], W - 1 - uv[:, 0], uv[:, 1], H - 1 - uv[:, 1]])
            occl = np.zeros(len(uv), bool)
            if self.occluder is not None:
                _, opp, oin = self.occluder.intersect(K, t, uv)
                occl = oin
                ow, oh = self.occluder.size_m
                # distance (m in the occluder plane -> px at its depth) to the occluder's edge
                edge_m = np.minimum(ow / 2 - np.abs(opp[:, 0]), oh / 2 - np.abs(opp[:, 1]))
                zo = self.occluder.T_cam_plane[t][2, 3]
                m = np.minimum(m, np.abs(edge_m) * K[0, 0] / zo)
            pts_base.append(pb[:, :3])
            px.append(uv)
            vis.append(in_img & ~occl & inside0)
            margin.append(m)
        return (np.stack(pts_base).astype(np.float64), np.stack(px), np.stack(vis), np.stack(margin))


def make_scene(width: int = 320, height: int = 240, num_frames: int = 24, *, occluder: bool = False,
               exit_frame: bool = False, seed: int = 0, fps: float = 10.0, supersample: int = 2) -> SyntheticScene:
    """Render the scene. ``exit_frame``: the object slides out past the right image border by the
    end. ``occluder``: a near vertical bar sweeps across the object in the middle of the video."""
    rng = np.random.default_rng(seed)
    cam = make_camera(width, height)
    K = cam.K
    f = K[0, 0]
    T = num_frames
    s = np.linspace(0.0, 1.0, T)
    ease = 0.5 - 0.5 * np.cos(np.pi * s)  # smooth start and stop

    # object: 20 x 15 cm card, 0.62 m away, tilted so that its depth varies across it (which
    # makes scale and shift of a relative depth separable over the object's pixels)
    z0 = 0.62
    obj_size = (0.20, 0.15)
    R0 = _rot([0, 1, 0], np.deg2rad(-50)) @ _rot([1, 0, 0], np.deg2rad(25))
    t0 = np.array([-0.02, 0.0, z0])
    dt = np.array([0.42, -0.03, 0.10]) if exit_frame else np.array([0.07, -0.03, 0.10])
    axis = np.array([0.3, 1.0, 0.2])
    poses = np.stack([_pose(_rot(axis, np.deg2rad(25) * e) @ R0, t0 + dt * e) for e in ease])
    tex_px = int(1.3 * f * max(obj_size) / z0) * supersample
    obj = Plane(_noise_texture(rng, tex_px, int(tex_px * obj_size[1] / obj_size[0])), obj_size, poses)

    # background: a big textured plane ~1.2 m away, slightly tilted, static
    bg_size = (2.4, 1.8)
    bg_pose = _pose(_rot([1, 0, 0], np.deg2rad(-15)) @ _rot([0, 1, 0], np.deg2rad(10)), np.array([0.0, 0.0, 1.25]))
    bg_tex_px = int(f * bg_size[0] / 1.2 * 0.7) * supersample
    # (a duller, wood-like tint than the card's, as a table top would be)
    bg_tex = _noise_texture(rng, bg_tex_px, int(bg_tex_px * bg_size[1] / bg_size[0]), lo=70, span=110,
                            tint=(1.0, 0.8, 0.55))
    bg = Plane(bg_tex, bg_size,
               np.repeat(bg_pose[None], T, axis=0))

    occ = None
    if occluder:
        zo = 0.40
        occ_size = (0.035, 0.40)
        # sweep across the object's image position (left -> right) during the middle of the video
        u_obj = (K @ (t0 + 0.5 * dt))[0] / (t0 + 0.5 * dt)[2]
        x_obj = (u_obj - K[0, 2]) / f * zo
        xs = x_obj + np.interp(s, [0.0, 0.3, 0.7, 1.0], [-0.16, -0.12, 0.12, 0.16])
        occ_poses = np.stack([_pose(np.eye(3), np.array([x, 0.0, zo])) for x in xs])
        occ_tex = np.zeros((64 * supersample, 6 * supersample, 3), np.uint8)
        occ_tex[:] = (200, 60, 40)
        occ_tex[::8 * supersample // 2] = (240, 230, 220)  # stripes: some texture, clearly not the card
        occ = Plane(occ_tex, occ_size, occ_poses)

    return _render(cam, bg, obj, occ, T, width, height, supersample, fps,
                   {"seed": seed, "exit_frame": exit_frame, "occluder": occluder})



def make_door_scene(width: int = 640, height: int = 480, num_frames: int = 24, *, seed: int = 0, fps: float = 10.0,
                    supersample: int = 2, gap_m: float = 0.03, open_deg: float = 30.0) -> SyntheticScene:
    """A textured door (a 30 x 40 cm cabinet door) swinging open by ``open_deg`` about its left
    edge, in front of a wall of the *same* material: both textures are drawn by one generator with
    the same parameters at the same pixels per metre (the door is cut from a second wall-sized
    draw), so colour statistics cannot tell them apart. Closed, the door stands ``gap_m`` proud
    of the wall, which is tilted to the camera so that depth varies across the door."""
    rng = np.random.default_rng(seed)
    cam = make_camera(width, height)
    K = cam.K
    f = K[0, 0]
    T = num_frames
    s = np.linspace(0.0, 1.0, T)
    ease = 0.5 - 0.5 * np.cos(np.pi * s)

    wall_size = (2.4, 1.8)
    z_wall = 1.05
    R_wall = _rot([0, 1, 0], np.deg2rad(25)) @ _rot([1, 0, 0], np.deg2rad(-12))  # local z: away from the camera
    T_cam_wall = _pose(R_wall, np.array([0.0, 0.0, z_wall]))
    px_per_m = f / z_wall * 0.9 * supersample
    tex_w, tex_h = int(px_per_m * wall_size[0]), int(px_per_m * wall_size[1])
    # (same parameters for both draws: "similarly textured" by construction)
    wall_tex = _material_texture(rng, tex_w, tex_h, px_per_m)
    stock = _material_texture(rng, tex_w, tex_h, px_per_m)
    door_size = (0.30, 0.40)
    dw, dh = int(px_per_m * door_size[0]), int(px_per_m * door_size[1])
    ox, oy = int(rng.integers(0, tex_w - dw)), int(rng.integers(0, tex_h - dh))
    door_tex = np.ascontiguousarray(stock[oy:oy + dh, ox:ox + dw])

    hinge = np.array([-0.03 - door_size[0] / 2, 0.02, -gap_m])  # wall coordinates; -z is towards the camera
    poses = []
    for e in ease:
        th = np.deg2rad(open_deg) * e  # R_y(th) takes the door's +x edge towards -z: it opens towards us
        T_wall_door = _pose(np.eye(3), hinge) @ _pose(_rot([0, 1, 0], th), np.zeros(3)) @ \
            _pose(np.eye(3), np.array([door_size[0] / 2, 0.0, 0.0]))
        poses.append(T_cam_wall @ T_wall_door)
    door = Plane(door_tex, door_size, np.stack(poses))
    wall = Plane(wall_tex, wall_size, np.repeat(T_cam_wall[None], T, axis=0))
    return _render(cam, wall, door, None, T, width, height, supersample, fps,
                   {"seed": seed, "door": True, "gap_m": gap_m, "open_deg": open_deg})

def _render(cam: CameraModel, bg: Plane, obj: Plane, occ: Plane | None, T: int, width: int, height: int,
            supersample: int, fps: float, meta: dict) -> SyntheticScene:
    """Paint the planes far to near (``bg`` static, then ``obj``, then ``occ``) at ``supersample``x,
    with exact depth and masks by ray-plane intersection."""
    K = cam.K
    ss = supersample
    Kss = K.copy()
    Kss[:2] *= ss
    Kss[0, 2] = (K[0, 2] + 0.5) * ss - 0.5
    Kss[1, 2] = (K[1, 2] + 0.5) * ss - 0.5
    W2, H2 = width * ss, height * ss
    uu, vv = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([uu, vv], -1)
    zb, _, inb = bg.intersect(K, 0, pix)  # the background is static
    depth_bg = np.where(inb, zb, 0.0)
    frames, depths, omasks, occmasks = [], [], [], []
    layers = [p for p in (bg, obj, occ) if p is not None]
    rgbas = [np.concatenate([p.texture.astype(np.float32), np.ones(p.texture.shape[:2] + (1,), np.float32)], -1)
             for p in layers]
    bg_img = None
    for t in range(T):
        img = np.zeros((H2, W2, 3), np.float32)
        for p, rgba in zip(layers, rgbas):  # painter's order: far to near (fixed by construction)
            if p is bg and bg_img is not None:  # static: rendered once
                img[:] = bg_img
                continue
            Hm = p.homography(Kss, t)
            x0, y0, x1, y1 = _bbox(p, Kss, t, W2, H2)
            if x1 <= x0 or y1 <= y0:
                continue
            shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
            out = cv2.warpPerspective(rgba, shift @ Hm, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT)
            cov = out[..., 3:]
            roi = img[y0:y1, x0:x1]
            roi *= 1 - cov
            roi += out[..., :3] * cov
            if p is bg:
                bg_img = img.copy()
        frames.append(np.clip(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA) + 0.5, 0, 255).astype(np.uint8))
        depth = depth_bg.copy()
        occm = np.zeros((height, width), bool)
        objm = np.zeros((height, width), bool)
        for p, m in ((obj, objm), (occ, occm)):
            if p is None:
                continue
            x0, y0, x1, y1 = _bbox(p, K, t, width, height)
            if x1 <= x0 or y1 <= y0:
                continue
            z, _, inside = p.intersect(K, t, pix[y0:y1, x0:x1])
            depth[y0:y1, x0:x1] = np.where(inside, z, depth[y0:y1, x0:x1])
            m[y0:y1, x0:x1] = inside
        depths.append(depth.astype(np.float32))
        omasks.append(objm & ~occm)
        occmasks.append(occm)
    return SyntheticScene(camera=cam, frames=np.stack(frames), depth_m=np.stack(depths), object_mask=np.stack(omasks),
                          occluder_mask=np.stack(occmasks), obj=obj, occluder=occ, fps=fps, meta=meta)


def _bbox(p: Plane, K: np.ndarray, t: int, W: int, H: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), clipped to the image, that contains plane ``p`` at frame ``t``."""
    th, tw = p.texture.shape[:2]
    corners = cv2.perspectiveTransform(np.float64([[[-1, -1]], [[tw, -1]], [[tw, th]], [[-1, th]]]),
                                       p.homography(K, t))[:, 0]
    x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 1, 0, [W, H])
    x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 2, 0, [W, H])
    return int(x0), int(y0), int(x1), int(y1)


_CACHE: dict[tuple, SyntheticScene] = {}


def cached_scene(*, door: bool = False, **kwargs) -> SyntheticScene:
    """``make_scene(**kwargs)`` (``make_door_scene`` with ``door=True``) rendered once per test
    session (arrays marked read-only, so a test cannot change what another one sees)."""
    key = (door,) + tuple(sorted(kwargs.items()))
    if key not in _CACHE:
        sc = (make_door_scene if door else make_scene)(**kwargs)
        for a in (sc.frames, sc.depth_m, sc.object_mask, sc.occluder_mask):
            a.flags.writeable = False
        _CACHE[key] = sc
    return _CACHE[key]
