"""Lifting tracks to 3D (issue 2): bilinear depth, validity, back-projection, filling."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_scene import TRUE_SCALE, TRUE_SHIFT, cached_scene

from dream2flow.flow.align import Alignment
from dream2flow.flow.lift import LiftConfig, calibrated_depth, fill_invisible, lift_tracks, sample_depth

IDENTITY = Alignment(scale=1.0, shift=0.0, residual_m=0.0, inlier_frac=1.0)


def test_bilinear_is_exact_on_a_plane_and_checks_neighbours() -> None:
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float32)
    depth = 0.5 + 0.01 * xx + 0.003 * yy
    px = np.array([[10.25, 7.5], [0.0, 0.0], [49.0, 39.0], [20.7, 30.1]])
    z, ok = sample_depth(depth, px)
    assert ok.all()
    np.testing.assert_allclose(z, 0.5 + 0.01 * px[:, 0] + 0.003 * px[:, 1], atol=1e-6)
    d = depth.copy()
    d[8, 11] = 0.0  # one invalid neighbour of (10.25, 7.5)
    d[30, 20] = np.nan  # one of (20.7, 30.1)
    z, ok = sample_depth(d, px)
    assert ok.tolist() == [False, True, True, False] and np.isnan(z[0])
    step = depth.copy()
    step[:, 25:] += 0.4  # a depth edge between columns 24 and 25
    z, ok = sample_depth(step, np.array([[24.5, 10.0], [22.0, 10.0], [-0.5, 3.0], [3.0, 39.5]]))
    assert ok.tolist() == [False, True, False, False]  # edge, fine, outside, outside


def test_calibrated_depth_applies_alignment_and_limits() -> None:
    rel = np.array([[0.1, 0.5], [np.nan, 100.0]], np.float32)
    a = Alignment(scale=2.0, shift=-0.1, residual_m=0.0, inlier_frac=1.0)
    z = calibrated_depth(rel, a, LiftConfig(median_px=0))
    np.testing.assert_allclose(z, [[0.1, 0.9], [0.0, 0.0]], atol=1e-6)  # NaN and > max_depth -> 0


def test_lift_reproduces_true_points_with_true_tracks() -> None:
    sc = cached_scene(width=320, height=240, num_frames=24, seed=0)
    ys, xs = np.nonzero(sc.object_mask[0])
    sel = np.random.default_rng(0).choice(len(xs), 64, replace=False)
    q = np.stack([xs[sel], ys[sel]], 1).astype(np.float64)
    P, px, V, _ = sc.query_truth(q)
    rel = ((sc.depth_m - TRUE_SHIFT) / TRUE_SCALE).astype(np.float32)
    a = Alignment(scale=TRUE_SCALE, shift=TRUE_SHIFT, residual_m=0.0, inlier_frac=1.0)
    pts, vis = lift_tracks(px, V, rel, a, sc.camera, LiftConfig(median_px=0))
    assert pts.shape == (24, 64, 3) and vis.shape == (24, 64)
    assert not (vis & ~V).any()
    assert vis.mean() > 0.9  # only rim points (a neighbour on the background) drop out
    err = np.linalg.norm(pts - P, axis=-1)[vis]
    assert err.max() < 1e-4  # exact depth + exact pixels -> exact 3D (float32 depth)


def test_fill_invisible_keeps_arrays_full() -> None:
    T, n = 5, 3
    pts = np.arange(T * n * 3, dtype=float).reshape(T, n, 3)
    vis = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]], bool)
    out = fill_invisible(pts, vis)
    np.testing.assert_array_equal(out[1, 0], pts[0, 0])  # last visible
    np.testing.assert_array_equal(out[4, 0], pts[2, 0])
    np.testing.assert_array_equal(out[0, 1], pts[2, 1])  # before first seen: first visible
    np.testing.assert_array_equal(out[4, 1], pts[3, 1])
    assert np.isnan(out[:, 2]).all()  # never visible
    np.testing.assert_array_equal(out[vis], pts[vis])


def test_lift_rejects_mismatched_shapes() -> None:
    from dream2flow.errors import InvalidInput

    sc = cached_scene(width=320, height=240, num_frames=24, seed=0)
    tr = np.zeros((24, 4, 2))
    with pytest.raises(InvalidInput, match="frames"):
        lift_tracks(tr, np.ones((24, 4), bool), np.ones((23, 240, 320), np.float32), IDENTITY, sc.camera)
    with pytest.raises(InvalidInput, match="camera"):
        lift_tracks(tr, np.ones((24, 4), bool), np.ones((24, 120, 160), np.float32), IDENTITY, sc.camera)


def test_lifting_on_crops_equals_the_whole_frame() -> None:
    """lift_tracks calibrates and median-filters only around each frame's points: the samples must be
    those of the whole-frame computation (points at the image border included)."""
    from dream2flow.flow.align import Alignment
    from dream2flow.types import CameraModel

    rng = np.random.default_rng(3)
    T, H, W, n = 5, 60, 80, 40
    cam = CameraModel(K=np.array([[70.0, 0, 40], [0, 70.0, 30], [0, 0, 1]]), width=W, height=H, T_base_cam=np.eye(4))
    rel = rng.uniform(0.5, 1.5, (T, H, W)).astype(np.float32)
    rel[:, 20:30, 30:50] += 0.8  # a step: some samples sit across a jump
    px = np.stack([rng.uniform(0, W - 1, (T, n)), rng.uniform(0, H - 1, (T, n))], -1)
    px[:, :4] = [[0.0, 0.0], [W - 1, H - 1], [0.3, H - 1], [W - 1, 0.7]]
    vis = rng.random((T, n)) < 0.8
    a = Alignment(scale=1.7, shift=0.2, residual_m=0.0, inlier_frac=1.0, num_pixels=100)
    for cfg in (LiftConfig(), LiftConfig(median_px=3)):
        pts, v = lift_tracks(px, vis, rel, a, cam, cfg)
        for t in range(T):
            z, ok = sample_depth(calibrated_depth(rel[t], a, cfg), px[t], cfg)
            ok &= vis[t]
            np.testing.assert_array_equal(v[t], ok)
            np.testing.assert_array_equal(pts[t, ok], cam.backproject(px[t, ok], z[ok]))
