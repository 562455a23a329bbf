"""I0 segmented before the video exists (flow.early, issue 21): the flow is the one the flow stage
computes itself; the segmenter's failure is reported by the flow stage."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_scene import cached_scene

from dream2flow.errors import PerceptionFailed
from dream2flow.flow.early import segment_early
from dream2flow.flow.extract import extract_flow
from dream2flow.perception.rgbd_segmenter import RGBDSegmenter


@pytest.fixture(scope="module")
def scene():
    return cached_scene(width=320, height=240, num_frames=12, seed=0)


def test_early_mask_gives_the_same_flow(scene) -> None:
    rel = scene.rel_depth(noise=0.005, seed=0)
    plain = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=3)
    got: list[np.ndarray] = []
    seg = RGBDSegmenter(seed=3)
    fut = segment_early(seg, scene.rgbd0(), scene.box(), then=got.append)
    early = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=3, segmenter=seg,
                         mask=fut)
    assert np.array_equal(early.mask, plain.mask) and np.array_equal(got[0], plain.mask)
    assert np.array_equal(early.flow.points_base, plain.flow.points_base, equal_nan=True)
    assert np.array_equal(early.flow.visible, plain.flow.visible)
    assert early.flow.meta["backends"]["segmenter"] == "classical_rgbd"
    # an array works as well as a future
    again = extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=64, seed=3, mask=plain.mask)
    assert np.array_equal(again.flow.points_base, plain.flow.points_base, equal_nan=True)


def test_early_segmentation_failure_is_raised_by_the_flow_stage(scene) -> None:
    class Empty:
        name = "empty"

        def __call__(self, rgb, box, depth_m=None):
            return np.zeros(rgb.shape[:2], bool)

    class Broken:
        name = "broken"

        def __call__(self, rgb, box, depth_m=None):
            raise PerceptionFailed("segmenter broke")

    rel = scene.rel_depth(noise=0.005, seed=0)
    called: list = []
    for seg, match in ((Empty(), "is empty"), (Broken(), "segmenter broke")):
        fut = segment_early(seg, scene.rgbd0(), scene.box(), then=called.append)
        with pytest.raises(PerceptionFailed, match=match):
            extract_flow(scene.video(), scene.rgbd0(), scene.box(), rel, num_points=32, seed=0, segmenter=seg,
                         mask=fut)
    assert not called  # no grasps proposed on an empty or failed mask


def test_on_mask_gets_the_mask_before_tracking(scene) -> None:
    seen: list = []

    class Tracker:  # records whether the mask was handed over before it was called
        name = "probe"

        def __call__(self, video, query):
            from dream2flow.perception.classical import ClassicalLKTracker

            seen.append(("track", len(seen)))
            return ClassicalLKTracker()(video, query)

    res = extract_flow(scene.video(), scene.rgbd0(), scene.box(), scene.rel_depth(noise=0.005, seed=0),
                       num_points=32, seed=0, tracker=Tracker(), on_mask=lambda m: seen.append(("mask", m)))
    assert [k for k, _ in seen] == ["mask", "track"] and np.array_equal(seen[0][1], res.mask)
