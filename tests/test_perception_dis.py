"""The DIS dense-flow point tracker with forward-backward checks (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_scene import cached_scene

from dream2flow.errors import InvalidInput
from dream2flow.perception.classical_dis import DISFlowTracker
from dream2flow.perception.protocols import PointTracker


def _query(sc, n: int = 64) -> np.ndarray:
    x0, y0, x1, y1 = sc.box()
    rng = np.random.default_rng(0)
    return np.stack([rng.uniform(x0 + 0.25 * (x1 - x0), x1 - 0.25 * (x1 - x0), n),
                     rng.uniform(y0 + 0.25 * (y1 - y0), y1 - 0.25 * (y1 - y0), n)], 1).astype(np.float32)


def test_is_a_point_tracker_and_checks_options() -> None:
    assert isinstance(DISFlowTracker(), PointTracker)
    with pytest.raises(InvalidInput):
        DISFlowTracker(preset="slow")
    with pytest.raises(InvalidInput):
        DISFlowTracker(fb_max_px=0)
    with pytest.raises(InvalidInput):
        DISFlowTracker()(np.zeros((2, 32, 32, 3), np.uint8), np.zeros((3, 3)))


def test_tracks_a_moving_plane_to_a_pixel() -> None:
    sc = cached_scene(width=320, height=240, num_frames=16, seed=0)
    q = _query(sc)
    tr = DISFlowTracker()(sc.video(), q)
    _, px, V, margin = sc.query_truth(q)
    assert tr.tracks_px.shape == (16, 64, 2) and tr.visible.shape == (16, 64)
    ok = tr.visible & V & (margin > 3)
    assert tr.visible.mean() > 0.8
    err = np.linalg.norm(tr.tracks_px - px, axis=-1)
    assert np.median(err[ok]) < 1.0, np.median(err[ok])


def test_occluded_points_turn_invisible() -> None:
    sc = cached_scene(width=320, height=240, num_frames=24, occluder=True, seed=0)
    q = _query(sc, 128)
    tr = DISFlowTracker()(sc.video(), q)
    _, _, V, margin = sc.query_truth(q)
    hidden = ~V & (margin > 3)
    assert hidden.sum() > 50
    # most hidden (point, frame) pairs are reported invisible; arrays stay full and finite
    assert (tr.visible & hidden).sum() < 0.1 * hidden.sum()
    assert np.isfinite(tr.tracks_px).all()
