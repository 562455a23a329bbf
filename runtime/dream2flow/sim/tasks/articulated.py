"""``open_drawer`` and ``open_oven``: articulated furniture facing the robot.

Both stand on the table in front of the robot with their front plane at x ~ 0.60-0.64 m, facing
-x (towards the base), yawed by up to ±0.08 rad. The handle is a horizontal square bar (2 cm x
2 cm section) on two posts with 5 cm of clearance behind it, mounted at the *top edge* of the
drawer front / door, so the Panda grasps it **from above** (TCP pointing down, fingers closing
along the pull direction, one finger between bar and front even at the full 8 cm opening; the
hand's body stays >= 2 cm above the furniture's top). Why from above: a Panda cannot point its
TCP horizontally forward at 0.2-0.3 m height within x = 0.3-0.6 m (joint 6/4 limits; checked by
sampling), while a top-down TCP reaches all of it. For the same reason the oven door is hinged
on a *vertical* axis (microwave style): following the handle's arc then only yaws a top-down
grasp, whereas a bottom hinge would tilt the hand towards a horizontal pose it cannot reach.
Joint friction and damping keep the drawer/door where the gripper leaves them.

Frames: the furniture body's origin is on the table at the centre of its front plane, x into
the furniture. The moving body's origin lies on the joint (drawer: front plane centre at the
drawer's height; door: bottom of the hinge line).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dream2flow.sim import textures
from dream2flow.sim.tasks.base import SceneParts, SuccessResult, Task, box, fmt, quat_yaw

HANDLE_BAR_HALF = 0.01  # the bar's half thickness (m): 2 cm x 2 cm section
HANDLE_STANDOFF = 0.05  # clearance between the front face and the back of the bar (m)
FRONT_T = 0.018  # thickness of fronts / door panel offsets


def _dim(rgb: tuple[float, float, float], k: float = 0.8) -> tuple[float, float, float]:
    return (rgb[0] * k, rgb[1] * k, rgb[2] * k)


def _joint(model, data, name: str) -> tuple[int, int]:  # noqa: ANN001
    import mujoco

    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    return int(model.jnt_qposadr[jid]), int(model.jnt_dofadr[jid])


def _handle(front_x: float, y: float, z: float, length: float, mat: str, prefix: str,
            standoff: float = HANDLE_STANDOFF) -> list[str]:
    """Bar along y centred at (front_x - standoff - half, y, z) plus two posts back to the face."""
    bar_x = front_x - standoff - HANDLE_BAR_HALF
    post_half_x = standoff / 2
    post_y = length / 2 - 0.012
    return [box([bar_x, y, z], [HANDLE_BAR_HALF, length / 2, HANDLE_BAR_HALF], mat, name=f"{prefix}_handle_bar"),
            box([front_x - post_half_x, y + post_y, z], [post_half_x, 0.006, 0.006], mat),
            box([front_x - post_half_x, y - post_y, z], [post_half_x, 0.006, 0.006], mat)]


class _Furniture(Task):
    """Shared placement and colours."""

    def _place(self) -> None:
        rng = self.rng
        self.front_x = 0.62 + rng.uniform(-0.02, 0.02)
        self.center_y = rng.uniform(-0.05, 0.05)
        self.yaw = float(rng.uniform(-0.08, 0.08))
        self.width = float(rng.uniform(0.40, 0.46))
        self.depth = 0.34
        self.height = float(rng.uniform(0.24, 0.30))

    def _to_world(self, p_local: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        return R @ np.asarray(p_local, float) + np.array([self.front_x, self.center_y, 0.0])

    def _carcass(self, mat: str, t: float = 0.015) -> list[str]:
        W, D, H = self.width, self.depth, self.height
        return [box([D / 2, W / 2 - t / 2, H / 2], [D / 2, t / 2, H / 2], mat),
                box([D / 2, -W / 2 + t / 2, H / 2], [D / 2, t / 2, H / 2], mat),
                box([D / 2, 0, H - t / 2], [D / 2, W / 2, t / 2], mat),
                box([D / 2, 0, t / 2], [D / 2, W / 2, t / 2], mat),
                box([D - t / 2, 0, H / 2], [t / 2, W / 2, H / 2], mat)]


class OpenDrawer(_Furniture):
    name = "open_drawer"
    instruction = "Open the drawer."
    object_prompt = "drawer"
    object_bodies = ("drawer",)
    thumb_body = "drawer"
    TRAVEL = 0.22  # joint range (m)
    SUCCESS_M = 0.10

    def build(self, parts: SceneParts) -> None:
        rng = self.rng
        self._place()
        W, D, H, t = self.width, self.depth, self.height, 0.015
        self.front_h = 0.11
        front_top = H + 0.002  # the front overlays the top panel's edge
        front_bot = H - t - self.front_h
        self.drawer_z = 0.5 * (front_top + front_bot)
        rail_z = front_bot - t / 2
        bar_z = front_top - 0.002 - HANDLE_BAR_HALF - self.drawer_z  # in the drawer frame: bar flush with the top
        handle_len = 0.14
        self.thumb_local = np.array([-FRONT_T - HANDLE_STANDOFF - HANDLE_BAR_HALF, 0.0, bar_z])

        body_rgb = textures.random_colour(rng, (0.0, 1.0), (0.05, 0.3), (0.55, 0.9))
        front_rgb = textures.random_colour(rng, (0.0, 1.0), (0.45, 0.8), (0.45, 0.85))
        metal = textures.random_colour(rng, (0.0, 1.0), (0.0, 0.15), (0.25, 0.45))
        mat_body = parts.material("cabinet_mat", textures.speckle(rng, body_rgb, cells=12, size=96, contrast=0.25,
                                                                  alt_rgb=_dim(body_rgb)))
        mat_front = parts.material("drawer_front_mat", textures.speckle(rng, front_rgb, cells=20, size=128,
                                                                        contrast=0.6))
        mat_box = parts.material("drawer_box_mat", textures.speckle(rng, front_rgb, cells=12, size=96, contrast=0.4))
        mat_handle = parts.material("drawer_handle_mat", textures.speckle(rng, metal, cells=8, size=64, contrast=0.8,
                                                                          alt_rgb=(0.85, 0.85, 0.85)))

        carcass = self._carcass(mat_body, t)
        carcass.append(box([D / 2, 0, rail_z], [D / 2, W / 2 - t, t / 2], mat_body))  # rail under the drawer
        low_top = rail_z - t / 2 - 0.003
        carcass.append(box([-FRONT_T / 2, 0, low_top / 2 + 0.002], [FRONT_T / 2, W / 2 - 0.003, low_top / 2 - 0.002],
                           mat_body))  # lower (static) front

        fh = 0.5 * (front_top - front_bot)
        dd = D - 0.05  # drawer box depth
        bw = W / 2 - t - 0.006  # drawer box half width
        bh = fh - 0.02
        drawer = [box([-FRONT_T / 2, 0, 0], [FRONT_T / 2, W / 2 - 0.003, fh], mat_front, name="drawer_front"),
                  box([dd / 2, 0, -bh], [dd / 2, bw, 0.004], mat_box),
                  box([dd / 2, bw - 0.005, -0.01], [dd / 2, 0.005, bh - 0.01], mat_box),
                  box([dd / 2, -bw + 0.005, -0.01], [dd / 2, 0.005, bh - 0.01], mat_box),
                  box([dd - 0.005, 0, -0.01], [0.005, bw, bh - 0.01], mat_box)]
        drawer += _handle(-FRONT_T, 0.0, bar_z, handle_len, mat_handle, "drawer")
        ind = "\n    "
        parts.body_xml.append(
            f'<body name="cabinet" pos="{fmt([self.front_x, self.center_y, 0])}" quat="{fmt(quat_yaw(self.yaw))}">\n  '
            + "\n  ".join(carcass)
            + f'\n  <body name="drawer" pos="0 0 {self.drawer_z:.6g}">'
            f'{ind}<joint name="drawer_slide" type="slide" axis="-1 0 0" range="0 {self.TRAVEL}" limited="true" '
            f'damping="10" frictionloss="3"/>'
            f'{ind}<inertial pos="{dd / 2 - 0.03:.4g} 0 0" mass="0.9" diaginertia="0.01 0.012 0.015"/>'
            + ind + ind.join(drawer) + "\n  </body>\n</body>")
        parts.contact_xml.append('<exclude body1="cabinet" body2="drawer"/>')

        handle_w = self._to_world(self.thumb_local + [0, 0, self.drawer_z])
        pull = self._to_world([-1.0, 0, 0]) - self._to_world([0, 0, 0])
        self.info = {
            "cabinet_front_center": self._to_world([0, 0, 0]).tolist(), "cabinet_yaw_rad": self.yaw,
            "cabinet_size_m": [D, W, H], "drawer_front_center": self._to_world([-FRONT_T / 2, 0, self.drawer_z]).tolist(),
            "handle_center": handle_w.tolist(), "handle_bar_length_m": handle_len,
            "handle_bar_section_m": 2 * HANDLE_BAR_HALF, "handle_clearance_m": HANDLE_STANDOFF,
            "handle_grasp": "from above: TCP z down, fingers closing along the pull direction",
            "pull_direction": pull.tolist(), "joint": "drawer_slide (prismatic)", "travel_m": self.TRAVEL,
            "success": f"drawer opened >= {self.SUCCESS_M} m",
        }

    def video_path(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"open_m": float(rng.uniform(0.17, 0.20))}

    def set_progress(self, model, data, s: float, path: dict[str, Any] | None = None) -> None:  # noqa: ANN001
        qa, da = _joint(model, data, "drawer_slide")
        data.qpos[qa] = float(np.clip(s, 0, 1)) * (path or {"open_m": 0.19})["open_m"]
        data.qvel[da] = 0.0

    def failure_state(self, model, data) -> None:  # noqa: ANN001
        qa, da = _joint(model, data, "drawer_slide")
        data.qpos[qa] = 0.04
        data.qvel[da] = 0.0

    def success(self, model, data) -> SuccessResult:  # noqa: ANN001
        qa, _ = _joint(model, data, "drawer_slide")
        q = float(data.qpos[qa])
        ok = q >= self.SUCCESS_M
        return SuccessResult(ok, q, f"drawer open {q * 100:.1f} cm (needs >= {self.SUCCESS_M * 100:.0f} cm)")


class OpenOven(_Furniture):
    """A microwave-style oven: the door (hinged on the robot's right, -y side, vertical axis)
    swings its free edge towards the robot, turning its outer face towards the camera; the
    control strip with knobs is on the left."""

    name = "open_oven"
    instruction = "Open the oven."
    object_prompt = "oven door"
    object_bodies = ("oven_door",)
    thumb_body = "oven_door"
    PLINTH_Z = 0.04  # door bottom above the table
    DOOR_T = 0.025
    STRIP_W = 0.09  # control strip width (left, +y side)
    SUCCESS_RAD = float(np.deg2rad(35.0))
    RANGE_RAD = 1.9
    HANDLE_STANDOFF_M = HANDLE_STANDOFF

    def _handle_layout(self) -> tuple[float, float]:
        """(bar length, bar centre's distance from the hinge) in m: near the free edge."""
        return 0.11, self.door_w - 0.075

    def build(self, parts: SceneParts) -> None:
        rng = self.rng
        self._place()
        W, D, H, t = self.width, self.depth, self.height, 0.015
        self.door_w = W - self.STRIP_W - 0.006
        self.door_h = H + 0.002 - self.PLINTH_Z
        self.hinge_y = -W / 2 + 0.003
        bar_z = self.door_h - 0.002 - HANDLE_BAR_HALF
        handle_len, handle_y = self._handle_layout()  # in the door frame (origin on the hinge)
        standoff = self.HANDLE_STANDOFF_M
        self.thumb_local = np.array([-self.DOOR_T - standoff - HANDLE_BAR_HALF, handle_y, bar_z])

        body_rgb = textures.random_colour(rng, (0.0, 1.0), (0.0, 0.2), (0.55, 0.92))
        door_rgb = textures.random_colour(rng, (0.0, 1.0), (0.35, 0.75), (0.4, 0.8))
        metal = textures.random_colour(rng, (0.0, 1.0), (0.0, 0.15), (0.2, 0.4))
        mat_body = parts.material("oven_mat", textures.speckle(rng, body_rgb, cells=12, size=96, contrast=0.25,
                                                              alt_rgb=_dim(body_rgb)))
        mat_inner = parts.material("oven_inner_mat", textures.speckle(rng, (0.15, 0.15, 0.16), cells=10, size=64,
                                                                      contrast=0.4))
        mat_door = parts.material("oven_door_mat", textures.speckle(rng, door_rgb, cells=22, size=128, contrast=0.6))
        mat_glass = parts.material("oven_glass_mat", textures.speckle(rng, (0.12, 0.13, 0.16), cells=14, size=64,
                                                                      contrast=0.9, alt_rgb=(0.5, 0.55, 0.6)))
        mat_handle = parts.material("oven_handle_mat", textures.speckle(rng, metal, cells=10, size=64, contrast=0.8,
                                                                        alt_rgb=(0.85, 0.85, 0.85)))

        body = self._carcass(mat_body, t)
        strip_c = W / 2 - self.STRIP_W / 2
        body.append(box([-0.004, strip_c, H / 2 + 0.001], [0.004, self.STRIP_W / 2, H / 2 + 0.001], mat_body))
        body.append(box([-0.004, 0, self.PLINTH_Z / 2], [0.004, W / 2, self.PLINTH_Z / 2], mat_body))  # plinth
        body.append(box([D - t - 0.002, 0, H / 2], [0.002, W / 2 - t, H / 2 - t], mat_inner,
                        extra='contype="0" conaffinity="0"'))  # dark inside
        for k in (0.25, 0.5, 0.75):  # knobs on the control strip (visual only)
            body.append(f'<geom type="cylinder" pos="-0.016 {strip_c:.4g} {self.PLINTH_Z + k * (H - self.PLINTH_Z):.4g}" '
                        f'size="0.014 0.008" quat="0.7071068 0 0.7071068 0" rgba="0.1 0.1 0.1 1" '
                        f'contype="0" conaffinity="0"/>')

        dw, dh = self.door_w, self.door_h
        door = [box([-self.DOOR_T / 2, dw / 2, dh / 2], [self.DOOR_T / 2, dw / 2, dh / 2], mat_door,
                    name="oven_door_panel"),
                box([-self.DOOR_T - 0.001, dw / 2 - 0.005, 0.5 * (0.035 + dh - 0.06)],
                    [0.001, dw / 2 - 0.05, 0.5 * (dh - 0.06 - 0.035)], mat_glass, extra='contype="0" conaffinity="0"')]
        door += _handle(-self.DOOR_T, handle_y, bar_z, handle_len, mat_handle, "oven", standoff)
        ind = "\n    "
        parts.body_xml.append(
            f'<body name="oven" pos="{fmt([self.front_x, self.center_y, 0])}" quat="{fmt(quat_yaw(self.yaw))}">\n  '
            + "\n  ".join(body)
            + f'\n  <body name="oven_door" pos="0 {self.hinge_y:.6g} {self.PLINTH_Z}">'
            f'{ind}<joint name="oven_hinge" type="hinge" axis="0 0 1" range="0 {self.RANGE_RAD}" limited="true" '
            f'damping="0.3" frictionloss="0.5"/>'
            f'{ind}<inertial pos="-0.015 {dw / 2:.4g} {dh / 2:.4g}" mass="0.8" diaginertia="0.006 0.004 0.006"/>'
            + ind + ind.join(door) + "\n  </body>\n</body>")
        parts.contact_xml.append('<exclude body1="oven" body2="oven_door"/>')

        origin = np.array([0.0, self.hinge_y, self.PLINTH_Z])
        handle_w = self._to_world(self.thumb_local + origin)
        self.info = {
            "oven_front_center": self._to_world([0, 0, 0]).tolist(), "oven_yaw_rad": self.yaw, "oven_size_m": [D, W, H],
            "hinge_point": self._to_world(origin).tolist(), "hinge_axis": [0.0, 0.0, 1.0],
            "hinge_note": "vertical hinge on the -y side; positive angle swings the free edge towards the robot",
            "door_size_m": [dw, dh], "handle_center": handle_w.tolist(),
            "handle_radius_m": float(np.hypot(self.thumb_local[0], self.thumb_local[1])),
            "handle_bar_length_m": handle_len, "handle_bar_section_m": 2 * HANDLE_BAR_HALF,
            "handle_clearance_m": standoff,
            "handle_grasp": "from above: TCP z down, fingers closing across the bar; opening yaws the hand",
            "joint": "oven_hinge (revolute)", "range_rad": self.RANGE_RAD,
            "success": f"door angle >= {np.rad2deg(self.SUCCESS_RAD):.0f} deg",
        }

    def video_path(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"angle": float(np.deg2rad(rng.uniform(55, 65)))}

    def set_progress(self, model, data, s: float, path: dict[str, Any] | None = None) -> None:  # noqa: ANN001
        qa, da = _joint(model, data, "oven_hinge")
        data.qpos[qa] = float(np.clip(s, 0, 1)) * (path or {"angle": np.deg2rad(60)})["angle"]
        data.qvel[da] = 0.0

    def failure_state(self, model, data) -> None:  # noqa: ANN001
        qa, da = _joint(model, data, "oven_hinge")
        data.qpos[qa] = np.deg2rad(12.0)
        data.qvel[da] = 0.0

    def success(self, model, data) -> SuccessResult:  # noqa: ANN001
        qa, _ = _joint(model, data, "oven_hinge")
        a = float(data.qpos[qa])
        ok = a >= self.SUCCESS_RAD
        return SuccessResult(ok, a, f"oven door open {np.rad2deg(a):.0f} deg (needs >= "
                                    f"{np.rad2deg(self.SUCCESS_RAD):.0f} deg)")


class OpenDoor(OpenOven):
    """The RL door (issue 20): the oven's cabinet and vertically hinged door with a long pull bar
    along the door's top edge, standing 9 cm off the door (the oven's stands 5 cm off). Why: a
    top-down Franka Hand hooks the bar from above with one finger between bar and door (the
    fingers stay open); with 5 cm of clearance that finger has a 2.5 cm window, with 9 cm a
    6.5 cm one -- the difference between a door a policy can find by exploration in a budget that
    fits this machine and one it cannot. The bar spans 27-89% of the door's width."""

    name = "open_door"
    instruction = "Open the door."
    object_prompt = "door"
    HANDLE_STANDOFF_M = 0.09

    def _handle_layout(self) -> tuple[float, float]:
        return 0.62 * self.door_w, 0.58 * self.door_w


class OpenToasterOven(OpenOven):
    """``open_oven`` prompted as a detector would see it: "toaster oven", the whole appliance.
    The object box and mask hold the cabinet (which stays put) as well as the door (which swings),
    as a real detector's box does; so the flow's points are part static, part moving. A rigid fit
    over all of them averages the two; following the grasped part's points does not. Same scene,
    generator path and success check (door angle) as ``open_oven``."""

    name = "open_toaster_oven"
    instruction = "Open the toaster oven."
    object_prompt = "toaster oven"
    object_bodies = ("oven", "oven_door")  # body + door: the mask covers more than the moving part
    static_parts = ("oven",)


class OpenCabinetDrawer(OpenDrawer):
    """``open_drawer`` prompted as "cabinet": the box and mask hold the cabinet (static) and its
    drawer (sliding), as a detector's box for the whole piece of furniture does. Same scene,
    generator path and success check (drawer travel) as ``open_drawer``."""

    name = "open_cabinet_drawer"
    instruction = "Open the cabinet's drawer."
    object_prompt = "cabinet"
    object_bodies = ("cabinet", "drawer")  # carcass + drawer: the mask covers more than the moving part
    static_parts = ("cabinet",)
