"""Classical perception backends (issue 2): GrabCut, query sampling, LK tracking, given depth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synthetic_scene import cached_scene

from dream2flow.errors import InvalidInput, PerceptionFailed
from dream2flow.perception.classical import (ClassicalLKTracker, GivenVideoDepth, GrabCutSegmenter,
                                             LucasKanadeTracker, sample_query_points)
from dream2flow.perception.protocols import (PointTracker, Segmenter, Tracks, VideoDepth, validate_box,
                                             video_frames)
from dream2flow.types import Video


@pytest.fixture(scope="module")
def scene():
    return cached_scene(width=320, height=240, num_frames=24, seed=0)


@pytest.fixture(scope="module")
def occluded():
    return cached_scene(width=320, height=240, num_frames=24, occluder=True, seed=1)


def test_backends_satisfy_protocols_and_say_what_they_are() -> None:
    seg, trk, vd = GrabCutSegmenter(), ClassicalLKTracker(), GivenVideoDepth(np.zeros((2, 4, 4)))
    assert isinstance(seg, Segmenter) and isinstance(trk, PointTracker) and isinstance(vd, VideoDepth)
    assert (seg.name, trk.name, vd.name) == ("classical_grabcut", "classical_lk", "given_video_depth")
    assert LucasKanadeTracker is ClassicalLKTracker


def test_validate_box() -> None:
    assert validate_box((10, 20, 30, 40), 100, 80) == (10, 20, 30, 40)
    assert validate_box((-0.5, 0, 100.5, 80), 100, 80) == (0, 0, 100, 80)  # rounding slack is clipped
    for bad, msg in [((-20, 0, 30, 40), "not inside"), ((10, 20, 130, 40), "not inside"),
                     ((30, 20, 10, 40), "inverted"), ((10, 20, 12, 40), "smaller"),
                     ((np.nan, 0, 10, 10), "finite"), ((1, 2, 3), "4 numbers")]:
        with pytest.raises(InvalidInput, match=msg):
            validate_box(bad, 100, 80)


def test_grabcut_segments_the_object_deterministically(scene) -> None:
    seg = GrabCutSegmenter(seed=3)
    mask = seg(scene.frames[0], scene.box())
    gt = scene.object_mask[0]
    iou = (mask & gt).sum() / (mask | gt).sum()
    assert iou > 0.95, iou
    np.testing.assert_array_equal(mask, GrabCutSegmenter(seed=3)(scene.frames[0], scene.box()))


def test_grabcut_refusals(scene) -> None:
    H, W = scene.frames.shape[1:3]
    with pytest.raises(InvalidInput, match="whole"):
        GrabCutSegmenter()(scene.frames[0], (0, 0, W, H))
    with pytest.raises(InvalidInput, match="not inside"):
        GrabCutSegmenter()(scene.frames[0], (W - 10, 10, W + 50, 60))
    with pytest.raises(PerceptionFailed, match="mask empty"):  # nothing to separate from the background
        GrabCutSegmenter()(np.full((H, W, 3), 128, np.uint8), (100, 80, 200, 160))
    with pytest.raises(InvalidInput, match="uint8"):
        GrabCutSegmenter()(scene.frames[0].astype(np.float32), scene.box())


def test_query_points_inside_spread_and_seeded(scene) -> None:
    mask = scene.object_mask[0]
    q = sample_query_points(mask, 256, seed=0)
    assert q.shape == (256, 2) and q.dtype == np.float32
    xi, yi = q[:, 0].astype(int), q[:, 1].astype(int)
    assert mask[yi, xi].all()
    np.testing.assert_array_equal(q, sample_query_points(mask, 256, seed=0))
    assert not np.array_equal(q, sample_query_points(mask, 256, seed=1))
    # spread: the closest pair is far apart compared with uniform random picks from the same mask
    def min_gap(p: np.ndarray) -> float:
        d = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(len(p)) * 1e9
        return float(d.min())
    ys, xs = np.nonzero(mask)
    rnd = np.random.default_rng(0).choice(len(xs), 256, replace=False)
    assert min_gap(q) >= 3.0 * min_gap(np.stack([xs[rnd], ys[rnd]], 1).astype(float))
    assert len(np.unique(q, axis=0)) == 256


def test_query_points_small_and_empty_masks() -> None:
    m = np.zeros((50, 60), bool)
    m[10:13, 20:23] = True  # 9 pixels
    q = sample_query_points(m, 20, seed=0)
    assert q.shape == (20, 2) and m[q[:, 1].astype(int), q[:, 0].astype(int)].all()
    with pytest.raises(PerceptionFailed, match="no pixels"):
        sample_query_points(np.zeros((50, 60), bool), 10)
    with pytest.raises(InvalidInput):
        sample_query_points(m, 0)


def _translating_video(T: int = 10, shift=(1.7, -0.6), W: int = 200, H: int = 150) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 255, (H + 80, W + 80, 3), dtype=np.uint8), (0, 0), 1.2)
    frames, offs = [], []
    for t in range(T):
        dx, dy = shift[0] * t, shift[1] * t
        M = np.float32([[1, 0, 40 + dx], [0, 1, 40 + dy]])
        frames.append(cv2.warpAffine(big, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
        offs.append((-dx, -dy))
    return np.stack(frames), np.array(offs)


def test_lk_tracks_subpixel_translation() -> None:
    frames, offs = _translating_video()
    q = np.stack(np.meshgrid(np.linspace(40, 160, 6), np.linspace(40, 110, 5)), -1).reshape(-1, 2)
    tracks = ClassicalLKTracker()(Video(frames, 10.0), q)
    assert isinstance(tracks, Tracks)
    truth = q[None] + offs[:, None]
    err = np.linalg.norm(tracks.tracks_px - truth, axis=-1)
    assert tracks.visible.all()
    assert np.median(err) < 0.05 and err.max() < 0.3


def test_lk_handles_every_point_count_the_cli_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``flow --points 4096`` died in cv2.remap (maps over 32767 rows); the patches now go in blocks,
    with the same numbers as one block."""
    from dream2flow.flow import MAX_NUM_POINTS
    from dream2flow.perception import classical_lk

    frames, offs = _translating_video(T=4)
    rng = np.random.default_rng(1)
    q = rng.uniform([30, 30], [170, 120], size=(MAX_NUM_POINTS, 2))
    tracks = ClassicalLKTracker()(Video(frames, 10.0), q)
    assert tracks.tracks_px.shape == (4, MAX_NUM_POINTS, 2) and tracks.visible.mean() > 0.9
    err = np.linalg.norm(tracks.tracks_px[-1][tracks.visible[-1]] - (q + offs[-1])[tracks.visible[-1]], axis=-1)
    assert np.median(err) < 0.1
    lk = ClassicalLKTracker(win_size=11)
    gray = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY).astype(np.float32)
    whole = lk._patches(gray, q[:500])
    monkeypatch.setattr(classical_lk, "_REMAP_MAX_ROWS", 7 * lk.ncc_patch)   # blocks of 7 points
    assert np.array_equal(lk._patches(gray, q[:500]), whole)


