"""The ONNX implementations of the perception protocols: each satisfies its protocol on the tiny
exported models; the runtime's own pre-processing + ONNX Runtime agrees with PyTorch eager on the
same inputs (end-to-end parity, not only the graph); post-processing maths on stubbed sessions
(box conversion, NMS, heatmap -> pixel mapping, disparity -> depth); and the runtime WordPiece
tokenizer equals transformers' BertTokenizer token for token."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dream2flow.errors import InvalidInput, PerceptionFailed  # noqa: E402
from dream2flow.perception import protocols as P  # noqa: E402
from dream2flow.perception.engine import EngineConfig, InferenceEngine  # noqa: E402
from dream2flow.perception.factory import load_perception  # noqa: E402
from dream2flow.perception.onnx_depth import OnnxDepthAnything  # noqa: E402
from dream2flow.perception.onnx_detector import OnnxGroundingDino  # noqa: E402
from dream2flow.perception.onnx_hand import OnnxVitPoseHand  # noqa: E402
from dream2flow.perception.onnx_preprocess import letterbox, nms, normalize, resize  # noqa: E402
from dream2flow.perception.onnx_wordpiece import WordPieceTokenizer, grounding_prompt  # noqa: E402


@pytest.fixture(scope="module")
def manifest_path():
    pytest.importorskip("torch")
    from export_tools.tiny import cached_tiny_set

    return cached_tiny_set()


@pytest.fixture(scope="module")
def backends(manifest_path, tmp_path_factory):
    """Every role's model, built by the one perception factory from a configuration file."""
    from tiny_perception import write_perception_toml

    p = load_perception(write_perception_toml(tmp_path_factory.mktemp("perception") / "p.toml", manifest_path.parent))
    return SimpleNamespace(detector=p.detector(), segmenter=p.segmenter(), tracker=p.tracker(),
                           video_depth=p.video_depth(), hand=p.hand(), describe=p.backends)


def _video(T: int = 5, H: int = 96, W: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 2 * t, axis=1) for t in range(T)])


def test_backends_satisfy_the_protocols(backends) -> None:
    names = backends.describe()
    assert names == {"detector": "onnx:grounding_dino_tiny", "segmenter": "onnx:sam2_1_hiera_tiny_image_encoder",
                     "tracker": "onnx:cotracker3_io_fixture", "video_depth": "onnx:depth_anything_v2_small",
                     "hand": "onnx:vitpose_b_wholebody"}
    assert isinstance(backends.detector, P.Detector) and isinstance(backends.segmenter, P.Segmenter)
    assert isinstance(backends.tracker, P.PointTracker) and isinstance(backends.video_depth, P.VideoDepth)
    assert isinstance(backends.hand, P.HandDetector)
    video = _video()
    img = video[0]
    det = backends.detector(img, "the red bread")
    assert det.boxes.dtype == np.float32 and det.boxes.shape[1:] == (4,) and det.scores.shape == (len(det.boxes),)
    assert np.all(np.diff(det.scores) <= 0) and np.all((det.scores >= backends.detector.box_threshold) & (det.scores <= 1))
    if len(det.boxes):
        assert np.all(det.boxes[:, 2] > det.boxes[:, 0]) and np.all(det.boxes[:, 2] <= 128) and np.all(det.boxes[:, 3] <= 96)
    mask = backends.segmenter(img, (20, 10, 90, 80))
    assert mask.shape == (96, 128) and mask.dtype == bool and mask.any()
    q = np.array([[10.0, 20.0], [64.5, 48.25], [127.0, 95.0]], np.float32)
    tracks, visible = backends.tracker(video, q)
    assert tracks.shape == (5, 3, 2) and visible.shape == (5, 3) and visible[0].all()
    np.testing.assert_allclose(tracks, np.broadcast_to(q, (5, 3, 2)), atol=1e-3)  # fixture: points stay put
    depth = backends.video_depth(video)
    assert depth.shape == (5, 96, 128) and depth.dtype == np.float32
    assert np.all(depth[np.isfinite(depth)] > 0)
    thumb = backends.hand(video)
    assert thumb is None or (thumb.shape == (5, 2) and thumb.dtype == np.float32)


