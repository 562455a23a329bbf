"""NaN-ignoring median and percentile along one axis, vectorised.

Why: ``np.nanmedian`` / ``np.nanpercentile`` fall back to a Python loop over every 1-D slice when
the data hold NaNs (``apply_along_axis``): tens of thousands of slices for a flow's tracks. These
sort once and pick the order statistics with the same rules ('linear' interpolation; a median is
the mean of the two middle values) and the same arithmetic, so they return the same numbers.
All-NaN slices give NaN (without NumPy's warning).
"""

from __future__ import annotations

import numpy as np


def _sorted_last(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``a`` sorted along ``axis`` moved last (NaNs at the end) and the count of non-NaN values."""
    s = np.sort(np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1), axis=-1)
    return s, (~np.isnan(s)).sum(-1)


def _pick(s: np.ndarray, i: np.ndarray) -> np.ndarray:
    return np.take_along_axis(s, i[..., None], axis=-1)[..., 0]


def nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian(a, axis=axis)`` for float data."""
    s, n = _sorted_last(a, axis)
    if s.shape[-1] == 0:
        return np.full(s.shape[:-1], np.nan)
    lo = np.maximum((n - 1) // 2, 0)
    hi = np.maximum(n // 2, 0)
    with np.errstate(invalid="ignore"):  # -inf + inf where NumPy gives NaN too
        out = (_pick(s, lo) + _pick(s, hi)) / 2.0  # odd counts: (x + x) / 2 == x exactly
    return np.where(n > 0, out, np.nan)


def nanpercentile(a: np.ndarray, q: float, axis: int) -> np.ndarray:
    """``np.nanpercentile(a, q, axis=axis)`` (method 'linear') for float data and a scalar ``q``."""
    s, n = _sorted_last(a, axis)
    if s.shape[-1] == 0:
        return np.full(s.shape[:-1], np.nan)
    vi = (n - 1) * (q / 100.0)
    lo = np.floor(vi)
    t = vi - lo
    lo_i = np.clip(lo.astype(np.int64), 0, s.shape[-1] - 1)
    hi_i = np.clip(lo_i + 1, 0, np.maximum(n - 1, 0))
    x0, x1 = _pick(s, lo_i), _pick(s, hi_i)
    with np.errstate(invalid="ignore"):  # inf - inf where NumPy gives NaN too
        diff = x1 - x0
        out = np.where(t >= 0.5, x1 - diff * (1 - t), x0 + diff * t)  # NumPy's _lerp
    return np.where(n > 0, out, np.nan)
