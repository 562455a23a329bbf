"""Depth alignment Z = s*·Ẑ + b* (issue 2): accuracy, robustness, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_scene import TRUE_SCALE, TRUE_SHIFT, cached_scene

from dream2flow.errors import AlignmentFailed, InvalidInput
from dream2flow.flow.align import AlignConfig, fit_scale_shift


@pytest.fixture(scope="module")
def big():
    return cached_scene(width=640, height=480, num_frames=24, seed=0)


def _rel(z: np.ndarray) -> np.ndarray:
    return ((z - TRUE_SHIFT) / TRUE_SCALE).astype(np.float32)


def test_exact_without_noise(big) -> None:
    mask = big.object_mask[0]
    a = fit_scale_shift(_rel(big.depth_m[0]), big.depth_m[0], mask)
    assert a.scale == pytest.approx(TRUE_SCALE, rel=1e-4) and a.shift == pytest.approx(TRUE_SHIFT, rel=1e-4)
    assert a.residual_m < 1e-4 and a.inlier_frac > 0.99 and a.region == "mask"
    assert a.num_pixels == int(mask.sum())
    z = a.apply(_rel(big.depth_m[0]))
    assert np.abs(z - big.depth_m[0]).max() < 1e-4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_percent_noise_within_one_percent(big, seed: int) -> None:
    rel = big.rel_depth(noise=0.01, seed=seed)[0]
    a = fit_scale_shift(rel, big.depth_m[0], big.object_mask[0], seed=seed)
    assert abs(a.scale / TRUE_SCALE - 1) < 0.01, a
    assert abs(a.shift / TRUE_SHIFT - 1) < 0.01, a
    assert 0.005 < a.residual_m < 0.015  # ~1 cm: 1 % of (Z + 0.4 m), as rendered


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_twenty_percent_outliers_within_two_percent(big, seed: int) -> None:
    rel = big.rel_depth(noise=0.01, outlier_frac=0.2, seed=seed)[0]
    a = fit_scale_shift(rel, big.depth_m[0], big.object_mask[0], seed=seed)
    assert abs(a.scale / TRUE_SCALE - 1) < 0.02, a
    assert abs(a.shift / TRUE_SHIFT - 1) < 0.02, a
    assert 0.7 < a.inlier_frac < 0.9


def test_regression_direction_matters(big) -> None:
    """Regressing D0 on the noisy relative depth shrinks the scale (errors in variables); the fit
    regresses the noisy side on D0 instead. The naive fit is far off; ours is not."""
    m = big.object_mask[0]
    rel = big.rel_depth(noise=0.01, seed=0)[0]
    s_naive, _ = np.polyfit(rel[m].astype(float), big.depth_m[0][m].astype(float), 1)
    assert abs(s_naive / TRUE_SCALE - 1) > 0.02
    a = fit_scale_shift(rel, big.depth_m[0], m)
    assert abs(a.scale / TRUE_SCALE - 1) < 0.01


def test_degenerate_fits_are_refused(big) -> None:
    d0, m = big.depth_m[0], big.object_mask[0]
    rel = _rel(d0)
    few = np.zeros_like(m)
    few[np.nonzero(m)[0][:50], np.nonzero(m)[1][:50]] = True
    with pytest.raises(AlignmentFailed, match="only 50 pixels"):
        fit_scale_shift(rel, d0, few)
    with pytest.raises(AlignmentFailed, match="only 0 pixels"):
        fit_scale_shift(np.full_like(rel, np.nan), d0, m)
    flat = np.full_like(d0, 0.7)
    with pytest.raises(AlignmentFailed, match="varies by only"):
        fit_scale_shift(_rel(flat), flat, m)
    with pytest.raises(AlignmentFailed, match="positive-scale|degenerate"):  # inverse depth given by mistake
        fit_scale_shift((1.0 / d0).astype(np.float32), d0, m)
    junk = np.random.default_rng(0).random(d0.shape).astype(np.float32)
    with pytest.raises(AlignmentFailed):
        fit_scale_shift(junk, d0, m)
    noisy = rel + np.random.default_rng(0).normal(0, 0.03, rel.shape).astype(np.float32)  # ~7 cm noise
    with pytest.raises(AlignmentFailed, match="residual"):
        fit_scale_shift(noisy, d0, m)
    with pytest.raises(InvalidInput, match="differ in size"):
        fit_scale_shift(rel[:-1], d0, None)


def test_flat_mask_falls_back_to_the_image(big) -> None:
    """A fronto-parallel object has no depth variation over its mask: scale and shift are then
    only separable with more of the image (configurable; recorded in ``region``)."""
    d0 = big.depth_m[0].copy()
    m = big.object_mask[0]
    d0[m] = 0.6  # flat object
    rel = _rel(d0)
    a = fit_scale_shift(rel, d0, m)
    assert a.region == "image" and a.scale == pytest.approx(TRUE_SCALE, rel=1e-3)
    with pytest.raises(AlignmentFailed, match="varies by only"):
        fit_scale_shift(rel, d0, m, config=AlignConfig(fallback_to_image=False))


def test_closed_form_line_fit_equals_least_squares() -> None:
    """The alignment's 2-parameter fits (issue 21: closed form instead of a general solver) give the
    least-squares solution, weighted or not, and fall back to it where z does not vary."""
    from dream2flow.flow.align import _line_fit

    rng = np.random.default_rng(2)
    z = rng.uniform(0.5, 1.5, 500)
    x = 0.7 * z - 0.2 + rng.normal(0, 0.01, 500)
    w = rng.uniform(0.1, 1.0, 500)
    for ww in (None, w):
        sw = np.ones_like(z) if ww is None else np.sqrt(ww)
        sol, *_ = np.linalg.lstsq(np.stack([z, np.ones_like(z)], 1) * sw[:, None], x * sw, rcond=None)
        assert np.allclose(_line_fit(z, x, ww), sol, rtol=1e-10, atol=1e-12)
    flat = np.full(5, 0.8)
    sol, *_ = np.linalg.lstsq(np.stack([flat, np.ones(5)], 1), np.arange(5.0), rcond=None)
    assert np.allclose(_line_fit(flat, np.arange(5.0)), sol)
