"""Rewards for door opening: the paper's 3D-object-flow reward and the simulator's object-state
reward it is compared with.

Flow reward (Dream2Flow, "3D object flow as a reward")::

    r = reach + t*/t_end
    reach = 1 - tanh(REACH_SCALE · |p_tcp - mean_i p_i(now)|)
    t*    = argmin_t  mean_i |P_t,i - p_i(now)|      (the flow step whose particles are closest)
    t_end = the last step of the object's motion in the flow

``P`` [T,n,3] is a 3D object flow extracted from a generated video (``flow.npz``), the door's
current particles ``p_i(now)`` are the flow's frame-0 points moved rigidly with the door's
simulated pose -- the standard way the paper computes object particles in simulation (the
simulator knows the door's pose; a tracker is not run every step). The flow was made for the
cabinet where the video's door stood (``meta["rl_door"]``); every episode places the cabinet
elsewhere, so the flow is carried along with the cabinet (it describes how the door moves
*relative to its cabinet*): everything is compared in the cabinet's frame. Points are weighted by
the flow's visibility per step; points never seen in frame 0 are dropped.

Object-state reward (the simulator's privileged state, as robosuite's Door)::

    r = 1 - tanh(REACH_SCALE · |p_tcp - p_handle|) + min(theta / OPEN_GOAL_RAD, 1)

Both are in [0, 2] per step; they differ only in where they look (particles from a video vs the
handle and the hinge angle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dream2flow.errors import InvalidInput
from dream2flow.rl.door import DoorState
from dream2flow.types import ObjectFlow

REWARDS: tuple[str, ...] = ("flow", "object_state")
REACH_SCALE = 5.0           # 1/m: reach term 0.5 at 11 cm, 0.05 at 37 cm
OPEN_GOAL_RAD = float(np.deg2rad(60.0))  # object-state reward saturates here (the video's nominal angle)
T_END_REMAINING = 0.05      # t_end: first step with <= 5% of the total motion still to go


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


class ObjectStateReward:
    name = "object_state"

    def __call__(self, tcp: np.ndarray, door: DoorState) -> tuple[float, dict[str, float]]:
        reach = 1.0 - np.tanh(REACH_SCALE * float(np.linalg.norm(tcp - door.handle_m)))
        progress = min(max(door.angle_rad, 0.0) / OPEN_GOAL_RAD, 1.0)
        return reach + progress, {"reach": reach, "progress": progress}


class FlowReward:
    """The flow reward from an ``ObjectFlow`` whose ``meta["rl_door"]`` says where the video's
    cabinet and door (frame 0) stood (``T_base_cab``, ``T_base_door``: 4x4 lists)."""

    name = "flow"

    def __init__(self, flow: ObjectFlow) -> None:
        door_meta = flow.meta.get("rl_door")
        if not isinstance(door_meta, dict) or "T_base_cab" not in door_meta or "T_base_door" not in door_meta:
            raise InvalidInput("the flow has no meta['rl_door'] with T_base_cab and T_base_door: make it with "
                               "'dream2flow rl flow' (it records where the video's door stood)")
        P = np.asarray(flow.points_base, dtype=np.float64)
        vis = np.asarray(flow.visible, dtype=bool)
        keep = vis[0] & np.isfinite(P).all(axis=(0, 2))
        if keep.sum() < 10:
            raise InvalidInput(f"the flow has only {int(keep.sum())} points visible in frame 0 (need 10)")
        P, vis = P[:, keep], vis[:, keep]
        T_base_cab0 = np.asarray(door_meta["T_base_cab"], dtype=np.float64)
        T_base_door0 = np.asarray(door_meta["T_base_door"], dtype=np.float64)
        T_cab_base = _inv(T_base_cab0)
        self.P_cab = P @ T_cab_base[:3, :3].T + T_cab_base[:3, 3]           # [T,n,3] flow in the cabinet frame
        T_door_base = _inv(T_base_door0)
        self.p0_door = P[0] @ T_door_base[:3, :3].T + T_door_base[:3, 3]    # [n,3] frame-0 points on the door
        w = vis.astype(np.float64)
        w[w.sum(axis=1) == 0] = 1.0                                         # a step with nothing visible: all
        self.w = w / w.sum(axis=1, keepdims=True)                           # [T,n]
        remaining = np.linalg.norm(self.P_cab - self.P_cab[-1], axis=2).mean(axis=1)  # [T]
        total = float(remaining[0])
        if total < 0.01:
            raise InvalidInput(f"the flow's object moves only {100 * total:.1f} cm: no motion to follow")
        self.t_end = max(1, int(np.argmax(remaining <= T_END_REMAINING * total)))
        self.num_points = int(keep.sum())
        self.meta: dict[str, Any] = {"t_end": self.t_end, "num_frames": int(P.shape[0]), "num_points": self.num_points,
                                     "motion_m": total, "inputs": flow.meta.get("inputs", "unknown")}

    def particles(self, door: DoorState) -> np.ndarray:
        """The door's current particles [n,3] (base frame): frame-0 points moved with the door."""
        T = door.T_base_door
        return self.p0_door @ T[:3, :3].T + T[:3, 3]

    def t_star(self, door: DoorState) -> int:
        T_cab_door = _inv(door.T_base_cab) @ door.T_base_door
        cur = self.p0_door @ T_cab_door[:3, :3].T + T_cab_door[:3, 3]       # [n,3] in the cabinet frame
        d = np.sqrt(((self.P_cab - cur[None]) ** 2).sum(axis=2))             # [T,n]
        return int(np.argmin((d * self.w).sum(axis=1)))

    def __call__(self, tcp: np.ndarray, door: DoorState) -> tuple[float, dict[str, float]]:
        mean = self.particles(door).mean(axis=0)
        reach = 1.0 - np.tanh(REACH_SCALE * float(np.linalg.norm(tcp - mean)))
        t_star = self.t_star(door)
        progress = min(t_star, self.t_end) / self.t_end
        return reach + progress, {"reach": reach, "progress": progress, "t_star": float(t_star)}


def make_reward(kind: str, flow: ObjectFlow | str | Path | None = None) -> ObjectStateReward | FlowReward:
    """``flow`` (needs ``flow``: an ObjectFlow or a flow.npz path) or ``object_state``."""
    if kind == "object_state":
        return ObjectStateReward()
    if kind == "flow":
        if flow is None:
            raise InvalidInput("the flow reward needs a flow (flow.npz)")
        if not isinstance(flow, ObjectFlow):
            p = Path(flow)
            if not p.is_file():
                raise InvalidInput(f"flow file not found: {p}")
            flow = ObjectFlow.load(p)
        return FlowReward(flow)
    raise InvalidInput(f"unknown reward '{kind}' (choose from {', '.join(REWARDS)})")