def test_depth_wrapper_matches_pytorch_eager(backends) -> None:
    import torch

    from export_tools import export_depth_anything

    video = _video(T=11)  # more frames than one batch of the opt profile? max_batch=16 -> one run; also test chunking
    wrapper: OnnxDepthAnything = backends.video_depth
    wrapper.max_batch = 4  # three ONNX runs
    got = wrapper.disparity(video)
    net = export_depth_anything.build_model(SimpleNamespace(tiny_random=True, seed=0, checkpoint=None))
    x = normalize(np.stack([resize(f, wrapper.width, wrapper.height) for f in video]), wrapper.mean, wrapper.std)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    import cv2

    ref_full = np.stack([cv2.resize(r, (128, 96), interpolation=cv2.INTER_LINEAR) for r in ref])
    err = np.abs(got - ref_full)
    assert err.max() <= 1e-4 + 1e-3 * np.abs(ref_full).max(), err.max()


def test_segmenter_wrapper_matches_pytorch_eager(backends) -> None:
    import torch

    from export_tools import export_sam2

    seg = backends.segmenter
    img = _video()[0]
    box = (30.0, 12.0, 100.0, 70.0)
    got = seg.logits(img, box)
    enc, dec, S = export_sam2.build_models(SimpleNamespace(tiny_random=True, seed=0, checkpoint=None))
    x = torch.from_numpy(normalize(resize(img, S, S), seg.mean, seg.std)[None])
    b = torch.tensor([[[box[0] * S / 128, box[1] * S / 96, box[2] * S / 128, box[3] * S / 96]]], dtype=torch.float32)
    with torch.no_grad():
        e = enc(x)
        low = dec(*e, b)[0][0, 0].numpy()
    import cv2

    ref = cv2.resize(cv2.resize(low, (S, S), interpolation=cv2.INTER_LINEAR), (128, 96), interpolation=cv2.INTER_LINEAR)
    assert np.abs(got - ref).max() <= 1e-4 + 1e-3 * np.abs(ref).max()
    # one encoder run for several boxes on one image
    calls = []
    orig = seg.encoder.run
    seg.encoder.run = lambda feeds: calls.append(1) or orig(feeds)
    try:
        seg.logits(img, (0, 0, 50, 50))
        seg.logits(img, (10, 10, 60, 60))
    finally:
        seg.encoder.run = orig
    assert len(calls) == 0  # cached from the call above (same image)


def test_segmenter_refuses_bad_box_and_empty_mask(backends) -> None:
    img = _video()[0]
    with pytest.raises(InvalidInput):
        backends.segmenter(img, (50, 50, 40, 60))
    seg = backends.segmenter
    old = seg.threshold
    seg.threshold = 1e9
    try:
        with pytest.raises(PerceptionFailed, match="empty"):
            seg(img, (20, 10, 90, 80))
    finally:
        seg.threshold = old


def test_tracker_limits(backends) -> None:
    with pytest.raises(InvalidInput, match="query_px"):
        backends.tracker(_video(), np.zeros((0, 2), np.float32))
    with pytest.raises(InvalidInput, match="at most"):
        backends.tracker(np.zeros((backends.tracker.max_frames + 1, 8, 8, 3), np.uint8), np.ones((1, 2), np.float32))


class _StubSession:
    """A ModelSession stand-in returning fixed outputs (post-processing tests)."""

    def __init__(self, spec, outputs):
        self.spec = spec
        self.outputs = outputs
        self.feeds = None

    def run(self, feeds):
        self.feeds = feeds
        return self.outputs(feeds) if callable(self.outputs) else self.outputs


def test_detector_postprocessing_boxes_scores_nms(backends) -> None:
    det: OnnxGroundingDino = backends.detector
    ids, word = det.encode_text("bread")
    L = ids.shape[1]
    Q = 4
    logits = np.full((1, Q, 256), -np.inf, np.float32)
    logits[0, :, :L] = -10.0
    logits[0, 0, 1] = 3.0      # query 0: confident on "bread"
    logits[0, 1, 1] = 2.5      # query 1: same box, a bit lower -> removed by NMS
    logits[0, 2, 0] = 9.0      # query 2: confident only on [CLS] -> ignored (not a word token)
    logits[0, 3, 1] = -1.0     # query 3: below threshold
    # canvas 224x288; image 96x128 -> scale min(288/128, 224/96) = 2.25, canvas used 216x288
    boxes = np.array([[[0.5, 0.25, 0.25, 0.2]] * 4], np.float32)
    stub = _StubSession(det.session.spec, {"logits": logits, "pred_boxes": boxes})
    real = det.session
    det.session = stub
    try:
        out = det(_video()[0], "Bread")
    finally:
        det.session = real
    assert stub.feeds["input_ids"].tolist() == ids.tolist()
    assert stub.feeds["pixel_mask"][0, :216].all() and not stub.feeds["pixel_mask"][0, 216:].any()
    assert len(out.scores) == 1
    assert out.scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)
    s = 2.25
    exp = np.array([(0.5 - 0.125) * 288 / s, (0.25 - 0.1) * 224 / s, (0.5 + 0.125) * 288 / s, (0.25 + 0.1) * 224 / s])
    np.testing.assert_allclose(out.boxes[0], exp, rtol=1e-5)


