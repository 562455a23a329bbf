"""``SimEnv``: one task's MuJoCo scene with its camera, renderer, success check and robot.

Why one object: the pipeline, the tests and the ``sim render`` command all need the same
things together (the model, the current state, what the camera sees, whether the task
succeeded) and the same seed must always give the same scene and the same pictures.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from dream2flow.errors import InvalidInput, PerceptionFailed
from dream2flow.sim import panda_model
from dream2flow.sim.camera import CAMERA_NAME, default_camera
from dream2flow.sim.scene import OCCLUDER_BODY, OCCLUDER_PARK, compose
from dream2flow.sim.tasks import TASK_CLASSES, SuccessResult
from dream2flow.types import RGBD, CameraModel

if TYPE_CHECKING:
    from dream2flow.sim.frames import BackgroundFrames
    from dream2flow.sim.robot import MujocoRobotBackend
    from dream2flow.sim.variation import Lighting
    from dream2flow.sim.video_gen import GeneratedVideo

TASKS: tuple[str, ...] = tuple(TASK_CLASSES)
SETTLE_S = 0.3  # physics run at reset so objects rest and the arm holds still


def make_env(task: str, seed: int, *, camera: CameraModel | None = None, vary: str | None = None,
             lighting: "Lighting | None" = None) -> "SimEnv":
    """A fresh environment for ``task`` (one of ``TASKS``) drawn from ``seed``; ``camera`` defaults
    to ``hw/cameras/sim_d435.toml``; ``vary`` (one of ``vary.VARIATIONS``) draws that one factor of
    the scene again (``sim/vary.py``); ``lighting`` (``sim.variation``, training renders) None = the
    default lights. InvalidInput for an unknown task or variation, or a camera MuJoCo can't model."""
    return SimEnv(task, seed, camera=camera, vary=vary, lighting=lighting)


def draw_task(task: str, seed: int, task_factory: Callable[[np.random.Generator], Any] | None = None,
              *, vary: str | None = None) -> tuple[Any, np.random.Generator]:
    """(task instance, scene generator) for ``seed``: the same seed always gives the same task
    geometry and the same table/lighting draws (``scene.compose``), in any scene built from them.
    ``task_factory(rng)`` builds a task outside ``TASKS`` (``push_t``) from the same streams."""
    if task_factory is None and task not in TASK_CLASSES:
        raise InvalidInput(f"unknown sim task '{task}' (choose from {', '.join(TASKS)})")
    ss = np.random.SeedSequence([int(seed), zlib.crc32(task.encode())])
    scene_rng, task_rng = (np.random.default_rng(s) for s in ss.spawn(2))
    if vary == "instance":
        from dream2flow.sim.vary import variation_rng

        task_rng = variation_rng(task, seed, "instance")
    return (task_factory or TASK_CLASSES[task])(task_rng), scene_rng


