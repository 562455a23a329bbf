"""``push_t``: the T-block on the table, for ``SimEnv`` (the scene, the video's scripted path,
the success check) plus a floating pusher used only for collecting training data.

The floating pusher is a mocap body carrying copies of the closed Panda fingers' collision
boxes (``panda_model._finger_pads``, opening 0), placed as they are around the TCP when the
hand points straight down in the ready pose's orientation (TCP x = base x, y = -base y). So
a push by the floating pusher and the same push by the Panda (``execute.py``) touch the block
with the same shape; it is parked under the floor whenever it is not collecting data.

The video path: the block slides from its initial pose to the goal while turning, along a
slightly bowed line, ending within a few millimetres / a degree of the goal (a generated video
is not exact); ``video_path`` draws those details from the video seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dream2flow.pusht import geometry as G
from dream2flow.sim.tasks.base import SceneParts, SuccessResult, Task, fmt, quat_yaw

BLOCK_BODY = "tblock"
BLOCK_JOINT = "tblock_free"
PUSHER_BODY = "pusher"
PUSHER_PARK = np.array([0.0, 0.8, -3.0])

# Closed-finger collision boxes relative to the TCP, in the base frame for the push orientation
# (centre offset, half sizes), from panda_model._finger_pads() with the fingers touching.
PUSHER_BOXES: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = (
    ((0.0, -0.007, 0.0005), (0.009, 0.007, 0.0095)), ((0.0, 0.007, 0.0005), (0.009, 0.007, 0.0095)),
    ((0.0, -0.017, 0.027), (0.0105, 0.0085, 0.017)), ((0.0, 0.017, 0.027), (0.0105, 0.0085, 0.017)),
)
PUSHER_HALF_XY = np.array([0.009, 0.014])  # footprint of the finger tips (m), base x / y


class PushT(Task):
    name = "push_t"
    instruction = "Push the T-shaped block to the middle of the table."
    object_prompt = "blue T-shaped block"
    object_bodies = (BLOCK_BODY,)

    def __init__(self, rng: np.random.Generator, initial_pose: np.ndarray | None = None) -> None:
        super().__init__(rng)
        self.pose0 = np.asarray(initial_pose if initial_pose is not None else G.initial_state(0), dtype=np.float64)

    def build(self, parts: SceneParts) -> None:
        rgba = fmt(G.RGBA)
        geom = (f'type="box" rgba="{rgba}" friction="{G.FRICTION} 0.005 0.0001" priority="2" condim="3" '
                f'group="2"')
        vol = 8 * (np.prod(G.BAR_HALF) + np.prod(G.STEM_HALF))
        dens = G.MASS_KG / vol
        x, y, yaw = self.pose0
        parts.body_xml.append(
            f'<body name="{BLOCK_BODY}" pos="{fmt([x, y, G.BAR_HALF[2]])}" quat="{fmt(quat_yaw(yaw))}">\n'
            f'  <freejoint name="{BLOCK_JOINT}"/>\n'
            f'  <geom name="tblock_bar" pos="{fmt(G.BAR_CENTER)}" size="{fmt(G.BAR_HALF)}" density="{dens:.6g}" {geom}/>\n'
            f'  <geom name="tblock_stem" pos="{fmt(G.STEM_CENTER)}" size="{fmt(G.STEM_HALF)}" density="{dens:.6g}" {geom}/>\n'
            f'</body>')
        boxes = "\n".join(f'  <geom class="panda_pad" pos="{fmt(c)}" size="{fmt(h)}" group="3"/>' for c, h in PUSHER_BOXES)
        parts.body_xml.append(f'<body name="{PUSHER_BODY}" mocap="true" pos="{fmt(PUSHER_PARK)}">\n{boxes}\n</body>')
        self.info = {"block_pose0": self.pose0.tolist(), "goal": G.GOAL.tolist(), "block_mass_kg": G.MASS_KG,
                     "success": f"centroid within {G.SUCCESS_POS_M * 100:.0f} cm of the goal and yaw within "
                                f"{np.degrees(G.SUCCESS_YAW_RAD):.0f} deg"}

    # --- state -----------------------------------------------------------------------------------
    @staticmethod
    def qadr(model) -> int:  # noqa: ANN001
        import mujoco

        return int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, BLOCK_JOINT)])

    @classmethod
    def block_pose(cls, model, data) -> np.ndarray:  # noqa: ANN001
        """(x, y, yaw) of the block now (its body frame; yaw about base z)."""
        a = cls.qadr(model)
        w, qx, qy, qz = data.qpos[a + 3:a + 7]
        yaw = np.arctan2(2 * (w * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
        return np.array([data.qpos[a], data.qpos[a + 1], yaw])

    @classmethod
    def set_block_pose(cls, model, data, pose: np.ndarray) -> None:  # noqa: ANN001
        """Put the block at ``pose`` (x, y, yaw) resting on the table, at rest."""
        a = cls.qadr(model)
        data.qpos[a:a + 3] = [pose[0], pose[1], G.BAR_HALF[2]]
        data.qpos[a + 3:a + 7] = quat_yaw(float(pose[2]))
        import mujoco

        d0 = int(model.jnt_dofadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, BLOCK_JOINT)])
        data.qvel[d0:d0 + 6] = 0.0

    # --- scripted path (video) -------------------------------------------------------------------
    def video_path(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"end": G.GOAL + np.array([*rng.normal(0, 0.003, 2), rng.normal(0, np.radians(1.0))]),
                "bow_m": float(rng.uniform(-0.02, 0.02))}

    def pose_at(self, s: float, path: dict[str, Any] | None = None) -> np.ndarray:
        path = path or {"end": G.GOAL, "bow_m": 0.0}
        s = float(np.clip(s, 0.0, 1.0))
        end = np.asarray(path["end"], dtype=np.float64)
        d = end[:2] - self.pose0[:2]
        n = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
        xy = self.pose0[:2] + s * d + n * float(path["bow_m"]) * np.sin(np.pi * s)
        yaw = self.pose0[2] + s * float(G.wrap(end[2] - self.pose0[2]))
        return np.array([xy[0], xy[1], yaw])

    def set_progress(self, model, data, s: float, path: dict[str, Any] | None = None) -> None:  # noqa: ANN001
        self.set_block_pose(model, data, self.pose_at(s, path))

    def failure_state(self, model, data) -> None:  # noqa: ANN001
        """Half-way there: moved, but neither close enough nor turned enough."""
        self.set_block_pose(model, data, self.pose_at(0.5))

    def success(self, model, data) -> SuccessResult:  # noqa: ANN001
        pose = self.block_pose(model, data)
        dp, dyaw = G.pose_error(pose)
        ok = dp <= G.SUCCESS_POS_M and dyaw <= G.SUCCESS_YAW_RAD
        reason = (f"block {dp * 100:.1f} cm and {np.degrees(dyaw):.1f} deg from the goal "
                  f"(needs <= {G.SUCCESS_POS_M * 100:.0f} cm and <= {np.degrees(G.SUCCESS_YAW_RAD):.0f} deg)")
        return SuccessResult(bool(ok), dp, reason)
