"""``DoorEnv``: open the door, as a Gymnasium environment (MuJoCo physics, no rendering).

One episode: the cabinet is placed at a random position and yaw (``door.sample_door_pose``), the
TCP starts near (0.38, 0, 0.42) m (±3 cm), top-down, gripper open; the policy acts at
``policy_hz`` (10 Hz) for ``horizon`` steps (5 s). Action [4] in [-1, 1]: TCP velocity (x, y, z)
as a fraction of 0.25 m/s, and the gripper (> 0 closes it). Each action runs ``tick_hz /
policy_hz`` ticks of the embodiment's command loop (``embodiment.py``: controller + safety
checks); a safety violation ends the episode (``terminated``; the rewards are positive, so an
early end only loses reward). Success: the door's hinge angle reaches the task's 35 degrees and
no safety stop happened.

Rendering is off in training; ``render()`` draws the scene camera on demand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.rl.controller import R_BASE_TCP_DES, ControllerConfig, solve_ik
from dream2flow.rl.door import DOOR_TASK, DoorPose, DoorSim, DoorState, sample_door_pose
from dream2flow.rl.embodiment import EMBODIMENTS, FloatingHand, PandaArm
from dream2flow.rl.observation import OBS_DIM, observation
from dream2flow.rl.rewards import REWARDS, FlowReward, ObjectStateReward

START_TCP_M = (0.38, 0.0, 0.42)
START_NOISE_M = 0.03
SETTLE_STEPS = 25  # physics steps (50 ms) after a reset, so contacts and servos are at rest


@dataclass(frozen=True)
class DoorEnvConfig:
    """``scene_seed`` picks the cabinet's size and look (the same as ``sim render --task open_door
    --seed S``); placement changes per episode."""

    embodiment: str = "panda"
    reward: str = "flow"
    scene_seed: int = 0
    policy_hz: float = 10.0
    horizon: int = 50
    controller: ControllerConfig = field(default_factory=ControllerConfig)

    def __post_init__(self) -> None:
        if self.embodiment not in EMBODIMENTS:
            raise InvalidInput(f"unknown embodiment '{self.embodiment}' (choose from {', '.join(EMBODIMENTS)})")
        if self.reward not in REWARDS:
            raise InvalidInput(f"unknown reward '{self.reward}' (choose from {', '.join(REWARDS)})")
        ticks = self.controller.tick_hz / self.policy_hz
        if abs(ticks - round(ticks)) > 1e-9 or ticks < 1:
            raise InvalidInput(f"the loop rate {self.controller.tick_hz} Hz must be a multiple of the policy rate "
                               f"{self.policy_hz} Hz")
        if not 1 <= self.horizon <= 10000:
            raise InvalidInput(f"horizon must be in 1..10000 policy steps, got {self.horizon}")

    @property
    def ticks_per_action(self) -> int:
        return int(round(self.controller.tick_hz / self.policy_hz))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_scene(embodiment: str, scene_seed: int) -> tuple[Any, Any, Any]:
    """(MjModel, MjData, task) of the door scene with ``embodiment``; for ``panda`` the very XML
    of ``sim.make_env("open_door", scene_seed)``."""
    import mujoco

    from dream2flow.sim.camera import default_camera
    from dream2flow.sim.env import draw_task
    from dream2flow.sim.scene import compose

    task, scene_rng = draw_task(DOOR_TASK, scene_seed)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, R_BASE_TCP_DES.reshape(9))
    xml, assets = compose(task, default_camera(), scene_rng, robot=embodiment, hand_quat_wxyz=quat)
    model = mujoco.MjModel.from_xml_string(xml, assets)
    return model, mujoco.MjData(model), task


class DoorEnv(gym.Env):
    """Gymnasium API (``reset(seed=, options={"door_pose": DoorPose})`` / ``step``); see the module
    docstring. ``reward_fn``: a ``FlowReward`` (for ``reward="flow"``) or None for object state."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: DoorEnvConfig | None = None, reward_fn: FlowReward | ObjectStateReward | None = None,
                 render_mode: str | None = None) -> None:
        import mujoco

        self.cfg = config or DoorEnvConfig()
        if self.cfg.reward == "flow" and not isinstance(reward_fn, FlowReward):
            raise InvalidInput("the flow reward needs a FlowReward (from a flow.npz made by 'dream2flow rl flow')")
        self.reward_fn = reward_fn if self.cfg.reward == "flow" else ObjectStateReward()
        self.render_mode = render_mode
        self.model, self.data, self.task = build_scene(self.cfg.embodiment, self.cfg.scene_seed)
        self.door = DoorSim(self.model, self.task)
        self.dt_policy = 1.0 / self.cfg.policy_hz
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        ticks = self.cfg.ticks_per_action
        if self.cfg.embodiment == "panda":
            from dream2flow.sim import panda_model
            from dream2flow.sim.robot import MujocoRobotBackend

            self.backend = MujocoRobotBackend(self)
            self.backend.connect()
            self.embodiment: PandaArm | FloatingHand = PandaArm(self.backend, ticks_per_action=ticks,
                                                                 controller=self.cfg.controller)
            self._arm_qadr = self.backend._qadr
            self._finger_qadr = self.backend._finger_qadr
            self._grip_act = self.backend._grip_act
            q_guess = np.array(self.embodiment.limits.q_ready)
            q_guess[6] = -np.pi / 4  # the held orientation: fingers along world x
            self._q_start = solve_ik(np.array(START_TCP_M), q_guess)
            self._finger_open = panda_model.FINGER_MAX_M
        else:
            self.backend = None
            self.embodiment = FloatingHand(self.model, self.data, ticks_per_action=ticks, controller=self.cfg.controller)
        self._renderer: Any = None
        self._mj = mujoco
        self.t = 0
        self.pose = self.door.nominal
        self.violation: str | None = None
        self._tcp_prev = np.zeros(3)

    # --- gymnasium ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        mj = self._mj
        rng = self.np_random
        pose = (options or {}).get("door_pose")
        self.pose = pose if isinstance(pose, DoorPose) else sample_door_pose(rng)
        start = np.array(START_TCP_M) + rng.uniform(-START_NOISE_M, START_NOISE_M, size=3)
        m, d = self.model, self.data
        mj.mj_resetData(m, d)
        self.door.place(self.pose)
        if self.cfg.embodiment == "panda":
            from dream2flow.sim import panda_model

            q = solve_ik(start, self._q_start)
            d.qpos[self._arm_qadr] = q
            d.ctrl[:7] = q
            d.qpos[self._finger_qadr] = self._finger_open
            d.ctrl[self._grip_act] = panda_model.FINGER_MAX_M
        else:
            from dream2flow.sim import panda_model

            self.embodiment.set_tcp(start)
            d.qpos[self.embodiment.finger_qadr] = panda_model.FINGER_MAX_M
            d.ctrl[self.embodiment.grip_act] = panda_model.FINGER_MAX_M
        mj.mj_forward(m, d)
        for _ in range(SETTLE_STEPS):
            mj.mj_step(m, d)
        d.time = 0.0
        if self.backend is not None:
            self.backend._sync_from_state()
        self.embodiment.start()
        self.t = 0
        self.violation = None
        tcp = self.embodiment.tcp()
        self._tcp_prev = tcp
        obs = observation(tcp, tcp, self.dt_policy, self.embodiment.gripper_width, self.door.read(d))
        return obs, {"door_pose": self.pose.to_dict()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        violation = self.embodiment.apply(np.asarray(action, dtype=np.float64))
        door = self.door.read(self.data)
        tcp = self.embodiment.tcp()
        obs = observation(tcp, self._tcp_prev, self.dt_policy, self.embodiment.gripper_width, door)
        self._tcp_prev = tcp
        reward, terms = self.reward_fn(tcp, door)
        self.t += 1
        self.violation = violation
        terminated = violation is not None
        truncated = self.t >= self.cfg.horizon and not terminated
        info = {"door_angle_deg": float(np.rad2deg(door.angle_rad)), "violation": violation,
                "success": bool(door.angle_rad >= self.door.success_rad and violation is None), **terms}
        return obs, float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from dream2flow.sim.camera import CAMERA_NAME

        if self._renderer is None:
            self._renderer = self._mj.Renderer(self.model, 480, 640)
        self._renderer.update_scene(self.data, camera=CAMERA_NAME)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # --- helpers -------------------------------------------------------------------------------
    def door_state(self) -> DoorState:
        return self.door.read(self.data)

    @property
    def success_deg(self) -> float:
        return float(np.rad2deg(self.door.success_rad))
