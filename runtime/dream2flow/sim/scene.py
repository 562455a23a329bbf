"""Compose one task's MuJoCo model: table, floor, lights, the Panda, the task's objects, the
camera and a hand-like occluder (used only by the video generator's "occlusion" artefact).

Why XML composition with an in-memory ``assets`` dict: it works on every MuJoCo >= 3.1 the
project allows, needs no files on disk for the seeded textures, and the composed XML can be
dumped for debugging (``SimEnv.xml``).

Physics: 2 ms step (500 Hz), ``implicitfast`` (stable stiff joint impedance), elliptic friction
cones with ``impratio`` 10 (grasps held by friction do not creep).
"""

from __future__ import annotations

import numpy as np

from dream2flow.sim import panda_model, textures
from dream2flow.sim.camera import mjcf_camera
from dream2flow.sim.tasks.base import SceneParts, Task, fmt
from dream2flow.sim.variation import Lighting
from dream2flow.types import CameraModel

TIMESTEP_S = 0.002
OCCLUDER_BODY = "occluder"
OCCLUDER_PARK = np.array([0.0, 0.0, -5.0])  # under the floor, out of every view
SKIN_RGBA = "0.87 0.66 0.53 1"
TABLE_HALF = np.array([0.65, 0.75, 0.025])
TABLE_CENTER_X = 0.35


def _table_and_room(rng: np.random.Generator, parts: SceneParts, *, varied: bool = False) -> None:
    """Table, floor (and, for a varied background, a wall behind the table) drawn from ``rng``."""
    if varied:  # any of three patterns in any colour, and a wall: the background variation (sim/vary.py)
        _varied_background(rng, parts)
        return
    if rng.random() < 0.5:
        top = textures.wood(rng, textures.random_colour(rng, (0.05, 0.12), (0.35, 0.6), (0.55, 0.85)), size=256)
    else:
        c1 = textures.random_colour(rng, (0.0, 1.0), (0.0, 0.25), (0.55, 0.8))
        c2 = tuple(np.clip(np.asarray(c1) * rng.uniform(0.75, 0.9), 0, 1))
        top = textures.checker(rng, c1, c2, cells=int(rng.integers(10, 20)), size=256)
    mat_table = parts.material("table_mat", top)
    parts.assets["floor.png"] = textures.png_bytes(textures.checker(rng, (0.42, 0.42, 0.44), (0.36, 0.36, 0.38),
                                                                    cells=8, size=128))
    parts.asset_xml += ['<texture name="floor_tex" type="2d" file="floor.png"/>',
                        '<material name="floor_mat" texture="floor_tex" texrepeat="6 6" texuniform="true"/>']
    tx, (hx, hy, hz) = TABLE_CENTER_X, TABLE_HALF
    legs = "".join(
        f'\n  <geom type="box" pos="{tx + sx * (hx - 0.05):.4g} {sy * (hy - 0.05):.4g} -0.4" size="0.03 0.03 0.36" '
        f'rgba="0.3 0.3 0.32 1" contype="0" conaffinity="0"/>' for sx in (-1, 1) for sy in (-1, 1))
    parts.body_xml.insert(0, (
        '<geom name="floor" type="plane" pos="0 0 -0.76" size="4 4 0.1" material="floor_mat"/>\n'
        f'<body name="table" pos="{tx} 0 {-hz}">\n'
        f'  <geom name="table_top" type="box" size="{fmt(TABLE_HALF)}" material="{mat_table}"/>\n'
        f'</body>\n<body name="table_legs" pos="0 0 0">{legs}\n</body>'))


