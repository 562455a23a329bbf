"""Issue 13, item 6 / acceptance 5: the checks a real video needs. Frame 0 must show I0's scene
from the same camera (another scene, or a camera moved by 40 px, is refused with one line before
any flow or plan); a video of another aspect ratio is centre-cropped or letterboxed on request,
with intrinsics that stay consistent (``K_video = A⁻¹ K``), never stretched; a 16:9 video with
``--fit crop`` gives the same flow as the camera's own 4:3 video."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from dream2flow.errors import InvalidInput  # noqa: E402
from dream2flow.video.fit import plan_fit  # noqa: E402
from dream2flow.video.first_frame import check_first_frame, measure_first_frame  # noqa: E402


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dream2flow.cli", *args], capture_output=True, text=True, timeout=600)


# ---- fit: geometry ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode, scaled, offset", [("crop", (853, 480), (-107, 0)), ("letterbox", (640, 360), (0, 60))])
def test_fit_16_9_onto_4_3(mode: str, scaled: tuple, offset: tuple) -> None:
    f = plan_fit((1280, 720), (640, 480), mode)
    assert (f.mode, f.scaled_wh, f.offset_px) == (mode, scaled, offset)
    sx, sy = f.scale_xy
    assert abs(sx / sy - 1) < 1e-3  # uniform up to whole-pixel rounding (recorded exactly in A)
    # A maps the video's centre to the camera's centre (pixel-centre convention) up to that rounding
    c = f.A_cam_video @ np.array([639.5, 359.5, 1.0])
    assert np.allclose(c[:2], [319.5, 239.5], atol=0.5)


def test_fit_refuses_to_stretch_and_passes_same_aspect() -> None:
    with pytest.raises(InvalidInput, match=r"refusing to stretch.*--fit crop.*--fit letterbox"):
        plan_fit((1280, 720), (640, 480))
    assert plan_fit((640, 480), (640, 480)).identity
    r = plan_fit((1280, 960), (640, 480), None)
    assert r.mode == "resize" and r.scale_xy == (0.5, 0.5)
    with pytest.raises(InvalidInput):
        plan_fit((1280, 720), (640, 480), "stretch")


@pytest.mark.parametrize("mode", ["crop", "letterbox"])
def test_fit_intrinsics_are_consistent_with_the_pixels(mode: str) -> None:
    """A point seen by the video's own camera K_video lands, after fitting the frame, where the
    camera's K projects it: the fitted frames and K agree, and K_video is the video's calibration."""
    import cv2

    K = np.array([[615.0, 0.0, 319.5], [0.0, 615.0, 239.5], [0.0, 0.0, 1.0]])
    f = plan_fit((1280, 720), (640, 480), mode)
    Kv = f.K_video(K)
    rng = np.random.default_rng(0)
    for _ in range(5):
        X = np.array([rng.uniform(-0.15, 0.15), rng.uniform(-0.08, 0.08), rng.uniform(0.8, 1.2)])
        uv = (Kv @ X)[:2] / X[2]                       # in the 1280x720 video
        want = (K @ X)[:2] / X[2]                      # in the camera
        img = np.zeros((720, 1280), np.float32)
        cv2.circle(img, (int(round(uv[0] * 16)), int(round(uv[1] * 16))), 6 * 16, 1.0, -1, cv2.LINE_AA, shift=4)
        out = f.apply(img)
        ys, xs = np.nonzero(out > 0.05)
        w = out[ys, xs]
        got = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
        assert np.linalg.norm(got - want) < 0.35, (mode, got, want)


def test_fit_letterbox_padding_is_invalid() -> None:
    f = plan_fit((1280, 720), (640, 480), "letterbox")
    m = f.valid_mask()
    assert m[60:420].all() and not m[:60].any() and not m[420:].any()
    frame = np.full((720, 1280, 3), 200, np.uint8)
    out = f.apply(frame)
    assert out.shape == (480, 640, 3) and (out[:60] == 0).all() and (out[60:420] == 200).all()
    d = f.apply_depth(np.ones((2, 720, 1280), np.float32))
    assert d.shape == (2, 480, 640) and np.isnan(d[:, :60]).all() and np.isfinite(d[:, 60:420]).all()
    d = f.apply_depth(np.ones((2, 360, 640), np.float32))  # depth at a smaller size of the video's aspect
    assert d.shape == (2, 480, 640)
    with pytest.raises(InvalidInput, match="another aspect ratio"):
        f.apply_depth(np.ones((2, 480, 640), np.float32))


def test_load_video_fit_crop(tmp_path: Path) -> None:
    from dream2flow.video.decode import load_video, load_video_fit
    from dream2flow.video.encode import write_video

    rng = np.random.default_rng(0)
    write_video(tmp_path / "v.mp4", rng.integers(0, 255, (3, 144, 256, 3), dtype=np.uint8), 10.0)
    v, f = load_video_fit(tmp_path / "v.mp4", expect_size=(160, 120), fit="crop")
    assert v.frames.shape == (3, 120, 160, 3) and f.mode == "crop"
    with pytest.raises(InvalidInput, match="refusing to stretch"):
        load_video(tmp_path / "v.mp4", expect_size=(160, 120))


# ---- the first frame -------------------------------------------------------------------------

def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    import cv2

    A = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(img, A, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def scenes():
    from dream2flow import sim
    out = {}
    for task, seed in (("open_drawer", 0), ("open_drawer", 1), ("bread_in_bowl", 0)):
        env = sim.make_env(task, seed)
        gen = env.generate_video("clean", num_frames=8, seed=seed)
        out[(task, seed)] = (env.render_rgbd().rgb, gen.video.frames[0])
        env.close()
    return out


@pytest.mark.sim
def test_first_frame_same_scene_passes_other_scene_and_moved_camera_fail(scenes) -> None:
    i0, f0 = scenes[("open_drawer", 0)]
    ok = check_first_frame(f0, i0)
    assert ok.ok and ok.shift_norm_px < 0.5 and ok.similarity > 0.9
    assert measure_first_frame(_shift(f0, 4, -3), i0).ok  # within 10 px at 640x480: still the scene of I0
    for dx, dy in ((40, 0), (0, -40), (24, 32)):
        r = measure_first_frame(_shift(f0, dx, dy), i0)
        assert not r.ok and r.same_scene and abs(r.shift_px[0] - dx) < 1 and abs(r.shift_px[1] - dy) < 1
        with pytest.raises(InvalidInput, match=r"shifted by .* px from I0 \(limit 10 px\)"):
            check_first_frame(_shift(f0, dx, dy), i0)
    for other in (("open_drawer", 1), ("bread_in_bowl", 0)):
        r = measure_first_frame(scenes[other][1], i0)
        assert not r.same_scene and r.similarity < 0.4
        with pytest.raises(InvalidInput, match="does not show the scene of I0"):
            check_first_frame(scenes[other][1], i0)


@pytest.mark.sim
def test_first_frame_of_a_letterboxed_video(scenes) -> None:
    import cv2

    i0, _ = scenes[("bread_in_bowl", 0)]
    f = plan_fit((1280, 600), (640, 480), "letterbox")  # a wide video showing the centre band of I0
    x0, y0, x1, y1 = f.valid_rect()
    band = cv2.resize(i0[y0:y1], (1280, 600), interpolation=cv2.INTER_CUBIC)
    fitted = f.apply(band)
    r = check_first_frame(fitted, i0, valid_rect=f.valid_rect())
    assert r.ok and r.similarity > 0.8


# ---- acceptance 5 through the command ---------------------------------------------------------

@pytest.fixture(scope="module")
def drawer(tmp_path_factory: pytest.TempPathFactory):
    """open_drawer seed 0: I0/D0/camera (4:3), its own video, and the same scene filmed by a 16:9
    camera whose centre crop is the robot camera's view (a generator that outpainted I0)."""
    from dream2flow import sim
    from dream2flow.config import save_camera
    from dream2flow.io_utils import write_rgb
    from dream2flow.types import CameraModel
    from dream2flow.video.encode import write_video

    d = tmp_path_factory.mktemp("drawer")
    env = sim.make_env("open_drawer", 0)
    cam = env.camera_model()
    obs = env.render_rgbd()
    gen = env.generate_video("clean", num_frames=12, seed=0)
    write_rgb(d / "i0.png", obs.rgb)
    np.save(d / "d0.npy", obs.depth_m)
    save_camera(cam, d / "camera.toml")
    write_video(d / "video43.mp4", gen.video.frames, gen.video.fps)
    np.save(d / "rel43.npy", gen.rel_depth)
    box = ",".join(str(int(v)) for v in env.object_box())
    # 16:9 camera with the same focal length in pixels x1.5 and a centred principal point
    K16 = np.array([[cam.K[0, 0] * 1.5, 0, 639.5], [0, cam.K[1, 1] * 1.5, 359.5], [0, 0, 1]])
    env16 = sim.make_env("open_drawer", 0, camera=CameraModel(K=K16, width=1280, height=720,
                                                              T_base_cam=cam.T_base_cam))
    gen16 = env16.generate_video("clean", num_frames=12, seed=0)
    write_video(d / "video169.mp4", gen16.video.frames, gen16.video.fps)
    np.save(d / "rel169.npy", gen16.rel_depth)
    shifted = np.stack([_shift(f, 40, 0) for f in gen.video.frames])
    write_video(d / "video_shift40.mp4", shifted, gen.video.fps)
    env_b = sim.make_env("open_drawer", 1)
    write_video(d / "video_other.mp4", env_b.generate_video("clean", num_frames=12, seed=1).video.frames, gen.video.fps)
    for e in (env, env16, env_b):
        e.close()
    return d, box


