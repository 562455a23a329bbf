"""``PushTEnv``: the Push-T scene (a ``SimEnv`` with the Panda, the T-block and the parked
floating pusher), its loop camera, and the floating-pusher stroke used for training data.

Seeds: the scene's table/lighting come from ``seed`` (as for every sim task); the block starts
at ``initial_pose``. The Panda rests in the ready pose unless the episode drives it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dream2flow.pusht import geometry as G
from dream2flow.pusht.observe import Observation, loop_camera, observe
from dream2flow.pusht.primitive import PUSH_Z_M, Pushes, push_duration_s, stroke_profile
from dream2flow.pusht.task import PUSHER_BODY, PUSHER_PARK, PushT
from dream2flow.types import RGBD

SETTLE_AFTER_PUSH_S = 0.3
APPROACH_S = 0.2   # floating pusher: hold at the start this long before the stroke


class PushTEnv:
    def __init__(self, initial_pose: np.ndarray, seed: int, *, camera: Any = None) -> None:
        from dream2flow.sim.env import SimEnv

        pose = np.asarray(initial_pose, dtype=np.float64)
        self.sim = SimEnv("push_t", int(seed), camera=camera, task_factory=lambda rng: PushT(rng, pose))
        self.model, self.data = self.sim.model, self.sim.data
        self.loop_cam = loop_camera(self.sim.camera_model())
        self._loop_renderer: Any = None
        self._pusher = int(self.model.body(PUSHER_BODY).mocapid[0])
        self.physics_steps = 0

    # --- state ---------------------------------------------------------------------------------
    def block_pose(self) -> np.ndarray:
        return PushT.block_pose(self.model, self.data)

    def set_block_pose(self, pose: np.ndarray) -> None:
        import mujoco

        PushT.set_block_pose(self.model, self.data, pose)
        mujoco.mj_forward(self.model, self.data)

    def success(self) -> Any:
        return self.sim.success()

    def step(self, n: int) -> None:
        import mujoco

        for _ in range(int(n)):
            mujoco.mj_step(self.model, self.data)
        self.physics_steps += int(n)

    # --- camera --------------------------------------------------------------------------------
    def loop_rgbd(self, *, robot: bool = True) -> RGBD:
        """RGB-D of the current state through the loop camera (half resolution)."""
        import mujoco

        from dream2flow.sim.camera import CAMERA_NAME

        if self._loop_renderer is None:
            self._loop_renderer = mujoco.Renderer(self.model, self.loop_cam.height, self.loop_cam.width)
        r = self._loop_renderer
        opt = self.sim.scene_option(robot)
        r.update_scene(self.data, camera=CAMERA_NAME, scene_option=opt)
        rgb = r.render().copy()
        r.enable_depth_rendering()
        try:
            r.update_scene(self.data, camera=CAMERA_NAME, scene_option=opt)
            depth = r.render().copy()
        finally:
            r.disable_depth_rendering()
        far = self.model.vis.map.zfar * self.model.stat.extent
        depth = np.where(np.isfinite(depth) & (depth > 0) & (depth < 0.999 * far), depth, 0).astype(np.float32)
        return RGBD(rgb=rgb, depth_m=depth, camera=self.loop_cam)

    def privileged_mask(self) -> np.ndarray:
        """[h,w] bool block pixels from the simulator's segmentation at loop resolution (privileged)."""
        import mujoco

        from dream2flow.sim.camera import CAMERA_NAME

        r = self._loop_renderer
        if r is None:
            self.loop_rgbd()
            r = self._loop_renderer
        r.enable_segmentation_rendering()
        try:
            r.update_scene(self.data, camera=CAMERA_NAME, scene_option=self.sim.scene_option(True))
            seg = r.render()
        finally:
            r.disable_segmentation_rendering()
        is_geom = seg[:, :, 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
        body = np.where(is_geom & (seg[:, :, 0] >= 0), self.model.geom_bodyid[np.clip(seg[:, :, 0], 0, None)], -1)
        return np.isin(body, self.sim.object_body_ids)

    def observe(self, n: int, seed: int | np.random.Generator, *, source: str = "camera",
                robot: bool = True) -> Observation:
        """Block points from the loop camera: ``source`` "camera" (height-band segmentation of the
        live depth) or "privileged" (the simulator's segmentation mask)."""
        rgbd = self.loop_rgbd(robot=robot)
        if source == "privileged":
            return observe(rgbd, n, seed, mask=self.privileged_mask(), mask_source="privileged")
        return observe(rgbd, n, seed)

    # --- floating pusher -----------------------------------------------------------------------
    def floating_push(self, pushes: Pushes, settle_s: float = SETTLE_AFTER_PUSH_S) -> None:
        """Execute one push with the floating pusher (mocap: finger-tip shape, ``PUSH_Z_M``), then park
        it and let the block settle."""
        import mujoco

        c, u, d = pushes.c[0], pushes.u[0], float(pushes.d[0])
        dt = self.model.opt.timestep
        m, dd = self.model, self.data
        n_app = int(round(APPROACH_S / dt))
        n_push = int(np.ceil(push_duration_s(d) / dt))
        dd.mocap_pos[self._pusher] = [c[0], c[1], PUSH_Z_M]
        for _ in range(n_app):
            mujoco.mj_step(m, dd)
        s = stroke_profile(np.arange(1, n_push + 1) * dt, d)
        for k in range(n_push):
            dd.mocap_pos[self._pusher] = [c[0] + u[0] * s[k], c[1] + u[1] * s[k], PUSH_Z_M]
            mujoco.mj_step(m, dd)
        # lift straight up, then park
        for k in range(1, 51):
            dd.mocap_pos[self._pusher] = [c[0] + u[0] * d, c[1] + u[1] * d, PUSH_Z_M + 0.002 * k]
            mujoco.mj_step(m, dd)
        dd.mocap_pos[self._pusher] = PUSHER_PARK
        n_settle = int(round(settle_s / dt))
        for _ in range(n_settle):
            mujoco.mj_step(m, dd)
        self.physics_steps += n_app + n_push + 50 + n_settle

    def close(self) -> None:
        if self._loop_renderer is not None:
            self._loop_renderer.close()
            self._loop_renderer = None
        self.sim.close()


def make_initial(i: int, seed: int, **kw: Any) -> PushTEnv:
    """The env of fixed initial state ``i`` (0..9) with scene seed ``seed``."""
    return PushTEnv(G.initial_state(i), seed, **kw)
