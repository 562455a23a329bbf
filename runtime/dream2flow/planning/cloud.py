"""The D0 point clouds the grasp proposer works on: the object's cloud (from a mask), the
scene's cloud (for collision checks), voxel down-sampling and PCA normals.

Default object mask (when the caller gives none): the flow's ``meta["box"]`` region (whole
image if absent) ∩ valid depth ∩ above the table (base z > ``table_z_m``) ∩ within a
small radius of the flow's frame-0 points (so the cabinet around a drawer, or the table
behind a bowl, is left out even inside the box).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import InvalidInput, PlanningFailed

if TYPE_CHECKING:
    from jaxtyping import Float

    from dream2flow.types import RGBD, ObjectFlow

TABLE_Z_M = 0.006


def backproject(rgbd: "RGBD", mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Valid-depth pixels (∩ ``mask``) -> (base-frame points [N,3], pixel (u,v) [N,2])."""
    d = rgbd.depth_m
    m = d > 0
    if mask is not None:
        m &= mask
    v, u = np.nonzero(m)
    px = np.stack([u, v], axis=1).astype(np.float64)
    return rgbd.camera.backproject(px, d[v, u]), px


def backproject_near(rgbd: "RGBD", centre: np.ndarray, radius_m: float) -> np.ndarray:
    """Base-frame points [N,3] of the valid-depth pixels that lie within ``radius_m`` of ``centre``
    [3] (base frame). The distance test runs in the camera frame (a rigid transform keeps
    distances), so only the points kept are transformed: the same points as ``backproject`` then
    a distance filter, at a fraction of the cost on a full image."""
    cam = rgbd.camera
    d = rgbd.depth_m
    v, u = np.nonzero(d > 0)
    z = d[v, u].astype(np.float64)
    x = (u - cam.K[0, 2]) / cam.K[0, 0] * z
    y = (v - cam.K[1, 2]) / cam.K[1, 1] * z
    R, t = cam.T_base_cam[:3, :3], cam.T_base_cam[:3, 3]
    cc = R.T @ (np.asarray(centre, dtype=np.float64) - t)
    keep = (x - cc[0]) ** 2 + (y - cc[1]) ** 2 + (z - cc[2]) ** 2 < radius_m ** 2
    pc = np.stack([x[keep], y[keep], z[keep]], axis=-1)
    return pc @ R.T + t


def voxel_downsample(points: np.ndarray, voxel_m: float, extra: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean point per voxel (deterministic: voxels in lexicographic order). ``extra`` [N,...]
    is averaged alongside (e.g. pixels).

    Why one integer key per voxel: ``np.unique(axis=0)`` on [N,3] keys sorts rows as structured
    records (~10x slower); the flattened key ``(kx·Ny + ky)·Nz + kz`` over the cloud's own extent
    orders the same voxels the same (lexicographic) way, and per-voxel sums accumulate in input
    order either way, so the result is bit-identical. When the extent is small (the usual case)
    occupied keys are found by counting into a dense array, which needs no sort at all."""
    if len(points) == 0:
        return points.reshape(0, 3), extra
    keys = np.floor(points / voxel_m).astype(np.int64)
    kmin = keys.min(0)
    span = keys.max(0) - kmin + 1
    n_keys = float(span[0]) * float(span[1]) * float(span[2])
    if n_keys <= 8 * len(points) + 2 ** 20:
        # a dense count per possible key: the occupied keys come out sorted without a sort
        k = keys - kmin
        flat = (k[:, 0] * span[1] + k[:, 1]) * span[2] + k[:, 2]
        occ = np.bincount(flat, minlength=int(n_keys))
        uniq = np.flatnonzero(occ)
        counts = occ[uniq]
        lut = np.empty(int(n_keys), dtype=np.int64)
        lut[uniq] = np.arange(len(uniq))
        inv = lut[flat]
    elif n_keys < 2.0 ** 62:
        k = keys - kmin
        flat = (k[:, 0] * span[1] + k[:, 1]) * span[2] + k[:, 2]
        _, inv, counts = np.unique(flat, return_inverse=True, return_counts=True)
    else:  # an absurd extent (bad depth): the general row-wise unique
        _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    out = np.stack([np.bincount(inv, weights=points[:, j], minlength=len(counts)) for j in range(3)], axis=1)
    out /= counts[:, None]
    ex = None
    if extra is not None:
        ex = np.zeros((len(counts),) + extra.shape[1:])
        np.add.at(ex, inv, extra)
        ex /= counts.reshape((-1,) + (1,) * (extra.ndim - 1))
    return out, ex


def estimate_normals(points: "Float[np.ndarray, 'N 3']", viewpoint: np.ndarray, k: int = 16) -> np.ndarray:
    """Unit normals by PCA over the k nearest neighbours, oriented towards ``viewpoint``
    (the camera centre: a single view only sees surfaces that face it)."""
    from scipy.spatial import cKDTree

    n = len(points)
    if n < 3:
        return np.tile([0.0, 0.0, 1.0], (n, 1))
    k = min(k, n)
    _, idx = cKDTree(points).query(points, k=k)
    nb = points[idx]  # [N,k,3]
    c = nb - nb.mean(1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", c, c)
    _, vecs = np.linalg.eigh(cov)
    normals = vecs[:, :, 0]
    flip = np.einsum("ni,ni->n", normals, viewpoint[None] - points) < 0
    normals[flip] *= -1
    return normals


def default_object_mask(flow: "ObjectFlow", rgbd: "RGBD", *, table_z_m: float = TABLE_Z_M) -> np.ndarray:
    """Object pixels of D0: box ∩ valid depth ∩ above the table ∩ near the flow's frame-0 points."""
    from scipy.spatial import cKDTree

    H, W = rgbd.depth_m.shape
    box_mask = np.zeros((H, W), dtype=bool)
    box = flow.meta.get("box") if isinstance(flow.meta, dict) else None
    if box is not None:
        try:
            x0, y0, x1, y1 = (int(round(float(b))) for b in box)
        except (TypeError, ValueError):
            raise InvalidInput(f"flow meta 'box' must be [x0,y0,x1,y1], got {box!r}") from None
        box_mask[max(0, y0):max(0, min(H, y1 + 1)), max(0, x0):max(0, min(W, x1 + 1))] = True
    else:
        box_mask[:] = True
    pts, px = backproject(rgbd, box_mask)
    keep = pts[:, 2] > table_z_m
    pts, px = pts[keep], px[keep]
    v0 = flow.visible[0] & np.isfinite(flow.points_base[0]).all(1)
    anchors = flow.points_base[0][v0].astype(np.float64)
    if len(anchors) == 0:
        raise PlanningFailed("the flow has no visible points in its first frame, so the object cannot be found in D0")
    if len(pts) == 0:
        raise PlanningFailed("no valid depth above the table inside the object box of D0")
    # radius: 1.5x the flow points' typical spacing, within [1, 3] cm
    if len(anchors) > 1:
        dnn, _ = cKDTree(anchors).query(anchors, k=2)
        r = float(np.clip(1.5 * np.median(dnn[:, 1]), 0.01, 0.03))
    else:
        r = 0.03
    d, _ = cKDTree(anchors).query(pts, k=1, distance_upper_bound=r)
    near = np.isfinite(d)
    mask = np.zeros((H, W), dtype=bool)
    sel = px[near].astype(int)
    mask[sel[:, 1], sel[:, 0]] = True
    if mask.sum() < 10:
        raise PlanningFailed(f"only {int(mask.sum())} D0 pixels lie near the flow's points: the object is not visible in D0")
    return mask
