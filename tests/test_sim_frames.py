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