class SimEnv:
    """Attributes: ``task``, ``seed``, ``instruction``, ``object_prompt``, ``model``, ``data``
    (MuJoCo), ``q_home`` [7] rad, ``info`` (task geometry in the base frame), ``xml``."""

    def __init__(self, task: str, seed: int, *, camera: CameraModel | None = None,
                 task_factory: Callable[[np.random.Generator], Any] | None = None, vary: str | None = None,
                 lighting: "Lighting | None" = None) -> None:
        """``task_factory(rng) -> Task`` builds a task that is not in ``TASKS`` (e.g. ``push_t``, which
        has its own evaluation, ``dream2flow.pusht``); ``task`` is then only its name. ``lighting``
        (``sim.variation.Lighting``): other lights than the default ones (training renders)."""
        import mujoco

        if task_factory is None and task not in TASK_CLASSES:
            raise InvalidInput(f"unknown sim task '{task}' (choose from {', '.join(TASKS)})")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InvalidInput(f"seed must be a non-negative integer, got {seed!r}")
        from dream2flow.sim.vary import VARIATIONS, vary_camera, variation_rng

        if vary is not None and vary not in VARIATIONS:
            raise InvalidInput(f"unknown variation '{vary}' (choose from {', '.join(VARIATIONS)})")
        self.task = task
        self.seed = int(seed)
        self.vary = vary
        self._camera = camera if camera is not None else default_camera()
        if vary == "viewpoint":
            self._camera = vary_camera(self._camera, variation_rng(task, self.seed, "viewpoint"))
        self._task, scene_rng = draw_task(task, self.seed, task_factory, vary=vary)
        self.xml, assets = compose(self._task, self._camera, scene_rng,
                                   background_rng=variation_rng(task, self.seed, "background")
                                   if vary == "background" else None, lighting=lighting)
        self.model = mujoco.MjModel.from_xml_string(self.xml, assets)
        self.data = mujoco.MjData(self.model)
        self.instruction = self._task.instruction
        self.object_prompt = self._task.object_prompt
        self.static_parts: tuple[str, ...] = tuple(self._task.static_parts)
        self.info: dict[str, Any] = dict(self._task.info)
        if vary is not None:
            self.info["variation"] = vary
        from dream2flow.config import load_robot_limits

        self.q_home = np.array(load_robot_limits().q_ready, dtype=np.float64)
        self.object_body_ids = np.array([mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, b)
                                         for b in self._task.object_bodies], dtype=np.int32)
        self._arm_qadr = np.array([self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, j)]
                                   for j in panda_model.ARM_JOINTS])
        self._flex_seg_body = np.array([mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY,
                                                          self._task.flex_bodies.get(mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_FLEX, f) or "", ""))
                                        for f in range(self.model.nflex)], dtype=np.int32)
        self._renderer: Any = None
        self._backend: MujocoRobotBackend | None = None
        self.reset()

    # --- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the seeded initial state: robot at ``q_home``, gripper open, objects at rest."""
        import mujoco

        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._arm_qadr] = self.q_home
        for j in panda_model.FINGER_JOINTS:
            self.data.qpos[self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, j)]] = \
                panda_model.FINGER_MAX_M
        self.data.ctrl[: len(panda_model.ARM_ACTUATORS)] = self.q_home
        self.data.ctrl[self.model.actuator(panda_model.GRIPPER_ACTUATOR).id] = panda_model.FINGER_MAX_M
        self.data.mocap_pos[self.model.body(OCCLUDER_BODY).mocapid[0]] = OCCLUDER_PARK
        mujoco.mj_forward(self.model, self.data)
        for _ in range(int(round(SETTLE_S / self.model.opt.timestep))):
            mujoco.mj_step(self.model, self.data)
        self.data.time = 0.0
        if self._backend is not None:
            self._backend._sync_from_state()

    def set_task_progress(self, s: float) -> None:
        """Put the task object kinematically at ``s`` in [0,1] of its scripted path (1 = done):
        for tests and demos of the success check. Velocities of the object are zeroed."""
        import mujoco

        self._task.set_progress(self.model, self.data, float(s))
        mujoco.mj_forward(self.model, self.data)

    def set_failure_state(self) -> None:
        """A plausible near-miss (moved, but not enough / not there); for tests."""
        import mujoco

        self._task.failure_state(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)

    def success(self) -> SuccessResult:
        return self._task.success(self.model, self.data)

    # --- camera --------------------------------------------------------------------------------
    def camera_model(self) -> CameraModel:
        return self._camera

    def _get_renderer(self) -> Any:
        import mujoco

        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self._camera.height, self._camera.width)
        return self._renderer

    def scene_option(self, robot: bool = True) -> Any:
        """Visible geom groups: 0 scene, 1 robot (off for generated videos), 2 task objects/occluder."""
        import mujoco

        opt = mujoco.MjvOption()
        opt.geomgroup[:] = 0
        opt.geomgroup[0] = 1
        opt.geomgroup[2] = 1
        opt.geomgroup[panda_model.ROBOT_GEOM_GROUP] = 1 if robot else 0
        return opt

    def _render(self, data: Any, mode: str, robot: bool, shadows: bool = True, renderer: Any = None) -> np.ndarray:
        import mujoco

        r = renderer if renderer is not None else self._get_renderer()
        if mode == "depth":
            r.enable_depth_rendering()
        elif mode == "seg":
            r.enable_segmentation_rendering()
        try:
            r.update_scene(data, camera=CAMERA_NAME, scene_option=self.scene_option(robot))
            if not shadows:
                r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
                r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            out = r.render()
        finally:
            r.disable_depth_rendering()
            r.disable_segmentation_rendering()
        if mode == "depth":
            far = self.model.vis.map.zfar * self.model.stat.extent
            out = np.where(np.isfinite(out) & (out > 0) & (out < 0.999 * far), out, 0).astype(np.float32)
        elif mode == "seg":
            import mujoco

            geom = out[:, :, 0]
            is_geom = out[:, :, 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
            body = np.where(is_geom & (geom >= 0), self.model.geom_bodyid[np.clip(geom, 0, None)], -1)
            if self._flex_seg_body.size:  # a flex (cloth) has no body of its own: the task names one
                is_flex = (out[:, :, 1] == int(mujoco.mjtObj.mjOBJ_FLEX)) & (geom >= 0)
                body = np.where(is_flex, self._flex_seg_body[np.clip(geom, 0, self._flex_seg_body.size - 1)], body)
            out = body.astype(np.int32)
        return out

    def render_rgb(self, *, robot: bool = True, shadows: bool = True) -> np.ndarray:
        """[H,W,3] uint8 of the current state. ``shadows=False`` also drops reflections: a plain
        frame for pictures people watch (the execution video), about 3.5x cheaper on the software
        renderer; the camera's images (I0, the generated video) always keep them."""
        return self._render(self.data, "rgb", robot, shadows)

    def background_frames(self, scale: float = 1.0, *, robot: bool = True, shadows: bool = False
                          ) -> "BackgroundFrames":
        """A recorder that renders snapshots of this scene (default: robot visible, no shadows) on a
        worker thread with its own renderer, while the caller goes on stepping the simulation;
        ``scale``: frame size relative to the camera's (below 1 also without multisampling)."""
        from dream2flow.sim.frames import BackgroundFrames

        return BackgroundFrames(self, scale, robot=robot, shadows=shadows)

    def render_depth(self, *, robot: bool = True) -> np.ndarray:
        """[H,W] float32 metric depth along the optical axis (m), 0 = nothing there."""
        return self._render(self.data, "depth", robot)

    def render_rgbd(self) -> RGBD:
        """What the RealSense would give: I0 and D0 of the current state, robot visible."""
        return RGBD(rgb=self.render_rgb(), depth_m=self.render_depth(), camera=self._camera)

    def render_segmentation(self, *, robot: bool = True) -> np.ndarray:
        """[H,W] int32 MuJoCo body id per pixel (-1 background). Tests/evaluation only: never feed it
        to the pipeline as a model's output. ``object_body_ids`` are the task object's bodies."""
        return self._render(self.data, "seg", robot)

    def object_mask(self, *, robot: bool = True) -> np.ndarray:
        """[H,W] bool: pixels of the task object (the part that moves) in the current view."""
        return np.isin(self.render_segmentation(robot=robot), self.object_body_ids)

    def object_box(self, margin_px: int = 6) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) pixel box of the task object in the current view (robot visible), grown by
        ``margin_px``: stands in for the box an operator or a detector would give."""
        mask = self.object_mask()
        ys, xs = np.nonzero(mask)
        if xs.size < 20:
            raise PerceptionFailed(f"the {self.object_prompt} is not visible in the sim camera ({xs.size} px)")
        W, H = self._camera.width, self._camera.height
        return (max(0, int(xs.min()) - margin_px), max(0, int(ys.min()) - margin_px),
                min(W - 1, int(xs.max()) + margin_px), min(H - 1, int(ys.max()) + margin_px))

    def render_at_progress(self, s: float, path: dict[str, Any] | None = None, *, robot: bool = False
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb [H,W,3] uint8, depth [H,W] float32 m, object mask [H,W] bool) with the task object at
        progress ``s`` of the scripted ``path`` (``task_object.video_path(rng)``; None = nominal),
        the robot shown or hidden, as the video generator places it. Rendered on a scratch copy of
        the state (the env is left untouched); for training data and evaluation."""
        import mujoco

        data = mujoco.MjData(self.model)
        data.qpos[:] = self.data.qpos
        data.mocap_pos[:] = self.data.mocap_pos
        data.mocap_quat[:] = self.data.mocap_quat
        self._task.set_progress(self.model, data, float(s), path)
        mujoco.mj_forward(self.model, data)
        rgb = self._render(data, "rgb", robot)
        depth = self._render(data, "depth", robot)
        mask = np.isin(self._render(data, "seg", robot), self.object_body_ids)
        return rgb, depth, mask

    # --- video generator / robot ---------------------------------------------------------------
    def generate_video(self, artifacts: str = "clean", *, num_frames: int = 48, seed: int | None = None,
                       fps: float = 12.0, num_points: int = 256, with_segmentation: bool = False) -> "GeneratedVideo":
        """The stand-in for the video model: the task done without the robot, from the current state
        (which it leaves untouched); see ``video_gen`` for artefacts and ground truth."""
        from dream2flow.sim.video_gen import generate_video

        return generate_video(self, artifacts, num_frames=num_frames, seed=seed, fps=fps, num_points=num_points,
                              with_segmentation=with_segmentation)

    def robot_backend(self, impedance: str | None = None) -> "MujocoRobotBackend":
        """The ``mujoco`` RobotBackend bound to this env (one per env); ``impedance`` (one of
        ``sim.robot.IMPEDANCES``, default ``stiff``) only when it is first made."""
        if self._backend is None:
            from dream2flow.sim.robot import MujocoRobotBackend

            self._backend = MujocoRobotBackend(self, impedance=impedance)
        elif impedance is not None and impedance != self._backend.impedance:
            raise InvalidInput(f"this env's robot backend is already {self._backend.impedance!r}, not {impedance!r}")
        return self._backend

    @property
    def task_object(self) -> Any:
        """The task instance (scripted path, thumb point, geometry); for the video generator/tests."""
        return self._task

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> "SimEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
