"""``bread_in_bowl``: pick up a piece of bread and put it in a bowl.

The piece is a free rigid box (4.4-6 cm long, 3.6-4.4 cm wide, 2.8-3.8 cm tall, 60 g) lying
on the table; the bowl is fixed to the table (flat bottom 1 cm thick, 20 flared wall segments)
about 15-27 cm away. A top-down grasp across the piece's width fits the Panda hand (8 cm).
Success: the piece's centre is inside the bowl (horizontal distance to the bowl's axis below
the wall's mid-height radius) and below the rim. ``value`` is that horizontal distance (m); the
reason says "bread not moved" while the piece is within 1 cm of where it lay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dream2flow.sim import textures
from dream2flow.sim.tasks.base import SceneParts, SuccessResult, Task, box, fmt, quat_yaw
from dream2flow.sim.tasks.bowl import BOTTOM_T, N_SEGMENTS, WALL_T, bowl_body_xml


def _free_qadr(model, name: str) -> int:  # noqa: ANN001
    import mujoco

    return int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)])


class BreadInBowl(Task):
    name = "bread_in_bowl"
    instruction = "Put the bread in the bowl."
    object_prompt = "bread"
    object_bodies = ("bread",)
    thumb_body = "bread"

    N_SEGMENTS = N_SEGMENTS
    BOTTOM_T = BOTTOM_T  # bowl bottom thickness (m)
    WALL_T = WALL_T

    def build(self, parts: SceneParts) -> None:
        rng = self.rng
        self.half = np.array([rng.uniform(0.022, 0.030), rng.uniform(0.018, 0.022), rng.uniform(0.014, 0.019)])
        self.p0 = np.array([0.46 + rng.uniform(-0.03, 0.03), 0.12 + rng.uniform(-0.03, 0.03), self.half[2]])
        self.yaw0 = float(rng.uniform(-0.4, 0.4))
        self.bowl_xy = np.array([0.50 + rng.uniform(-0.03, 0.03), -0.09 + rng.uniform(-0.03, 0.03)])
        self.r_in = float(rng.uniform(0.065, 0.08))  # inner radius at the bottom
        self.wall_h = float(rng.uniform(0.045, 0.06))  # rim height above the table
        self.flare = float(np.deg2rad(rng.uniform(18, 28)))
        self.thumb_local = np.array([0.0, 0.0, self.half[2]])  # top centre: where fingers would pinch

        crust = textures.random_colour(rng, (0.06, 0.11), (0.45, 0.7), (0.62, 0.85))
        crumb = textures.random_colour(rng, (0.10, 0.14), (0.15, 0.3), (0.85, 0.97))
        cells = int(round(2 * self.half.max() / 0.006))
        mat_bread = parts.material("bread_mat", textures.speckle(rng, crust, cells=cells, size=96, contrast=0.55,
                                                                 alt_rgb=crumb))
        bowl_rgb = textures.random_colour(rng, (0.0, 1.0), (0.25, 0.6), (0.45, 0.8))
        mat_bowl = parts.material("bowl_mat", textures.speckle(rng, bowl_rgb, cells=10, size=64, contrast=0.25,
                                                               alt_rgb=tuple(0.8 * c for c in bowl_rgb)))

        q0 = quat_yaw(self.yaw0)
        bread_geom = box([0, 0, 0], self.half, mat_bread, name="bread_geom", extra='mass="0.06"')
        parts.body_xml.append(
            f'<body name="bread" pos="{fmt(self.p0)}" quat="{fmt(q0)}">\n'
            f'  <freejoint name="bread_free"/>\n'
            f'  {bread_geom}\n'
            f'</body>')
        parts.body_xml.append(bowl_body_xml(self.bowl_xy, self.r_in, self.wall_h, self.flare, mat_bowl))
        self.success_radius = self.r_in + 0.5 * self.wall_h * np.tan(self.flare)
        self.info = {
            "bread_pos": self.p0.tolist(), "bread_yaw_rad": self.yaw0, "bread_size_m": (2 * self.half).tolist(),
            "bread_mass_kg": 0.06, "bowl_center": [*self.bowl_xy.tolist(), 0.0], "bowl_inner_radius_m": self.r_in,
            "bowl_rim_height_m": self.wall_h, "bowl_bottom_top_z_m": self.BOTTOM_T,
            "success": f"bread centre within {self.success_radius:.3f} m of the bowl axis and below z={self.wall_h:.3f} m",
        }

    # --- scripted path -------------------------------------------------------------------------
    def video_path(self, rng: np.random.Generator) -> dict[str, Any]:
        off = rng.uniform(-0.012, 0.012, size=2)
        return {"end_xy": self.bowl_xy + off, "lift_m": float(rng.uniform(0.10, 0.14)),
                "dyaw": float(rng.uniform(-0.35, 0.35))}

    def pose_at(self, s: float, path: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        path = path or {"end_xy": self.bowl_xy, "lift_m": 0.12, "dyaw": 0.0}
        s = float(np.clip(s, 0.0, 1.0))
        z1 = self.BOTTOM_T + self.half[2]
        xy = self.p0[:2] + (np.asarray(path["end_xy"]) - self.p0[:2]) * s
        z = self.p0[2] + (z1 - self.p0[2]) * s + path["lift_m"] * np.sin(np.pi * s) ** 0.8
        return np.array([*xy, z]), quat_yaw(self.yaw0 + path["dyaw"] * s)

    def set_progress(self, model, data, s: float, path: dict[str, Any] | None = None) -> None:  # noqa: ANN001
        pos, quat = self.pose_at(s, path)
        a = _free_qadr(model, "bread_free")
        data.qpos[a:a + 3] = pos
        data.qpos[a + 3:a + 7] = quat
        data.qvel[:] = 0.0

    def failure_state(self, model, data) -> None:  # noqa: ANN001
        """Dropped beside the bowl, on the table, on the side it came from."""
        d = self.p0[:2] - self.bowl_xy
        d /= np.linalg.norm(d)
        xy = self.bowl_xy + d * (self.r_in + self.wall_h * np.tan(self.flare) + 0.05)
        a = _free_qadr(model, "bread_free")
        data.qpos[a:a + 3] = [*xy, self.half[2]]
        data.qpos[a + 3:a + 7] = quat_yaw(self.yaw0)
        data.qvel[:] = 0.0

    def success(self, model, data) -> SuccessResult:  # noqa: ANN001
        a = _free_qadr(model, "bread_free")
        p = np.array(data.qpos[a:a + 3])
        d = float(np.linalg.norm(p[:2] - self.bowl_xy))
        inside = d < self.success_radius
        low = p[2] < self.wall_h
        ok = bool(inside and low)
        moved = float(np.linalg.norm(p - self.p0))
        if ok:
            reason = f"bread in the bowl ({d * 100:.1f} cm from its centre, z={p[2]:.3f} m)"
        elif moved < 0.01:
            reason = f"bread not moved ({moved * 100:.1f} cm from where it lay; {d * 100:.1f} cm from the bowl centre)"
        elif not inside:
            reason = f"bread is {d * 100:.1f} cm from the bowl centre (needs < {self.success_radius * 100:.1f} cm)"
        else:
            reason = f"bread is above the bowl's rim (z={p[2]:.3f} m, rim {self.wall_h:.3f} m)"
        return SuccessResult(ok, d, reason)