def _varied_background(rng: np.random.Generator, parts: SceneParts) -> None:
    kind = int(rng.integers(3))
    c1 = textures.random_colour(rng, (0.0, 1.0), (0.0, 0.6), (0.35, 0.9))
    if kind == 0:
        top = textures.wood(rng, c1, size=256)
    elif kind == 1:
        c2 = tuple(np.clip(np.asarray(c1) * rng.uniform(0.6, 0.9), 0, 1))
        top = textures.checker(rng, c1, c2, cells=int(rng.integers(6, 24)), size=256)
    else:
        top = textures.speckle(rng, c1, cells=int(rng.integers(8, 40)), size=256, contrast=float(rng.uniform(0.2, 0.6)))
    mat_table = parts.material("table_mat", top)
    f1 = textures.random_colour(rng, (0.0, 1.0), (0.0, 0.3), (0.25, 0.6))
    f2 = tuple(np.clip(np.asarray(f1) * 0.85, 0, 1))
    parts.assets["floor.png"] = textures.png_bytes(textures.checker(rng, f1, f2, cells=8, size=128))
    wall = textures.random_colour(rng, (0.0, 1.0), (0.0, 0.5), (0.5, 0.95))
    parts.assets["wall.png"] = textures.png_bytes(textures.speckle(rng, wall, cells=int(rng.integers(6, 30)), size=128,
                                                                   contrast=float(rng.uniform(0.1, 0.5))))
    parts.asset_xml += ['<texture name="floor_tex" type="2d" file="floor.png"/>',
                        '<material name="floor_mat" texture="floor_tex" texrepeat="6 6" texuniform="true"/>',
                        '<texture name="wall_tex" type="2d" file="wall.png"/>',
                        '<material name="wall_mat" texture="wall_tex" texrepeat="4 4" texuniform="true"/>']
    tx, (hx, hy, hz) = TABLE_CENTER_X, TABLE_HALF
    legs = "".join(
        f'\n  <geom type="box" pos="{tx + sx * (hx - 0.05):.4g} {sy * (hy - 0.05):.4g} -0.4" size="0.03 0.03 0.36" '
        f'rgba="0.3 0.3 0.32 1" contype="0" conaffinity="0"/>' for sx in (-1, 1) for sy in (-1, 1))
    wall_x = tx + hx + 0.15
    parts.body_xml.insert(0, (
        '<geom name="floor" type="plane" pos="0 0 -0.76" size="4 4 0.1" material="floor_mat"/>\n'
        f'<geom name="wall" type="box" pos="{wall_x:.4g} 0 0.3" size="0.02 2.5 1.06" material="wall_mat" '
        f'contype="0" conaffinity="0"/>\n'
        f'<body name="table" pos="{tx} 0 {-hz}">\n'
        f'  <geom name="table_top" type="box" size="{fmt(TABLE_HALF)}" material="{mat_table}"/>\n'
        f'</body>\n<body name="table_legs" pos="0 0 0">{legs}\n</body>'))


def _occluder() -> str:
    """A skin-coloured hand: palm ellipsoid, four fingers and a thumb (mocap, no collisions).
    Local frame: palm faces -y (the camera side when placed by the video generator)."""
    g = f'rgba="{SKIN_RGBA}" contype="0" conaffinity="0" group="2"'
    fingers = "".join(
        f'\n  <geom type="capsule" fromto="{x:.3f} 0 0.045 {x * 1.15:.3f} 0 {0.045 + ln:.3f}" size="0.009" {g}/>'
        for x, ln in ((-0.027, 0.05), (-0.009, 0.06), (0.009, 0.058), (0.027, 0.045)))
    return (f'<body name="{OCCLUDER_BODY}" mocap="true" pos="{fmt(OCCLUDER_PARK)}">\n'
            f'  <geom type="ellipsoid" size="0.045 0.018 0.05" {g}/>{fingers}\n'
            f'  <geom type="capsule" fromto="0.04 0 -0.01 0.075 -0.005 0.03" size="0.011" {g}/>\n'
            f'  <geom type="capsule" fromto="0 0 -0.04 0 0 -0.16" size="0.028" {g}/>\n</body>')


ROBOTS: tuple[str, ...] = ("panda", "floating")


