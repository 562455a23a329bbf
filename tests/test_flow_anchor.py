"""Per-track anchoring of the flow's depth to D0 (flow.anchor, issue 14): a depth error that stays with
the surface is removed, per-frame noise is not turned into a persistent error, tracks without a
trustworthy D0 are left alone."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_scene import cached_scene

from dream2flow.errors import InvalidInput
from dream2flow.flow.anchor import AnchorConfig, anchor_to_d0


def _along_ray(camera, P: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Base-frame points moved by ``dz`` (m) of camera depth along their camera rays."""
    T_cb = camera.T_cam_base
    pc = P @ T_cb[:3, :3].T + T_cb[:3, 3]
    pc = pc * ((pc[..., 2] + dz) / pc[..., 2])[..., None]
    return pc @ camera.T_base_cam[:3, :3].T + camera.T_base_cam[:3, 3]


@pytest.fixture(scope="module")
def scene():
    sc = cached_scene(width=320, height=240, num_frames=24, seed=0)
    ys, xs = np.nonzero(sc.object_mask[0])
    sel = np.random.default_rng(1).choice(len(xs), 96, replace=False)
    q = np.stack([xs[sel], ys[sel]], 1).astype(np.float64)
    P, _, V, _ = sc.query_truth(q)
    return sc, q, P, V


def _err(P: np.ndarray, truth: np.ndarray, V: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(P - truth, axis=-1)[V]))


def test_a_persistent_per_point_depth_error_is_removed(scene) -> None:
    sc, q, P, V = scene
    rng = np.random.default_rng(0)
    bias = rng.normal(0, 0.01, P.shape[1])                    # 1 cm per point, the same in every frame
    noise = rng.normal(0, 0.0005, P.shape[:2])                # 0.5 mm per frame
    lifted = _along_ray(sc.camera, P, bias[None] + noise)
    out, st = anchor_to_d0(lifted, V, q, sc.depth_m[0], sc.camera)
    assert _err(lifted, P, V) > 0.005
    assert _err(out, P, V) < 0.0015, st
    assert st["shrink"] > 0.9 and st["anchored"] >= 0.9 * V[0].sum()
    # frame 0 is the measured point itself (up to the shrinkage of the noise it carries)
    assert np.median(np.linalg.norm(out[0] - P[0], axis=-1)[V[0]]) < 0.001


def test_independent_per_frame_noise_is_not_made_persistent(scene) -> None:
    sc, q, P, V = scene
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.004, P.shape[:2])                 # 4 mm per point per frame, nothing persistent
    lifted = _along_ray(sc.camera, P, noise)
    out, st = anchor_to_d0(lifted, V, q, sc.depth_m[0], sc.camera)
    assert st["shrink"] < 0.1, st
    # a plain per-track anchor would add frame 0's noise to every frame (error x sqrt 2); the shrunk one does not
    assert _err(out, P, V) < 1.1 * _err(lifted, P, V)


def test_tracks_without_a_trustworthy_d0_are_left_alone(scene) -> None:
    sc, q, P, V = scene
    d0 = sc.depth_m[0].copy()
    bad = int(np.flatnonzero(V[0])[0])
    far = int(np.flatnonzero(V[0])[1])
    d0[int(q[bad, 1]), int(q[bad, 0])] = 0.0                    # a hole in D0 at one query pixel
    y, x = int(q[far, 1]), int(q[far, 0])
    d0[y - 3:y + 4, x - 3:x + 4] += 0.2                         # D0 20 cm off around another (max offset 3 cm)
    lifted = _along_ray(sc.camera, P, np.full(P.shape[:2], 0.01))
    out, st = anchor_to_d0(lifted, V, q, d0, sc.camera)
    np.testing.assert_allclose(out[:, bad], lifted[:, bad])
    np.testing.assert_allclose(out[:, far], lifted[:, far])
    assert st["anchored"] == st["candidates"] - 1                # the hole is no candidate, the far one is refused


def test_bad_shapes_and_settings_are_clear_errors(scene) -> None:
    sc, q, P, V = scene
    with pytest.raises(InvalidInput, match="anchoring needs"):
        anchor_to_d0(P[:, :5], V, q, sc.depth_m[0], sc.camera)
    with pytest.raises(InvalidInput, match="max offset"):
        anchor_to_d0(P, V, q, sc.depth_m[0], sc.camera, AnchorConfig(max_offset_m=0.0))
    with pytest.raises(InvalidInput, match="noise factor"):
        anchor_to_d0(P, V, q, sc.depth_m[0], sc.camera, AnchorConfig(noise_factor=-1.0))
