"""The policy's observation: one function for training (``door_env``) and deployment
(``runner``), so the shipped policy sees exactly what it was trained on.

Object-state observations as in robosuite's Door (the reward is what differs between the flow
and object-state policies, not what the policy sees): TCP position and velocity, gripper
opening, handle position, handle relative to the TCP, hinge angle and angular velocity, and
the cabinet's yaw (cos, sin). Base frame, m, m/s, rad, rad/s.
"""

from __future__ import annotations

import numpy as np

from dream2flow.rl.door import DoorState

OBS_NAMES: tuple[str, ...] = (
    "tcp_x", "tcp_y", "tcp_z", "tcp_vx", "tcp_vy", "tcp_vz", "gripper_width",
    "handle_x", "handle_y", "handle_z", "handle_rel_x", "handle_rel_y", "handle_rel_z",
    "door_angle", "door_velocity", "cabinet_cos_yaw", "cabinet_sin_yaw",
)
OBS_DIM = len(OBS_NAMES)


def observation(tcp: np.ndarray, tcp_prev: np.ndarray, dt_s: float, gripper_width_m: float,
                door: DoorState) -> np.ndarray:
    """-> float32 [OBS_DIM] (names in ``OBS_NAMES``). ``tcp_prev``: the TCP one policy step ago."""
    tcp = np.asarray(tcp, dtype=np.float64)
    R = door.T_base_cab
    return np.concatenate([
        tcp, (tcp - np.asarray(tcp_prev, dtype=np.float64)) / dt_s, [gripper_width_m],
        door.handle_m, door.handle_m - tcp, [door.angle_rad, door.velocity_radps], [R[0, 0], R[1, 0]],
    ]).astype(np.float32)
