"""The door the RL policies open: the ``open_door`` sim task (the ``open_oven`` cabinet and
revolute door -- vertical hinge, success at 35 degrees -- with a long pull bar standing 9 cm off
the door's top edge, see ``sim.tasks.articulated.OpenDoor``), in a MuJoCo scene with the Panda
or the floating Franka Hand, re-placed at a random position and yaw every episode.

Why a sim task: the door then has the project's video generator, success check and generic sim
tests; the RL scene and the flow's video come from the same ``(task, scene seed)`` so the door
in the flow and the door the policy pulls are the same.
Why re-placing instead of rebuilding: moving the static cabinet body (``model.body_pos/quat``)
costs nothing, while compiling a scene takes ~0.3 s; the door's size stays that of the scene
seed, its pose changes per episode.

Frames: ``T_base_cab`` is the cabinet body (origin on the table at the centre of its front plane,
x into the cabinet); the door body's origin is on the hinge line; the hinge angle ``theta`` (rad)
is 0 when closed, positive when the free edge swings towards the robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput

DOOR_TASK = "open_door"
CABINET_BODY = "oven"
DOOR_BODY = "oven_door"
HINGE_JOINT = "oven_hinge"

# Per-episode placement of the cabinet's front plane (base frame, m / rad): wider than the
# task's own draw (x 0.60-0.64, y ±0.05, yaw ±0.08) so that policies see many door positions.
DOOR_X_RANGE_M = (0.56, 0.68)
DOOR_Y_RANGE_M = (-0.12, 0.12)
DOOR_YAW_RANGE_RAD = (-0.25, 0.25)


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def pose_matrix(pos: np.ndarray, R: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = pos
    return T


@dataclass(frozen=True)
class DoorPose:
    """Where the cabinet stands: front-plane centre (x, y) on the table (m) and yaw (rad)."""

    x: float
    y: float
    yaw: float

    def to_dict(self) -> dict[str, float]:
        return {"x_m": self.x, "y_m": self.y, "yaw_rad": self.yaw}


def sample_door_pose(rng: np.random.Generator) -> DoorPose:
    """A random door placement (ranges above), from the episode's generator."""
    return DoorPose(float(rng.uniform(*DOOR_X_RANGE_M)), float(rng.uniform(*DOOR_Y_RANGE_M)),
                    float(rng.uniform(*DOOR_YAW_RANGE_RAD)))


@dataclass
class DoorState:
    """What the policy and the rewards know about the door right now (base frame, m, rad)."""

    T_base_cab: np.ndarray     # [4,4] cabinet pose
    T_base_door: np.ndarray    # [4,4] door body pose (hinge line origin)
    angle_rad: float
    velocity_radps: float
    handle_m: np.ndarray       # [3] centre of the handle bar


class DoorSim:
    """Reads and places the door in a compiled scene (``model``/``data`` of MuJoCo)."""

    def __init__(self, model: Any, task: Any) -> None:
        import mujoco

        self.model = model
        self.task = task
        self.cab_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, CABINET_BODY)
        self.door_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, DOOR_BODY)
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, HINGE_JOINT)
        if min(self.cab_id, self.door_id, jid) < 0:
            raise InvalidInput(f"the scene has no '{CABINET_BODY}'/'{DOOR_BODY}'/'{HINGE_JOINT}' (task {DOOR_TASK})")
        self.qadr = int(model.jnt_qposadr[jid])
        self.dadr = int(model.jnt_dofadr[jid])
        self.handle_local = np.asarray(task.thumb_local, dtype=np.float64)  # bar centre in the door frame
        self.success_rad = float(task.SUCCESS_RAD)
        self.door_in_cab = np.array(model.body_pos[self.door_id], dtype=np.float64)  # hinge bottom in the cabinet
        self.nominal = DoorPose(float(model.body_pos[self.cab_id][0]), float(model.body_pos[self.cab_id][1]),
                                float(2 * np.arctan2(model.body_quat[self.cab_id][3], model.body_quat[self.cab_id][0])))

    def place(self, pose: DoorPose) -> None:
        """Move the cabinet (and its door) to ``pose``; call before ``mj_forward``."""
        self.model.body_pos[self.cab_id] = (pose.x, pose.y, 0.0)
        self.model.body_quat[self.cab_id] = yaw_quat(pose.yaw)

    def set_angle(self, data: Any, angle_rad: float) -> None:
        data.qpos[self.qadr] = angle_rad
        data.qvel[self.dadr] = 0.0

    def read(self, data: Any) -> DoorState:
        T_cab = pose_matrix(np.array(data.xpos[self.cab_id]), np.array(data.xmat[self.cab_id]).reshape(3, 3))
        R_door = np.array(data.xmat[self.door_id]).reshape(3, 3)
        p_door = np.array(data.xpos[self.door_id])
        return DoorState(T_base_cab=T_cab, T_base_door=pose_matrix(p_door, R_door),
                         angle_rad=float(data.qpos[self.qadr]), velocity_radps=float(data.qvel[self.dadr]),
                         handle_m=R_door @ self.handle_local + p_door)

    def state_at(self, pose: DoorPose, angle_rad: float) -> DoorState:
        """The door state of a placement and angle without physics (kinematic: cabinet · hinge)."""
        T_cab = pose_matrix(np.array([pose.x, pose.y, 0.0]), _rz(pose.yaw))
        T_door = T_cab @ pose_matrix(self.door_in_cab, _rz(angle_rad))
        return DoorState(T_base_cab=T_cab, T_base_door=T_door, angle_rad=float(angle_rad), velocity_radps=0.0,
                         handle_m=T_door[:3, :3] @ self.handle_local + T_door[:3, 3])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
