"""Optional per-track filtering (issue 2): outlier rejection, smoothing, and whether it helps."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_scene import cached_scene

from dream2flow.flow.extract import FlowConfig, extract_flow
from dream2flow.flow.filtering import FilterConfig, filter_flow, reject_outliers, smooth_tracks


def _line(T: int = 30, n: int = 20, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=float)[:, None, None]
    truth = np.array([0.5, 0.1, 0.2]) + t * np.array([0.004, -0.002, 0.001]) + rng.random((1, n, 3)) * 0.1
    return truth, truth + rng.normal(0, noise, truth.shape)


def test_smoothing_keeps_steady_motion_and_reduces_noise() -> None:
    truth, _ = _line()
    vis = np.ones(truth.shape[:2], bool)
    vis[10:13, 3] = False  # a gap
    for degree in (1, 2):
        out = smooth_tracks(truth, vis, 3, degree)
        np.testing.assert_allclose(out[vis], truth[vis], atol=1e-12)  # polynomial fit: no lag, ends included
    t = np.arange(30, dtype=float)[:, None, None]
    accel = truth + 0.0004 * t ** 2  # constant acceleration: the quadratic fit is exact, the linear lags
    np.testing.assert_allclose(smooth_tracks(accel, vis, 3, 2)[vis], accel[vis], atol=1e-9)
    assert np.abs(smooth_tracks(accel, vis, 3, 1) - accel)[vis].max() > 5e-4
    truth, noisy = _line(noise=0.005)
    err_before = np.linalg.norm(noisy - truth, axis=-1).mean()
    err_after = np.linalg.norm(smooth_tracks(noisy, np.ones(truth.shape[:2], bool), 3) - truth, axis=-1).mean()
    assert err_after < 0.7 * err_before


def test_outliers_are_marked_invisible_not_moved() -> None:
    truth, noisy = _line(noise=0.002)
    vis = np.ones(truth.shape[:2], bool)
    noisy[7, 4] += [0.0, 0.0, 0.08]  # depth spikes
    noisy[20, 11] -= [0.05, 0.0, 0.0]
    new_vis, removed = reject_outliers(noisy, vis)
    assert not new_vis[7, 4] and not new_vis[20, 11]
    assert removed <= 4  # and (almost) nothing else
    pts, v, stats = filter_flow(noisy, vis)
    assert stats.outliers_removed == removed and not v[7, 4]
    assert pts.shape == noisy.shape and np.isfinite(pts).all()
    off, v_off, _ = filter_flow(noisy, vis, FilterConfig(enabled=False))
    np.testing.assert_array_equal(off, noisy)
    np.testing.assert_array_equal(v_off, vis)


def _median_error(sc, rel, cfg) -> tuple[float, float]:
    r = extract_flow(sc.video(), sc.rgbd0(), sc.box(), rel, seed=0, config=cfg)
    P, _, V, _ = sc.query_truth(r.flow.query_px)
    v = r.flow.visible & V[0][None]
    e = np.linalg.norm(r.flow.points_base - P, axis=-1)[v]
    return float(np.median(e)), float(np.percentile(e, 95))


@pytest.mark.parametrize("blobs", [0, 3])
def test_filtering_helps_on_the_synthetic_scene(blobs: int) -> None:
    """The measurement behind the default (filter on): 1 % depth noise, with and without blob
    depth errors (3 discs of radius 8 px per frame, +-15 %)."""
    sc = cached_scene(width=320, height=240, num_frames=24, seed=0)
    rel = sc.rel_depth(noise=0.01, blobs_per_frame=blobs, seed=0)
    on = _median_error(sc, rel, FlowConfig())
    off = _median_error(sc, rel, FlowConfig(filter=FilterConfig(enabled=False)))
    assert FlowConfig().filter.enabled
    assert on[0] < 0.8 * off[0], (on, off)
    assert on[1] < off[1], (on, off)
