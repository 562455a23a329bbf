"""``RGBDSegmenter``: box + I0 + D0 -> object mask, with depth as well as colour.

Why: colour alone (GrabCut) fails when the object's texture resembles what surrounds it, or when
a loose box takes in a cabinet around a drawer, yet the robot always has D0, where an object
standing in front of a wall or resting on a table is plain to see. Steps, inside a crop around
the box (the box plus half its size on each side):

1. **Planes.** Sequential RANSAC finds the crop's planes, biggest first (the table, a wall, the
   faces of a cabinet), from point triplets sampled close together so that small faces are
   found too. No intrinsics are needed: under a pinhole camera a 3D plane is exactly an affine
   function of *inverse* depth over pixel coordinates, ``1/z = a·u + b·v + c``; residuals are
   measured in metres, ``|z - 1/(a·u + b·v + c)| < max(plane_tol_m, plane_tol_rel·z)``.
2. **Depth discontinuities.** Between 4-neighbours whose depths jump by more than
   ``max(jump_m, jump_rel·z)`` the farther pixel is cut.
3. **Segments.** Connected pieces of one plane (or of the non-planar rest). A piece lying
   (almost) entirely inside the box (``>= sure_inside``) may be the object's; one spilling out of
   the box is background. The object is grown from the biggest such piece over touching pieces
   that are in front of it or continue it *convexly* (the faces of one box); a piece it occludes
   or meets at a *concave* crease (the table it rests on, the frame a door sits in) is not it; a
   coplanar neighbour across a groove (a drawer front and the panel below it) is *maybe* it.
   Convexity also needs no intrinsics: each side's local inverse-depth plane is extended over
   the other side and compared with the depth there.
4. **GrabCut on the combined prior.** If the object's pieces explain the box (their bounding box
   overlaps it with IoU >= ``min_box_iou``) the prior is *confident*: their core (eroded by ~3 %
   of the box) is ``GC_FGD``; a rim around them and the *maybe* pieces are ``GC_PR_FGD``
   (``GC_PR_BGD`` where depth saw something behind the object); other surfaces in the box and
   everything outside it are ``GC_BGD``. GrabCut's colour models settle the rim (e.g. a thin top
   face that depth merged with the cabinet top) and the maybes. Otherwise the prior is *weak*: the box is ``GC_PR_FGD`` except
   surfaces spilling far out of it (``GC_PR_BGD``), and colour decides, as in plain GrabCut.

Without depth (``depth_m`` None, or less than ``min_valid_frac`` of the box valid) it is plain
``GrabCutSegmenter`` and says so in a log line. Deterministic per ``seed`` (RANSAC samples,
OpenCV's RNG for GrabCut's k-means). Defaults suit exact (simulated) depth and a D435-class
sensor at about 1 m (6 mm plane tolerance, 12 mm jumps); noisier depth needs larger tolerances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.log import get_logger
from dream2flow.perception.classical import (CropWindow, check_rgb, crop_window, finish_mask,
                                             largest_component, run_grabcut)
from dream2flow.perception.protocols import Box, validate_box

if TYPE_CHECKING:
    from jaxtyping import Bool, Float, UInt8

log = get_logger("perception.rgbd_segmenter")


@dataclass
class SegmentResult:
    """``mask`` [H,W] bool; ``mode``: ``confident`` / ``weak`` (depth prior used) or ``rgb_only``
    (plain GrabCut: no usable depth); ``num_planes`` found in the crop; ``prior`` [h,w] uint8 GC_*
    labels of the crop (None for ``rgb_only``); ``window``; ``reason`` one sentence."""

    mask: np.ndarray
    mode: str
    num_planes: int
    prior: np.ndarray | None
    window: CropWindow
    reason: str


class RGBDSegmenter:
    """Box + RGB + metric depth -> object mask (``name = "classical_rgbd"``). See the module doc."""

    name = "classical_rgbd"

    def __init__(self, seed: int = 0, *, iterations: int = 5, context: float = 0.5, min_pixels: int = 20,
                 plane_tol_m: float = 0.006, plane_tol_rel: float = 0.006, max_planes: int = 8,
                 min_plane_frac: float = 0.02, ransac_iters: int = 256, ransac_points: int = 4000,
                 jump_m: float = 0.012, jump_rel: float = 0.02, min_valid_frac: float = 0.3,
                 min_box_iou: float = 0.35, sure_inside: float = 0.9, sure_outside: float = 0.1,
                 core_erode_px: int | None = None, band_px: int = 4) -> None:
        for nm, v in (("iterations", iterations), ("ransac_iters", ransac_iters), ("ransac_points", ransac_points),
                      ("max_planes", max_planes)):
            if int(v) < 1:
                raise InvalidInput(f"RGBDSegmenter {nm} must be >= 1, got {v}")
        for nm, v in (("band_px", band_px), ("core_erode_px", 0 if core_erode_px is None else core_erode_px),
                      ("min_pixels", min_pixels)):
            if int(v) < 0:
                raise InvalidInput(f"RGBDSegmenter {nm} must be >= 0, got {v}")
        if not float(context) > 0:
            raise InvalidInput(f"RGBDSegmenter context must be > 0, got {context}")
        for nm, v in (("plane_tol_m", plane_tol_m), ("jump_m", jump_m)):
            if not float(v) > 0:
                raise InvalidInput(f"RGBDSegmenter {nm} must be > 0 m, got {v}")
        for nm, v in (("min_plane_frac", min_plane_frac), ("min_valid_frac", min_valid_frac),
                      ("min_box_iou", min_box_iou), ("sure_inside", sure_inside), ("sure_outside", sure_outside)):
            if not 0.0 <= float(v) <= 1.0:
                raise InvalidInput(f"RGBDSegmenter {nm} must be in [0, 1], got {v}")
        self.seed = int(seed)
        self.iterations = int(iterations)
        self.context = float(context)
        self.min_pixels = int(min_pixels)
        self.plane_tol_m, self.plane_tol_rel = float(plane_tol_m), float(plane_tol_rel)
        self.min_plane_frac = float(min_plane_frac)
        self.ransac_iters, self.ransac_points = int(ransac_iters), int(ransac_points)
        self.jump_m, self.jump_rel = float(jump_m), float(jump_rel)
        self.min_valid_frac = float(min_valid_frac)
        self.min_box_iou = float(min_box_iou)
        self.sure_inside, self.sure_outside = float(sure_inside), float(sure_outside)
        self.max_planes = int(max_planes)
        self.core_erode_px = None if core_erode_px is None else int(core_erode_px)
        self.band_px = int(band_px)

    def __call__(self, image: UInt8[np.ndarray, "H W 3"], box: Box,
                 depth_m: Float[np.ndarray, "H W"] | None = None) -> Bool[np.ndarray, "H W"]:
        return self.segment(image, box, depth_m).mask

    def segment(self, image: UInt8[np.ndarray, "H W 3"], box: Box,
                depth_m: Float[np.ndarray, "H W"] | None = None) -> SegmentResult:
        """The mask with how it was made (mode, planes, prior labels); ``__call__`` returns the mask."""
        import cv2

        img = check_rgb(image)
        H, W = img.shape[:2]
        box_f = validate_box(box, W, H)
        win = crop_window(box_f, W, H, self.context)
        cx0, cy0, cx1, cy1 = win.crop
        ix0, iy0, ix1, iy1 = win.box
        in_box = np.zeros((cy1 - cy0, cx1 - cx0), bool)
        in_box[iy0 - cy0:iy1 - cy0, ix0 - cx0:ix1 - cx0] = True

        z = None
        if depth_m is not None:
            d = np.asarray(depth_m)
            if d.shape != (H, W):
                raise InvalidInput(f"depth is {list(d.shape)} but the image is [{H}, {W}]: D0 must be aligned with I0")
            if not np.issubdtype(d.dtype, np.number):
                raise InvalidInput(f"depth must be numeric metres, got {d.dtype}")
            z = d[cy0:cy1, cx0:cx1].astype(np.float32)
            z = np.where(np.isfinite(z) & (z > 0), z, 0.0).astype(np.float32)
        valid_frac = float((z[in_box] > 0).mean()) if z is not None else 0.0
        if z is None or valid_frac < self.min_valid_frac:
            why = ("no depth given" if z is None else
                   f"only {100 * valid_frac:.0f}% of the box has valid depth (< {100 * self.min_valid_frac:.0f}%)")
            log.info("RGBDSegmenter: %s: plain GrabCut (colour only) on box %s", why,
                     tuple(round(v, 1) for v in box_f))
            rect = (ix0 - cx0, iy0 - cy0, ix1 - ix0, iy1 - iy0)
            fg = run_grabcut(img, win, np.zeros(in_box.shape, np.uint8), self.iterations, self.seed, rect=rect)
            return SegmentResult(finish_mask(fg, win, (H, W), box_f, self.min_pixels), "rgb_only", 0, None, win,
                                 why + ": plain GrabCut")

        prior, mode, n_planes, reason = self._prior(z, in_box)
        fg = run_grabcut(img, win, prior.copy(), self.iterations, self.seed)
        if mode == "confident":  # keep every piece that holds some of the depth core, drop specks
            n, labels = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
            core_labels = np.unique(labels[(prior == cv2.GC_FGD) & fg])
            fg = np.isin(labels, core_labels[core_labels > 0]) if core_labels.size else largest_component(fg)
        mask = finish_mask(fg, win, (H, W), box_f, self.min_pixels, largest=mode != "confident")
        log.debug("RGBDSegmenter: %s on box %s (%s)", mode, tuple(round(v, 1) for v in box_f), reason)
        return SegmentResult(mask, mode, n_planes, prior, win, reason)

    # --- the depth prior -----------------------------------------------------------------------
    def _prior(self, z: np.ndarray, in_box: np.ndarray) -> tuple[np.ndarray, str, int, str]:
        """GC_* labels [h,w] for the crop from depth; mode; number of planes; a reason."""
        import cv2

        valid = z > 0
        h, w = z.shape
        plane_id = self._planes(z, valid, in_box)
        n_planes = int(plane_id.max()) + 1
        keep = valid & ~self._far_side_of_jumps(z, valid)
        # segments: connected pieces of one plane (or of the non-planar rest) not cut by a jump
        seg = np.zeros((h, w), np.int32)
        n_seg = 0
        for p in range(-1, n_planes):
            n, lab = cv2.connectedComponents((keep & (plane_id == p)).astype(np.uint8), connectivity=4)
            if n > 1:
                seg[lab > 0] = lab[lab > 0] + n_seg
                n_seg += n - 1
        total = np.bincount(seg.ravel(), minlength=n_seg + 1)
        inside = np.bincount(seg[in_box], minlength=n_seg + 1)
        frac = inside / np.maximum(total, 1)
        min_comp = max(self.min_pixels, int(0.002 * in_box.sum()))
        big = inside >= min_comp
        big[0] = False
        sure = big & (frac >= self.sure_inside)  # segments (almost) entirely inside the box
        is_big = big[seg]
        f = frac[seg]

        # the object: the biggest such segment, grown over adjacent ones that are not behind it
        obj_ids: set[int] = set()
        maybe_ids: set[int] = set()
        if sure.any():
            main = int(np.argmax(np.where(sure, inside, -1)))
            obj_ids = {main}
            rel = self._relations(seg, z, n_seg)
            kind: dict[tuple[int, int], str] = {}

            def relation(a_id: int, b_id: int) -> str:
                """B seen from A: "front", "behind", or for continuous surfaces "convex", "flat" (coplanar,
                e.g. across a groove: one part or two?) or "concave"."""
                if (a_id, b_id) not in kind:
                    dz = rel[a_id][b_id]
                    if dz <= -1.0:
                        kind[a_id, b_id] = "front"
                    elif dz >= 1.0:
                        kind[a_id, b_id] = "behind"
                    else:
                        c = self._convexity(seg, z, a_id, b_id)
                        kind[a_id, b_id] = "concave" if c < -0.5 else "convex" if c > 0.5 else "flat"
                return kind[a_id, b_id]

            grow = [main]
            while grow:  # breadth first from the biggest; a segment the object occludes anywhere is not it
                a_id = grow.pop(0)
                for b_id in sorted(rel.get(a_id, {})):
                    if (sure[b_id] and b_id not in obj_ids and relation(a_id, b_id) in ("front", "convex")
                            and not any(rel[o].get(b_id, 0.0) >= 1.0 for o in obj_ids)):
                        obj_ids.add(b_id)
                        grow.append(b_id)
            # "maybe" the object (colour decides): coplanar neighbours across a groove (one part or
            # two?). Not grown further: a cabinet continues convexly from its lower front.
            for a_id in sorted(obj_ids):
                for b_id in sorted(rel.get(a_id, {})):
                    if (sure[b_id] and b_id not in obj_ids and relation(a_id, b_id) == "flat"
                            and not any(rel[o].get(b_id, 0.0) >= 1.0 for o in obj_ids)):
                        maybe_ids.add(b_id)
            # segments the object occludes or rests against, and nowhere a continuation of it
            behind = np.zeros(n_seg + 1, bool)
            attached = np.zeros(n_seg + 1, bool)
            for a_id in obj_ids | maybe_ids:
                for b_id in rel.get(a_id, {}):
                    if b_id not in obj_ids and b_id not in maybe_ids:
                        r_ab = relation(a_id, b_id)
                        behind[b_id] |= r_ab in ("behind", "concave")
                        attached[b_id] |= r_ab in ("front", "convex", "flat")
            behind &= ~attached
            behind[0] = True  # the far side of depth jumps
        else:
            behind = np.zeros(n_seg + 1, bool)
        obj = np.isin(seg, sorted(obj_ids)) & in_box
        maybe = np.isin(seg, sorted(maybe_ids)) & in_box

        prior = np.full((h, w), cv2.GC_BGD, np.uint8)
        prior[in_box] = cv2.GC_PR_BGD
        biou = _bbox_iou(obj | maybe, in_box)
        if obj.any() and biou >= self.min_box_iou:
            mode = "confident"
            filled = _fill_holes(obj)
            prior[in_box & filled] = cv2.GC_PR_FGD  # depth holes and specks inside the object too
            bh, bw = np.nonzero(in_box.any(1))[0].size, np.nonzero(in_box.any(0))[0].size
            r = self.core_erode_px if self.core_erode_px is not None else max(2, int(round(0.03 * min(bh, bw))))
            if r > 0:
                k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)
                prior[cv2.erode(obj.astype(np.uint8), k).astype(bool)] = cv2.GC_FGD
            else:
                prior[obj] = cv2.GC_FGD
            band = max(self.band_px, 2 * r)
            near = cv2.dilate(filled.astype(np.uint8), cv2.getStructuringElement(
                cv2.MORPH_ELLIPSE, (2 * band + 1,) * 2)).astype(bool)
            prior[in_box & is_big & ~filled & ~near] = cv2.GC_BGD  # other surfaces, away from the object
            # the rim: colour decides, starting from "object" except where depth saw it behind the object
            prior[in_box & near & ~filled] = cv2.GC_PR_FGD
            prior[in_box & near & ~filled & valid & behind[seg]] = cv2.GC_PR_BGD
            prior[maybe & ~filled] = cv2.GC_PR_FGD
            reason = (f"{n_planes} plane(s), {int(big.sum())} depth segment(s), {len(obj_ids)} of them the object, "
                      f"{len(maybe_ids)} maybe (bbox IoU with the box {biou:.2f})")
        else:
            mode = "weak"
            prior[in_box & ~(is_big & (f < self.sure_outside))] = cv2.GC_PR_FGD
            reason = (f"{n_planes} plane(s), {int(big.sum())} depth segment(s); none explains the box "
                      f"(bbox IoU {biou:.2f}): colour decides")
        if not np.isin(prior, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():  # GrabCut needs some foreground
            prior[in_box] = cv2.GC_PR_FGD
            mode, reason = "weak", reason + "; nothing left in the box: colour decides"
        return prior, mode, n_planes, reason

    def _relations(self, seg: np.ndarray, z: np.ndarray, n_seg: int) -> dict[int, dict[int, float]]:
        """For each pair of touching segments A, B (pixels up to 2 apart, so across a cut pixel too):
        ``rel[A][B]`` = median of (z_B - z_A) / jump threshold. < 1: B is not behind A (continuous
        surfaces meeting at a crease, or B in front of A); >= 1: B is behind A."""
        keys, vals = [], []
        h, w = seg.shape
        for dy, dx in ((0, 1), (1, 0), (0, 2), (2, 0)):
            A, B = seg[:h - dy, :w - dx], seg[dy:, dx:]
            zA, zB = z[:h - dy, :w - dx], z[dy:, dx:]
            m = (A > 0) & (B > 0) & (A != B)
            if not m.any():
                continue
            a, b, za, zb = A[m].astype(np.int64), B[m].astype(np.int64), zA[m], zB[m]
            thr = np.maximum(self.jump_m, self.jump_rel * np.minimum(za, zb))
            keys += [a * (n_seg + 1) + b, b * (n_seg + 1) + a]
            vals += [(zb - za) / thr, (za - zb) / thr]
        out: dict[int, dict[int, float]] = {}
        if not keys:
            return out
        k, v = np.concatenate(keys), np.concatenate(vals)
        order = np.argsort(k, kind="stable")
        k, v = k[order], v[order]
        uniq, start = np.unique(k, return_index=True)
        for key, lo, hi in zip(uniq, start, list(start[1:]) + [len(k)]):
            a_id, b_id = divmod(int(key), n_seg + 1)
            out.setdefault(a_id, {})[b_id] = float(np.median(v[lo:hi]))
        return out

    def _convexity(self, seg: np.ndarray, z: np.ndarray, a_id: int, b_id: int, band: int = 8) -> float:
        """How two continuous segments meet, in units of the plane tolerance: > 0 convex (each side's
        local plane, extended over the other, passes in front of it: an edge of one object), < 0
        concave (an object resting against a support), 0 if a side is too thin to fit a plane."""
        import cv2

        ys, xs = np.nonzero((seg == a_id) | (seg == b_id))
        y0, y1 = max(0, ys.min() - 1), ys.max() + 2
        x0, x1 = max(0, xs.min() - 1), xs.max() + 2
        sg, zz = seg[y0:y1, x0:x1], z[y0:y1, x0:x1].astype(np.float64)
        ma, mb = sg == a_id, sg == b_id
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band + 1,) * 2)
        na = ma & cv2.dilate(mb.astype(np.uint8), k).astype(bool)
        nb = mb & cv2.dilate(ma.astype(np.uint8), k).astype(bool)

        def fit(m: np.ndarray) -> np.ndarray | None:
            v, u = np.nonzero(m)
            if u.size < 8:
                return None
            A = np.stack([u / 1000.0, v / 1000.0, np.ones(u.size)], 1)
            wts = zz[v, u] ** 2
            M = A * wts[:, None]
            sv = np.linalg.svd(M, compute_uv=False)
            if sv[-1] < 1e-6 * sv[0]:  # (almost) collinear pixels: no plane
                return None
            return np.linalg.lstsq(M, wts / zz[v, u], rcond=None)[0]

        def gap(coef: np.ndarray, m: np.ndarray) -> float:
            """median of (actual - extended plane) depth over ``m``, in tolerances."""
            v, u = np.nonzero(m)
            p = coef[0] * u / 1000.0 + coef[1] * v / 1000.0 + coef[2]
            ok = p > 0
            if not ok.any():
                return 0.0
            zt = zz[v, u][ok]
            return float(np.median((zt - 1.0 / p[ok]) / self._tol(zt)))

        ca, cb = fit(na), fit(nb)
        if ca is None or cb is None:
            return 0.0
        return 0.5 * (gap(ca, nb) + gap(cb, na))

    def _tol(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(self.plane_tol_m, self.plane_tol_rel * z)

    def _planes(self, z: np.ndarray, valid: np.ndarray, in_box: np.ndarray) -> np.ndarray:
        """Sequential RANSAC of planes ``1/z = a·u + b·v + c`` (metric residuals) over the crop,
        biggest first, each from triplets sampled close together (so that a small face is found
        too) -> plane index per pixel [h,w] int32, -1 where no plane holds."""
        h, w = z.shape
        rng = np.random.default_rng(self.seed)
        v_all, u_all = np.mgrid[0:h, 0:w]
        U, V = u_all / 1000.0, v_all / 1000.0
        tol_all = self._tol(z)
        plane_id = np.full((h, w), -1, np.int32)
        bh, bw = np.nonzero(in_box.any(1))[0], np.nonzero(in_box.any(0))[0]
        radius = max(3, int(0.15 * min(len(bh), len(bw))))
        min_support = max(50, int(self.min_plane_frac * int(in_box.sum())))
        for p in range(self.max_planes):
            free = valid & (plane_id < 0)
            vs, us = np.nonzero(free)
            if us.size < min_support:
                break
            if us.size > self.ransac_points:
                pick = np.sort(rng.choice(us.size, self.ransac_points, replace=False))
                us, vs = us[pick], vs[pick]
            zz = z[vs, us].astype(np.float64)
            A = np.stack([us / 1000.0, vs / 1000.0, np.ones(us.size)], 1)
            inv = 1.0 / zz
            tol = self._tol(zz)
            # triplets: a random free point and two free points within ``radius`` px of it
            i0 = rng.integers(0, us.size, self.ransac_iters)
            off = rng.integers(-radius, radius + 1, (self.ransac_iters, 2, 2))
            pu = np.clip(us[i0][:, None] + off[..., 0], 0, w - 1)
            pv = np.clip(vs[i0][:, None] + off[..., 1], 0, h - 1)
            okp = free[pv, pu].all(1)
            if not okp.any():
                break
            pu = np.concatenate([us[i0][:, None], pu], 1)[okp]
            pv = np.concatenate([vs[i0][:, None], pv], 1)[okp]
            M = np.stack([pu / 1000.0, pv / 1000.0, np.ones(pu.shape)], -1)
            y = 1.0 / z[pv, pu].astype(np.float64)
            ok = np.abs(np.linalg.det(M)) > 1e-15
            if not ok.any():
                break
            coefs = np.linalg.solve(M[ok], y[ok][..., None])[..., 0]  # [k,3]
            pred = A @ coefs.T  # [n,k] inverse depth
            # inliers |zz - 1/pred| < tol where pred > 0, computed in place: [n,k] is ~1M values per
            # plane, and fresh temporaries of that size cost more than the arithmetic (same numbers)
            r = np.empty_like(pred)
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(1.0, pred, out=r)
                np.subtract(zz[:, None], r, out=r)
                np.abs(r, out=r)
            inl = np.less(r, tol[:, None])
            inl &= pred > 0
            best = int(np.argmax(np.count_nonzero(inl, axis=0)))
            sel = inl[:, best].copy()
            coef = coefs[best]
            for _ in range(2):  # refit on the inliers (weights z^2: inverse-depth residual -> metres)
                if sel.sum() < 3:
                    break
                wts = zz[sel] ** 2
                coef, *_ = np.linalg.lstsq(A[sel] * wts[:, None], inv[sel] * wts, rcond=None)
                pp = A @ coef
                with np.errstate(divide="ignore", invalid="ignore"):
                    sel = (pp > 0) & (np.abs(zz - 1.0 / pp) < tol)
            full = coef[0] * U + coef[1] * V + coef[2]
            with np.errstate(divide="ignore", invalid="ignore"):
                on = free & (full > 0) & (np.abs(z - 1.0 / full) < tol_all)
            if on.sum() < min_support:
                break
            plane_id[on] = p
        return plane_id

    def _far_side_of_jumps(self, z: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Pixels that are the farther one of a 4-neighbour pair whose depths jump."""
        cut = np.zeros_like(valid)
        for axis in (0, 1):
            a = z[:-1, :] if axis == 0 else z[:, :-1]
            b = z[1:, :] if axis == 0 else z[:, 1:]
            both = (a > 0) & (b > 0)
            jump = both & (np.abs(a - b) > np.maximum(self.jump_m, self.jump_rel * np.minimum(a, b)))
            a_far, b_far = jump & (a > b), jump & (b > a)
            if axis == 0:
                cut[:-1, :] |= a_far
                cut[1:, :] |= b_far
            else:
                cut[:, :-1] |= a_far
                cut[:, 1:] |= b_far
        return cut


def _bbox_iou(mask: np.ndarray, box_mask: np.ndarray) -> float:
    """IoU of the bounding boxes of two masks (0 if either is empty)."""
    if not mask.any() or not box_mask.any():
        return 0.0

    def bb(m: np.ndarray) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(m)
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    a, b = bb(mask), bb(box_mask)
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its enclosed holes filled (flood fill from the border)."""
    import cv2

    m = mask.astype(np.uint8)
    h, w = m.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = m
    flood = pad.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return mask | (flood[1:-1, 1:-1] == 0)


__all__ = ["RGBDSegmenter", "SegmentResult"]
