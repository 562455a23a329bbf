"""Per-frame alignment of a drifting video depth on the static scene (issue 14)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from synthetic_scene import cached_scene

from dream2flow.flow.align import FrameAlignConfig, fit_static_per_frame
from dream2flow.flow.extract import FlowConfig, extract_flow


@pytest.fixture(scope="module")
def scene():
    return cached_scene(width=320, height=240, num_frames=16, seed=0)


def _drift(rel: np.ndarray, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each frame's relative depth through its own affine map (frame 0 unchanged), as a single-image
    depth model drifts: gain 0.85..1.15, offset +-0.05 (relative units)."""
    rng = np.random.default_rng(seed)
    T = len(rel)
    g = np.concatenate([[1.0], rng.uniform(0.85, 1.15, T - 1)])
    o = np.concatenate([[0.0], rng.uniform(-0.05, 0.05, T - 1)])
    return (rel * g[:, None, None] + o[:, None, None]).astype(np.float32), g, o


def _err(sc, res) -> float:
    P, _, _, _ = sc.query_truth(res.flow.query_px)
    e = np.linalg.norm(res.flow.points_base - P, axis=-1)
    return float(np.median(e[res.flow.visible]))


def test_per_frame_fit_recovers_the_drift(scene) -> None:
    rel = scene.rel_depth(noise=0.005, seed=0)
    drifted, g, o = _drift(rel)
    res = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=0)
    fa = fit_static_per_frame(drifted, scene.rgbd0().depth_m, res.mask, res.tracks_px, res.visible_2d, seed=0)
    assert fa.ok.all()
    # the fitted map undoes the drift: gain_t * (g_t rel + o_t) + offset_t == rel
    assert np.allclose(fa.gain * g, 1.0, atol=0.01)
    assert np.allclose(fa.gain * o + fa.offset, 0.0, atol=0.01)
    assert np.nanmax(fa.residual_m) < 0.02
    d = fa.to_dict()
    assert d["frames_refit"] == len(g) - 1 and len(d["residual_m"]) == len(g)


def test_flow_error_with_and_without_per_frame_alignment(scene) -> None:
    rel, _, _ = _drift(scene.rel_depth(noise=0.005, seed=0))
    on = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=0)
    off_cfg = replace(FlowConfig(), frame_align=replace(FrameAlignConfig(), enabled=False))
    off = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=0, config=off_cfg)
    assert on.flow.meta["frame_align"]["frames_refit"] == 15
    assert off.flow.meta["frame_align"] == {"enabled": False}
    e_on, e_off = _err(scene, on), _err(scene, off)
    assert e_on < 0.005, e_on
    assert e_off > 2 * e_on, (e_on, e_off)


def test_no_drift_changes_nothing_measurable(scene) -> None:
    rel = scene.rel_depth(noise=0.005, seed=0)
    on = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=0)
    fa = on.flow.meta["frame_align"]
    assert max(abs(x - 1.0) for x in fa["gain"]) < 0.01
    assert _err(scene, on) < 0.005


def test_object_shift_on_the_static_scale(scene) -> None:
    from synthetic_scene import TRUE_SCALE, TRUE_SHIFT

    from dream2flow.errors import AlignmentFailed
    from dream2flow.flow.align import fit_shift_on_mask

    rel = scene.rel_depth(noise=0.005, seed=0)
    rgbd = scene.rgbd0()
    res = extract_flow(scene.video(), rgbd, scene.box(), rel, num_points=64, seed=0)
    a = fit_shift_on_mask(rel[0], rgbd.depth_m, res.mask, TRUE_SCALE)
    assert a.scale == TRUE_SCALE and abs(a.shift - TRUE_SHIFT) < 0.005 and a.region == "mask_shift"
    # the flow stage's default: the object's scale is the static scene's, its shift its own
    assert res.alignment.region == "mask_shift" and abs(res.alignment.scale / TRUE_SCALE - 1) < 0.01
    with pytest.raises(AlignmentFailed):
        fit_shift_on_mask(rel[0], rgbd.depth_m, np.zeros_like(res.mask), TRUE_SCALE)


# ---- the fast paths compute what the plain ones do (issue 21) -------------------------------------

def test_lazy_frame_map_equals_the_applied_array(scene) -> None:
    rel, _, _ = _drift(scene.rel_depth(noise=0.005, seed=0))
    res = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=0)
    fa = fit_static_per_frame(rel, scene.rgbd0().depth_m, res.mask, res.tracks_px, res.visible_2d, seed=0)
    full, view = fa.apply(rel), fa.view(rel)
    assert view.shape == full.shape and len(view) == len(full)
    for t in (0, 5, len(rel) - 1):
        assert np.array_equal(view[t], full[t])
        assert np.array_equal(view[t, 10:50, 20:90], full[t, 10:50, 20:90])
    assert np.array_equal(np.asarray(view), full)