def _light_xml(jitter: np.ndarray, lighting: Lighting | None) -> tuple[str, str, str]:
    """(headlight, key light, fill light) elements; ``lighting`` None -> the default lights."""
    if lighting is None:
        return ('<headlight ambient="0.35 0.35 0.35" diffuse="0.35 0.35 0.35" specular="0.05 0.05 0.05"/>',
                f'<light name="key" pos="{0.6 + jitter[0]:.3f} {-0.6 + jitter[1]:.3f} 1.8" dir="-0.1 0.3 -1" '
                'diffuse="0.55 0.55 0.55" specular="0.1 0.1 0.1" castshadow="true"/>',
                '<light name="fill" pos="-0.5 0.8 1.5" dir="0.5 -0.4 -1" diffuse="0.25 0.25 0.25" specular="0 0 0" '
                'castshadow="false"/>')
    L = lighting
    a, h, f = L.ambient, L.headlight_diffuse, L.fill_diffuse
    kd = fmt(L.key_diffuse * np.asarray(L.key_tint))
    kp = np.array([0.6 + jitter[0], -0.6 + jitter[1], 1.8]) + np.asarray(L.key_offset_m)
    return (f'<headlight ambient="{a:.4g} {a:.4g} {a:.4g}" diffuse="{h:.4g} {h:.4g} {h:.4g}" specular="0.05 0.05 0.05"/>',
            f'<light name="key" pos="{kp[0]:.3f} {kp[1]:.3f} {kp[2]:.3f}" dir="-0.1 0.3 -1" diffuse="{kd}" '
            'specular="0.1 0.1 0.1" castshadow="true"/>',
            f'<light name="fill" pos="-0.5 0.8 1.5" dir="0.5 -0.4 -1" diffuse="{f:.4g} {f:.4g} {f:.4g}" '
            'specular="0 0 0" castshadow="false"/>')


def compose(task: Task, camera: CameraModel, rng: np.random.Generator, *, robot: str = "panda",
            hand_quat_wxyz: np.ndarray | None = None,
            background_rng: np.random.Generator | None = None,
            lighting: Lighting | None = None) -> tuple[str, dict[str, bytes]]:
    """-> (MJCF XML, assets). ``rng`` draws the table/lighting; ``task`` draws its own objects;
    ``background_rng`` (the background variation) draws a varied table, floor, wall and lighting instead.
    ``robot``: ``panda`` (the arm on the table at the origin) or ``floating`` (the Franka Hand on
    three slide joints, held at ``hand_quat_wxyz``; see ``panda_model.floating_hand_body_xml``).
    ``lighting`` (``variation.Lighting``) overrides the lights' levels and moves the key light;
    None keeps the default lights (the XML is then exactly what it was without the option)."""
    if robot not in ROBOTS:
        raise ValueError(f"robot must be one of {ROBOTS}, got {robot!r}")
    if robot == "panda":
        robot_body, robot_act = panda_model.body_xml(), panda_model.tendon_actuator_xml()
    else:
        q = np.array([1.0, 0.0, 0.0, 0.0]) if hand_quat_wxyz is None else np.asarray(hand_quat_wxyz, float)
        robot_body, robot_act = panda_model.floating_hand_body_xml(q), panda_model.floating_actuator_xml()
    parts = SceneParts()
    if background_rng is not None:
        rng = background_rng
    _table_and_room(rng, parts, varied=background_rng is not None)
    task.build(parts)
    light_jitter = rng.uniform(-0.15, 0.15, size=2)
    head, key, fill = _light_xml(light_jitter, lighting)
    assets = dict(panda_model.mesh_assets())
    assets.update(parts.assets)
    offw, offh = max(640, camera.width), max(480, camera.height)
    xml = f"""<mujoco model="dream2flow_{task.name}">
<compiler angle="radian" autolimits="true"/>
<option timestep="{TIMESTEP_S}" integrator="implicitfast" cone="elliptic" impratio="10"/>
<size memory="20M"/>
<statistic extent="2" center="0.4 0 0.3"/>
<visual>
  <global offwidth="{offw}" offheight="{offh}"/>
  <quality shadowsize="2048"/>
  <map znear="0.01" zfar="30"/>
  {head}
</visual>
<default>
  <geom friction="1.0 0.005 0.0001" solref="0.005 1" solimp="0.95 0.99 0.001"/>
  {panda_model.default_xml()}
</default>
<asset>
{panda_model.asset_xml()}
{chr(10).join(parts.asset_xml)}
</asset>
<worldbody>
{key}
{fill}
{mjcf_camera(camera)}
{chr(10).join(parts.body_xml)}
{robot_body}
{_occluder()}
</worldbody>
<contact>
{chr(10).join(parts.contact_xml)}
</contact>
{_optional_sections(parts)}{robot_act}
</mujoco>
"""
    return xml, assets


def _optional_sections(parts: SceneParts) -> str:
    """``<deformable>`` / ``<equality>`` of the task, or nothing at all (so scenes without them
    compose to the same XML, byte for byte, as before these sections existed)."""
    out = ""
    for tag, items in (("deformable", parts.deformable_xml), ("equality", parts.equality_xml)):
        if items:
            out += f"<{tag}>\n" + "\n".join(items) + f"\n</{tag}>\n"
    return out
