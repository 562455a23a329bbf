"""Execution-video frames drawn on a worker thread (sim.frames.BackgroundFrames) are the frames
inline rendering gives for the same states, in the order queued, while the caller keeps stepping."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")

import mujoco  # noqa: E402

from dream2flow.sim import make_env  # noqa: E402

pytestmark = pytest.mark.sim


def test_background_frames_equal_inline_frames() -> None:
    env = make_env("open_drawer", 0)
    ref = make_env("open_drawer", 0)
    rec = env.background_frames()
    inline = []
    for k in range(3):
        for e in (env, ref):  # move the arm: each snapshot is a different state
            e.data.ctrl[0] = 0.3 * (k + 1)
            for _ in range(40):
                mujoco.mj_step(e.model, e.data)
        rec.add(k * 40)
        inline.append(ref.render_rgb(shadows=False))
    out = rec.frames()
    assert [k for k, _ in out] == [0, 40, 80]
    for (_, got), want in zip(out, inline):
        assert got.shape == want.shape and got.dtype == np.uint8
        assert np.array_equal(got, want)
    assert not np.array_equal(out[0][1], out[-1][1])  # the snapshots differ: not one state drawn three times
    env.close()
    ref.close()


def test_smaller_frames_show_the_same_view() -> None:
    import cv2

    from dream2flow.episode import scaled_camera
    from dream2flow.errors import InvalidInput

    env = make_env("open_drawer", 0)
    rec = env.background_frames(0.5)
    assert rec.size() == (env.camera_model().width // 2, env.camera_model().height // 2)
    rec.add(0)
    (_, small), = rec.frames()
    full = env.render_rgb(shadows=False)
    assert small.shape == (full.shape[0] // 2, full.shape[1] // 2, 3)
    # the same picture at half the size (no multisampling: edges differ, not the view)
    down = cv2.resize(full, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - down.astype(int)).mean() < 6.0
    # points drawn on the small frames land where they are in the full ones
    cam = env.camera_model()
    small_cam = scaled_camera(cam, *rec.size())
    P_cam = np.array([[0.05, -0.02, 0.8], [-0.1, 0.07, 1.1]])  # in front of the camera
    P = P_cam @ cam.T_base_cam[:3, :3].T + cam.T_base_cam[:3, 3]
    px_full, _ = cam.project(P)
    px_small, _ = small_cam.project(P)
    assert np.allclose((px_full + 0.5) / 2 - 0.5, px_small, atol=1e-6)
    with pytest.raises(InvalidInput):
        env.background_frames(0.0)
    env.close()