def test_points_leaving_the_frame_are_invisible_not_deleted() -> None:
    frames, offs = _translating_video(T=12, shift=(4.0, 0.0))  # content moves left 4 px per frame
    q = np.array([[30.0, 60.0], [12.0, 60.0], [150.0, 60.0]])
    tr = ClassicalLKTracker()(frames, q)
    assert tr.tracks_px.shape == (12, 3, 2) and tr.visible.shape == (12, 3)
    truth = q[None] + offs[:, None]
    assert not (tr.visible & (truth[..., 0] < 0)).any()  # never visible once outside
    assert tr.visible[:, 2].all()  # the point that stays in stays visible
    assert not tr.visible[-1, :2].any()  # the two that left are flagged, and still there
    assert np.isfinite(tr.tracks_px).all()
    clear = truth[..., 0] >= 12  # away from the border by more than the LK half-window
    err = np.linalg.norm(tr.tracks_px - truth, axis=-1)
    assert err[tr.visible & clear].max() < 0.3


@pytest.mark.parametrize("reacquire", [False, True])
def test_occluded_points_are_invisible(occluded, reacquire: bool) -> None:
    mask = GrabCutSegmenter()(occluded.frames[0], occluded.box())
    q = sample_query_points(mask, 128, seed=0)
    _, px, V, margin = occluded.query_truth(q)
    tr = ClassicalLKTracker(reacquire=reacquire)(occluded.video(), q)
    assert tr.tracks_px.shape == (24, 128, 2) and tr.visible.shape == (24, 128)
    on = V[0]  # queries on the object
    clearly_hidden = ~V & (margin > 3) & on[None]
    assert clearly_hidden.sum() > 100  # the occluder really hides points
    assert not (tr.visible & clearly_hidden).any()
    err = np.linalg.norm(tr.tracks_px - px, axis=-1)[tr.visible & on[None]]
    assert np.percentile(err, 99) < 3.0
    # after the occluder has passed, only re-acquisition brings points back
    back = tr.visible[-1][on].mean()
    if reacquire:
        assert back > 0.7
    else:
        assert back < V[-1][on].mean()


def test_given_video_depth(tmp_path) -> None:
    frames = np.zeros((3, 40, 60, 3), np.uint8)
    d = np.random.default_rng(0).random((3, 40, 60)).astype(np.float32)
    np.testing.assert_array_equal(GivenVideoDepth(d)(frames), d)
    half = d[:, ::2, ::2].copy()
    half[1, 5, 5] = np.nan
    up = GivenVideoDepth(half)(Video(frames, 10.0))
    assert up.shape == (3, 40, 60) and np.isnan(up[1, 10, 10]) and np.isfinite(up[0]).all()
    with pytest.raises(InvalidInput, match="frames"):
        GivenVideoDepth(d[:2])(frames)
    with pytest.raises(InvalidInput, match="video depth is"):
        GivenVideoDepth(d[:, :, :30])(frames)
    with pytest.raises(InvalidInput, match=r"\[T,H,W\]"):
        GivenVideoDepth(d[0])
    np.save(tmp_path / "rel.npy", d)
    np.testing.assert_array_equal(GivenVideoDepth.from_file(tmp_path / "rel.npy")(frames), d)
    np.save(tmp_path / "bad.npy", d[0])
    with pytest.raises(InvalidInput, match="float"):
        GivenVideoDepth.from_file(tmp_path / "bad.npy")
    (tmp_path / "junk.npy").write_bytes(b"nope")
    with pytest.raises(InvalidInput, match="readable"):
        GivenVideoDepth.from_file(tmp_path / "junk.npy")
    with pytest.raises(InvalidInput):
        video_frames(np.zeros((3, 4, 4)))