def test_moving_region_equals_the_full_frame_dilation(scene) -> None:
    import cv2

    from dream2flow.flow.align import moving_region

    res = extract_flow(scene.video(), scene.rgbd0(), scene.box(), scene.rel_depth(noise=0.005, seed=0),
                       num_points=64, seed=0)
    H, W = res.mask.shape
    for t, margin, shift in ((0, 12, 0), (7, 5, 0), (15, 30, 0), (3, 12, -200), (3, 12, 200)):
        tracks = res.tracks_px + np.float32(shift)  # also near and past the image edges
        got = moving_region(res.mask, tracks, res.visible_2d, t, margin)
        reg = res.mask.astype(np.uint8).copy()
        pts = tracks[t][res.visible_2d[t]]
        pts = pts[np.isfinite(pts).all(1)]
        cv2.fillConvexPoly(reg, cv2.convexHull(np.round(pts).astype(np.int32).reshape(-1, 1, 2)), 1)
        k = 2 * margin + 1
        want = cv2.dilate(reg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
        assert got.shape == (H, W) and np.array_equal(got, want), (t, margin, shift)


def test_vectorised_ransac_picks_the_sequential_scans_fit() -> None:
    from dream2flow.flow.align import _ransac_pairs

    rng = np.random.default_rng(5)
    z = rng.uniform(0.6, 1.4, 3000)
    x = 0.4 * z + 0.1 + rng.normal(0, 0.002, z.size)
    x[:600] = rng.uniform(0.0, 1.0, 600)  # gross outliers
    x[600:605] = -x[600:605]  # some pairs give a negative slope
    for seed in range(5):
        got = _ransac_pairs(x, z, np.random.default_rng(seed), 100, 0.1, 0.05)
        # the loop it replaced: the first candidate with the most inliers, same draws
        r = np.random.default_rng(seed)
        i, j = r.integers(z.size, size=100), r.integers(z.size, size=100)
        best = (-1, 0.0, 0.0)
        for ii, jj in zip(i, j):
            dz = z[ii] - z[jj]
            if not abs(dz) > 0.1:
                continue
            a = (x[ii] - x[jj]) / dz
            if not a > 0:
                continue
            c = x[ii] - a * z[ii]
            cnt = int(np.count_nonzero(np.abs(x - a * z - c) < 0.05 * a))
            if cnt > best[0]:
                best = (cnt, float(a), float(c))
        assert got == best and best[0] > 2000


def test_fast_median_is_numpys() -> None:
    from dream2flow.flow.align import _median

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5, 100, 101, 5999, 6000):
        a = rng.normal(size=n) * 10.0 ** rng.integers(-6, 3)
        assert _median(a) == np.median(a) and type(_median(a)) is type(np.median(a)), n
    a = rng.normal(size=51)
    a[7] = np.nan
    assert np.isnan(_median(a))


def _plain_fit_static_per_frame(rel, depth_m, mask0, tracks_px, visible, cfg, seed):
    """The per-frame fit as first written (whole-frame masks, ``fit_scale_shift`` per frame): the
    reference the gathered, hull-only fast path must equal."""
    from dream2flow.errors import AlignmentFailed
    from dream2flow.flow.align import fit_scale_shift, moving_region

    T = rel.shape[0]
    H, W = depth_m.shape
    grid = np.zeros((H, W), bool)
    grid[:: cfg.grid_px, :: cfg.grid_px] = True
    d0 = np.asarray(depth_m, np.float64)
    base = grid & np.isfinite(d0) & (d0 > 0)
    gain, offset, resid, npx, ok = np.ones(T), np.zeros(T), np.full(T, np.nan), np.zeros(T, np.int64), np.zeros(T, bool)
    ok[0] = True
    use0 = base & ~moving_region(mask0, tracks_px, visible, 0, cfg.object_margin_px)
    a0 = fit_scale_shift(rel[0], depth_m, use0, config=cfg.align, seed=seed)
    r0 = np.abs(a0.scale * rel[0].astype(np.float64) + a0.shift - d0)
    sigma = max(1.4826 * float(np.median(r0[use0 & np.isfinite(r0)])), 1e-4)
    agree = base & np.isfinite(r0) & (r0 <= cfg.agree_sigmas * sigma)
    resid[0], npx[0] = a0.residual_m, int(use0.sum())
    for t in range(1, T):
        use = agree & ~moving_region(mask0, tracks_px, visible, t, cfg.object_margin_px)
        npx[t] = int(use.sum())
        if npx[t] < cfg.min_pixels:
            continue
        try:
            a = fit_scale_shift(rel[t], depth_m, use, config=cfg.align, seed=seed + t)
        except AlignmentFailed:
            continue
        gain[t], offset[t] = a.scale / a0.scale, (a.shift - a0.shift) / a0.scale
        resid[t], ok[t] = a.residual_m, True
    return gain, offset, resid, npx, ok


@pytest.mark.parametrize("shift", [0.0, -150.0, 150.0])
def test_per_frame_fit_equals_the_plain_one(scene, shift: float) -> None:
    """The per-frame fit's fast path (static pixels gathered once, only the hull's dilated box dropped
    per frame; in-place RANSAC scoring; the partition median) gives the plain implementation's numbers
    bit for bit -- also with the tracks shifted across the image edges (hulls clipped by the frame)."""
    rel, _, _ = _drift(scene.rel_depth(noise=0.005, seed=0))
    res = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=0)
    tracks = res.tracks_px + np.float32(shift) * (np.arange(len(rel)) > 0)[:, None, None].astype(np.float32)
    cfg = FrameAlignConfig()
    got = fit_static_per_frame(rel, scene.rgbd0().depth_m, res.mask, tracks, res.visible_2d, config=cfg, seed=0)
    want = _plain_fit_static_per_frame(rel, scene.rgbd0().depth_m, res.mask, tracks, res.visible_2d, cfg, 0)
    for g, w in zip((got.gain, got.offset, got.residual_m, got.num_pixels, got.ok), want):
        assert np.array_equal(g, w, equal_nan=True)
    assert got.ok[1:].any()
