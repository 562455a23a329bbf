"""Scene variation for training renders (lighting, camera jitter), frames along the object's
path, and the ground truth of any extracted flow (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from dream2flow.errors import InvalidInput  # noqa: E402
from dream2flow.sim import make_env  # noqa: E402
from dream2flow.sim.camera import default_camera  # noqa: E402
from dream2flow.sim.flow_truth import flow_error, rigid_motions, truth_for  # noqa: E402
from dream2flow.sim.variation import Lighting, jittered_camera, random_lighting  # noqa: E402
from dream2flow.types import ObjectFlow  # noqa: E402

pytestmark = pytest.mark.sim


def test_default_lighting_keeps_the_scene_xml() -> None:
    with make_env("open_drawer", 3) as a, make_env("open_drawer", 3, lighting=None) as b:
        assert a.xml == b.xml
        assert 'diffuse="0.55 0.55 0.55"' in a.xml and 'ambient="0.35 0.35 0.35"' in a.xml


def test_random_lighting_and_camera_change_the_render_deterministically() -> None:
    rng = np.random.default_rng(5)
    light, cam = random_lighting(rng), jittered_camera(rng)
    rng2 = np.random.default_rng(5)
    assert random_lighting(rng2) == light
    assert np.allclose(jittered_camera(rng2).T_base_cam, cam.T_base_cam)
    base = default_camera()
    assert cam.width == base.width and cam.height == base.height
    moved = np.linalg.norm(cam.T_base_cam[:3, 3] - base.T_base_cam[:3, 3])
    assert 0 < moved <= np.sqrt(3) * 0.04 + 1e-9
    with make_env("bread_in_bowl", 7) as a, make_env("bread_in_bowl", 7, camera=cam, lighting=light) as b:
        ra, rb = a.render_rgb(), b.render_rgb()
        assert ra.shape == rb.shape and np.abs(ra.astype(int) - rb.astype(int)).mean() > 1.0
        assert b.object_mask().sum() > 100  # the jittered camera still sees the object


def test_lighting_levels_are_checked() -> None:
    with pytest.raises(InvalidInput):
        Lighting(key_diffuse=-0.1)
    with pytest.raises(InvalidInput):
        Lighting(key_offset_m=(0.0, 0.0, 5.0))


@pytest.mark.parametrize("task", ["open_drawer", "bread_in_bowl"])
def test_render_at_progress_moves_the_object_and_leaves_the_env(task: str) -> None:
    with make_env(task, 11) as env:
        q0 = env.data.qpos.copy()
        rng = np.random.default_rng(0)
        path = env.task_object.video_path(rng)
        _, d_start, m_start = env.render_at_progress(0.0, path, robot=False)
        rgb, d_end, m_end = env.render_at_progress(1.0, path, robot=False)
        assert rgb.dtype == np.uint8 and d_end.dtype == np.float32
        assert m_start.sum() > 100 and m_end.sum() > 100
        assert (m_start ^ m_end).sum() > 50  # the object moved in the image
        assert np.array_equal(env.data.qpos, q0)


def test_flow_truth_of_the_generators_own_points_is_exact() -> None:
    with make_env("open_drawer", 2) as env:
        gen = env.generate_video(num_frames=12, seed=2, num_points=64)
        rgbd = env.render_rgbd()
    R, t = rigid_motions(gen.gt_flow)
    assert np.allclose(R[0], np.eye(3), atol=1e-6) and np.allclose(t[0], 0, atol=1e-6)
    truth, ok = truth_for(gen.gt_flow.query_px, rgbd.depth_m, rgbd.camera, gen.gt_flow)
    assert ok.mean() > 0.9
    # D0 back-projection agrees with the generator's points to the depth render's precision
    err = np.linalg.norm(truth[:, ok] - gen.gt_flow.points_base[:, ok], axis=-1)
    assert np.median(err) < 0.004
    rep = flow_error(gen.gt_flow, rgbd.depth_m, rgbd.camera, gen.gt_flow)
    assert rep["median_err_m"] < 0.004 and rep["final_displacement_error_m"] < 0.004
    # a flow that stays still is wrong by the object's motion
    still = ObjectFlow(points_base=np.repeat(gen.gt_flow.points_base[:1], 12, 0), visible=gen.gt_flow.visible,
                       query_px=gen.gt_flow.query_px, fps=gen.gt_flow.fps)
    assert flow_error(still, rgbd.depth_m, rgbd.camera, gen.gt_flow)["final_displacement_error_m"] > 0.05