def test_lk_window_follows_object_size() -> None:
    """A 21-px window on a ~40-px object is mostly background; the default adapts (9..21, odd)."""
    small = np.array([[100, 100], [130, 125]], float)
    big = np.array([[100, 100], [250, 220]], float)
    assert ClassicalLKTracker.window_for(small) == 9
    assert ClassicalLKTracker.window_for(big) == 21
    w = ClassicalLKTracker.window_for(np.array([[0, 0], [45, 45]], float))
    assert 9 <= w <= 21 and w % 2 == 1
    trk = ClassicalLKTracker()
    frames, _ = _translating_video(T=3)
    trk(frames, small)
    assert trk.win_size is None  # the tracker keeps no per-call state (safe to share across threads)


class _PlainReacquireLK(ClassicalLKTracker):
    """Re-acquisition as it was before issue 21's fast path: the full forward-backward ``_fb`` for
    every retried point, then the prediction, inside and appearance checks (the reference)."""

    def _reacquire(self, grays, t, lost, tracks, vis, active, last_t, W, H, as_float=None) -> None:
        as_float = as_float or (lambda k: grays[k].astype(np.float32))
        unanchored = []
        for lt in np.unique(last_t[lost]):
            if not self._retry_now(t - int(lt)):
                continue
            group = lost[last_t[lost] == lt]
            pred, max_dev = self._predict_lost(t, int(lt), group, tracks, vis)
            tracks[t, group] = np.where(np.isfinite(pred), pred, tracks[t, group])
            try_ = self._inside(pred, W, H)
            if not try_.any():
                continue
            g = group[try_]
            p_last = tracks[lt, g]
            p1, ok = self._fb(grays[lt], grays[t], p_last, init=pred[try_],
                              max_level=min(self.max_level, self.reacquire_max_level))
            ok &= self._inside(p1, W, H) & (np.linalg.norm(p1 - pred[try_], axis=1) <= max_dev)
            if not ok.any():
                continue
            k = np.flatnonzero(ok)
            ncc = self._ncc(self._patches(as_float(int(lt)), p_last[k]), self._patches(as_float(t), p1[k]))
            ok[k[ncc < self.reacquire_min_ncc]] = False
            won = g[ok]
            tracks[t, won] = p1[ok]
            vis[t, won] = True
            active[won] = True
            last_t[won] = t
            if max_dev > self.reacquire_max_px and len(won):
                unanchored.append((won, pred[try_][ok], int(lt)))
        if unanchored:
            self._verify_unanchored(t, unanchored, tracks, vis, active, last_t)


@pytest.mark.parametrize("seed", [1, 2])
def test_lk_reacquire_fast_path_equals_the_plain_one(seed: int) -> None:
    """Re-acquisition runs the backward LK pass only for points whose forward result can still pass
    (on the crop of the whole group): the same tracks and visibility, bit for bit, as checking every
    point after a full forward-backward pass -- on occluder scenes where points are lost and found."""
    sc = cached_scene(width=640, height=480, num_frames=24, occluder=True, seed=seed)  # crops smaller than frames
    q = sample_query_points(GrabCutSegmenter()(sc.frames[0], sc.box()), 128, seed=0)
    fast, plain = ClassicalLKTracker()(sc.video(), q), _PlainReacquireLK()(sc.video(), q)
    assert np.array_equal(fast.tracks_px, plain.tracks_px) and np.array_equal(fast.visible, plain.visible)
    lost_and_found = (~fast.visible[:-1] & fast.visible[1:]).sum()
    assert lost_and_found > 10  # re-acquisition really ran and won points back


def test_lk_subset_on_a_larger_crop_equals_the_larger_call() -> None:
    """What the fast path relies on: LK tracks each point on its own, so tracking a subset of points on
    the crop made for a larger set gives those points' results of the larger call."""
    frames, _ = _translating_video(T=2)
    g0, g1 = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames)
    rng = np.random.default_rng(3)
    p0 = rng.uniform([40, 40], [160, 110], size=(40, 2))
    lk = ClassicalLKTracker(win_size=15)
    p1, st = lk._lk(g0, g1, p0, max_level=2)
    sub = np.arange(0, 40, 3)
    p1s, sts = lk._lk(g0, g1, p0[sub], max_level=2, crop_pts=p0)
    assert np.array_equal(p1s, p1[sub]) and np.array_equal(sts, st[sub])
