"""Video ingestion (issue 2): decode MP4 / AVI / image folders, validate, refuse bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dream2flow.errors import InvalidInput
from dream2flow.types import Video
from dream2flow.video.decode import load_video
from dream2flow.video.encode import write_video


def _frames(T: int = 8, W: int = 160, H: int = 120, seed: int = 0) -> np.ndarray:
    """Smooth colour frames (compress well, so lossy codecs keep them close) with a red square
    on the left half and a blue one on the right, to check the RGB channel order."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(60, 200, (H // 8, W // 8, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    out = np.repeat(base[None], T, axis=0).copy()
    for t in range(T):
        out[t, 20:50, 10 + t:40 + t] = (230, 20, 20)
        out[t, 20:50, W - 50:W - 20] = (20, 20, 230)
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    d = tmp_path_factory.mktemp("video")
    frames = _frames(T=12)
    return write_video(d / "clip.mp4", frames, 12.5), frames


@pytest.mark.parametrize("suffix,fourcc", [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_decode_file_roundtrip_rgb_fps(tmp_path: Path, suffix: str, fourcc: str) -> None:
    frames = _frames()
    p = write_video(tmp_path / f"v{suffix}", frames, 15.0, fourcc=fourcc)
    v = load_video(p)
    assert isinstance(v, Video)
    assert v.frames.shape == frames.shape and v.frames.dtype == np.uint8
    assert v.fps == pytest.approx(15.0)
    assert np.abs(v.frames.astype(int) - frames).mean() < 6  # lossy codec, but close
    red = v.frames[0, 25:45, 15:35].mean((0, 1))
    assert red[0] > 180 and red[2] < 80  # RGB, not BGR


def test_decode_image_folder(tmp_path: Path) -> None:
    frames = _frames(T=5)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), f[:, :, ::-1])
    (tmp_path / "notes.txt").write_text("ignored")
    v = load_video(tmp_path, fps=7.0)
    np.testing.assert_array_equal(v.frames, frames)  # PNG is lossless
    assert v.fps == 7.0
    assert load_video(tmp_path).fps == 10.0  # folders have no rate: the documented default


def test_resize_to_camera_scales_both_axes(clip: tuple[Path, np.ndarray]) -> None:
    p, frames = clip
    v = load_video(p, expect_size=(320, 240))
    assert v.size_wh == (320, 240)
    # the red square (rows 20..50 at 120 px high) is now at rows 40..100
    red = v.frames[0, 50:90, 30:70].mean((0, 1))
    assert red[0] > 180 and red[2] < 80
    assert load_video(p, expect_size=(160, 120)).size_wh == (160, 120)


def test_resize_refuses_aspect_mismatch_and_disabled_resize(clip: tuple[Path, np.ndarray]) -> None:
    p, _ = clip
    with pytest.raises(InvalidInput, match="aspect"):
        load_video(p, expect_size=(320, 200))
    with pytest.raises(InvalidInput, match="resizing disabled"):
        load_video(p, expect_size=(320, 240), resize=False)


def test_limits(clip: tuple[Path, np.ndarray]) -> None:
    p, _ = clip
    with pytest.raises(InvalidInput, match="more than 5 frames"):
        load_video(p, max_frames=5)
    with pytest.raises(InvalidInput, match="above the limit"):
        load_video(p, max_bytes=100)
    with pytest.raises(InvalidInput, match="decoded"):
        load_video(p, max_decoded_bytes=160 * 120 * 3 * 4)
    with pytest.raises(InvalidInput, match="at least 20"):
        load_video(p, min_frames=20)
    with pytest.raises(InvalidInput, match="fps"):
        load_video(p, fps=-1.0)


def test_empty_missing_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InvalidInput, match="empty"):
        load_video(tmp_path / "empty.mp4")
    with pytest.raises(InvalidInput, match="not found"):
        load_video(tmp_path / "nope.mp4")
    (tmp_path / "v.gif").write_bytes(b"GIF89a")
    with pytest.raises(InvalidInput, match="unsupported"):
        load_video(tmp_path / "v.gif")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InvalidInput, match="no images"):
        load_video(tmp_path / "folder")


@pytest.mark.parametrize("suffix,fourcc", [(".mp4", "mp4v"), (".avi", "MJPG")])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files_are_refused(tmp_path: Path, suffix: str, fourcc: str, keep: float) -> None:
    p = write_video(tmp_path / f"v{suffix}", _frames(T=20), 10.0, fourcc=fourcc)
    data = p.read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InvalidInput, match="truncated|corrupted"):
        load_video(bad)


@pytest.mark.parametrize("suffix,fourcc", [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_corrupted_files_are_refused(tmp_path: Path, suffix: str, fourcc: str) -> None:
    p = write_video(tmp_path / f"v{suffix}", _frames(T=10), 10.0, fourcc=fourcc)
    data = bytearray(p.read_bytes())
    rng = np.random.default_rng(1)
    data[64:-64] = rng.integers(0, 256, len(data) - 128, dtype=np.uint8).tobytes()
    bad = tmp_path / f"junk{suffix}"
    bad.write_bytes(bytes(data))
    with pytest.raises(InvalidInput):
        load_video(bad)
    (tmp_path / f"noise{suffix}").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InvalidInput, match="could not be opened"):
        load_video(tmp_path / f"noise{suffix}")


def test_folder_with_corrupt_or_mixed_images(tmp_path: Path) -> None:
    frames = _frames(T=3)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i}.png"), f[:, :, ::-1])
    (tmp_path / "3.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InvalidInput, match="could not be decoded"):
        load_video(tmp_path)
    (tmp_path / "3.png").unlink()
    cv2.imwrite(str(tmp_path / "4.png"), np.zeros((60, 80, 3), np.uint8))
    with pytest.raises(InvalidInput, match="frame 3 is 80x60"):
        load_video(tmp_path)


def test_single_frame_is_not_a_video(tmp_path: Path) -> None:
    p = write_video(tmp_path / "one.mp4", _frames(T=1), 10.0)
    with pytest.raises(InvalidInput, match="at least 2"):
        load_video(p)