def test_nms_and_letterbox() -> None:
    b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    assert nms(b, np.array([0.5, 0.9, 0.1]), 0.5).tolist() == [1, 2]
    canvas, mask, s = letterbox(np.full((50, 100, 3), 7, np.uint8), 64, 64)
    assert s == pytest.approx(0.64) and mask.sum() == 32 * 64 and canvas[:32].min() == 7 and canvas[32:].max() == 0


def test_hand_maps_heatmap_peak_back_to_frame_pixels(backends) -> None:
    hand: OnnxVitPoseHand = backends.hand
    K = int(hand.session.spec.preprocess["num_keypoints"])
    hh, hw = hand.height // 4, hand.width // 4

    def heatmaps(feeds):
        n = feeds["pixel_values"].shape[0]
        hm = np.zeros((n, K, hh, hw), np.float32)
        hm[:, hand.thumbs[-1], 3, 5] = 0.9       # right-hand thumb tip at heatmap (x=5, y=3)
        hm[:, hand.thumbs[0], 7, 2] = 0.5        # left one, less confident
        return {"heatmaps": hm}

    real, real_det = hand.session, hand.detector
    hand.session = _StubSession(real.spec, heatmaps)
    hand.detector = None  # whole-frame crop (the detector-box path is exercised in test_backends_satisfy_the_protocols)
    try:
        video = _video(T=3, H=96, W=128)
        thumb = hand(video)
        # whole-frame crop: 128x96 padded to the model's 3:4 aspect -> box w=128, h=128*H_in/W_in
        bw = 128.0
        bh = bw * hand.height / hand.width
        s = hand.width / bw
        px = (5 + 0.5) * hand.width / hw - 0.5
        py = (3 + 0.5) * hand.height / hh - 0.5
        exp = (px / s + (64 - bw / 2), py / s + (48 - bh / 2))
        np.testing.assert_allclose(thumb, np.tile(exp, (3, 1)), atol=1e-4)
        hand.session = _StubSession(real.spec, lambda f: {"heatmaps": np.zeros((f["pixel_values"].shape[0], K, hh, hw), np.float32)})
        assert hand(video) is None  # nothing confident anywhere: no hand
    finally:
        hand.session, hand.detector = real, real_det


def test_depth_conversion_from_disparity(backends) -> None:
    d: OnnxDepthAnything = backends.video_depth
    disp = np.ones((2, 96, 128), np.float32) * 2.0
    disp[0, 0, 0] = -1.0
    disp[1, 5, 5] = 4.0
    d_orig = d.disparity
    d.disparity = lambda video: disp
    try:
        depth = d(_video(T=2))
    finally:
        d.disparity = d_orig
    assert np.isnan(depth[0, 0, 0])
    assert depth[0, 1, 1] == pytest.approx(0.5) and depth[1, 5, 5] == pytest.approx(0.25)  # nearer = smaller


def test_wordpiece_equals_bert_tokenizer(manifest_path) -> None:
    pytest.importorskip("transformers")
    from export_tools.export_grounding_dino import bert_tokenizer

    vocab = manifest_path.parent / "grounding_dino_tiny.vocab.txt"
    ours = WordPieceTokenizer(vocab)
    ref = bert_tokenizer(vocab)
    texts = ["the red bread.", "Bread . Bowl .", "open the OVEN door-handle!", "a piece of cloth, blue",
             "bréad in the bowl?", "unknownword bowls", "  put   the mug\tin the drawer  ", "cups, mugs and toys",
             "x" * 120, "红 bowl"]
    for t in texts:
        assert ours.encode(t) == ref(t)["input_ids"], t
    assert grounding_prompt("  The Bread ") == "the bread."
    with pytest.raises(InvalidInput):
        grounding_prompt("   ")


def test_factory_switch(manifest_path) -> None:
    from dream2flow.perception.config import config_from_dict

    classical = load_perception("classical")
    assert classical.segmenter().name == "classical_rgbd"
    assert classical.tracker().name == "classical_lk"
    assert classical.detector() is None and classical.video_depth() is None and classical.hand() is None
    models = load_perception(config_from_dict({"schema": 1, "models_dir": str(manifest_path.parent),
                                               "engine": {"providers": ["cpu"]}}))
    assert models.segmenter().name.startswith("onnx:") and models.video_depth().name.startswith("onnx:")
    with pytest.raises(InvalidInput):
        load_perception("magic")
