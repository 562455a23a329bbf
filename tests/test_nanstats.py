"""The vectorised NaN median/percentile return NumPy's numbers exactly (issue 21: they replace
``np.nanmedian``/``np.nanpercentile`` in the flow filter and the planner for speed only)."""

from __future__ import annotations

import warnings

import numpy as np

from dream2flow.nanstats import nanmedian, nanpercentile


def test_same_numbers_as_numpy_on_random_nan_patterns() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        shape = tuple(int(s) for s in rng.integers(1, 9, size=rng.integers(1, 4)))
        a = rng.normal(size=shape)
        a[rng.random(shape) < rng.uniform(0.0, 1.0)] = np.nan  # all-NaN slices included
        if rng.random() < 0.2:
            a[rng.random(shape) < 0.1] = np.inf
        for ax in range(a.ndim):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ref_med = np.nanmedian(a, axis=ax)
                ref_pct = {q: np.nanpercentile(a, q, axis=ax) for q in (5, 50, 75, 90)}
            np.testing.assert_array_equal(nanmedian(a, ax), ref_med)
            for q, ref in ref_pct.items():
                np.testing.assert_array_equal(nanpercentile(a, q, ax), ref)