def _flow_args(d: Path, box: str, video: str, rel: str, out: Path, *extra: str) -> list[str]:
    return ["flow", "--video", str(d / video), "--rgb", str(d / "i0.png"), "--depth", str(d / "d0.npy"),
            "--camera", str(d / "camera.toml"), "--box", box, "--video-depth", str(d / rel), "--points", "128",
            "--perception", "classical", "--out", str(out), *extra]


@pytest.mark.sim
@pytest.mark.slow
def test_16_9_video_with_fit_crop_gives_the_flow_of_the_4_3_video(drawer, tmp_path: Path) -> None:
    from dream2flow.types import ObjectFlow

    d, box = drawer
    r = _cli(*_flow_args(d, box, "video169.mp4", "rel169.npy", tmp_path / "no_fit"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--fit crop" in r.stderr
    assert not (tmp_path / "no_fit").exists()
    r = _cli(*_flow_args(d, box, "video169.mp4", "rel169.npy", tmp_path / "f169", "--fit", "crop"))
    assert r.returncode == 0, r.stderr
    r = _cli(*_flow_args(d, box, "video43.mp4", "rel43.npy", tmp_path / "f43"))
    assert r.returncode == 0, r.stderr
    wide = ObjectFlow.load(tmp_path / "f169" / "flow.npz")
    own = ObjectFlow.load(tmp_path / "f43" / "flow.npz")
    fit = wide.meta["fit"]
    assert fit["mode"] == "crop" and fit["video_size"] == [1280, 720] and fit["camera_size"] == [640, 480]
    np.testing.assert_allclose(np.array(fit["K_video"]) @ [0, 0, 1], [640.25, 359.5, 1.0], atol=0.3)
    assert wide.meta["first_frame"]["ok"] and "fit" not in own.meta
    np.testing.assert_array_equal(wide.query_px, own.query_px)  # same I0, box, seed: same query points
    both = wide.visible & own.visible
    assert both.mean() > 0.3
    gap_mm = 1000 * np.linalg.norm(wide.points_base[both] - own.points_base[both], axis=1)
    assert np.median(gap_mm) < 5.0, np.median(gap_mm)
    # including the points that really move (the drawer opening), by far more than the gap
    moved_mm = 1000 * np.linalg.norm(own.points_base - own.points_base[:1], axis=2)[both]
    moving = moved_mm > 20.0
    assert moving.sum() >= 20 and np.median(gap_mm[moving]) < 5.0


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("video, pattern", [("video_shift40.mp4", "shifted by"),
                                            ("video_other.mp4", "does not show the scene of I0")])
def test_flow_refuses_a_video_that_does_not_start_at_i0(drawer, tmp_path: Path, video: str, pattern: str) -> None:
    d, box = drawer
    r = _cli(*_flow_args(d, box, video, "rel43.npy", tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and pattern in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
