"""The Franka Panda + hand as an MJCF fragment, built from the vendored meshes in ``assets/panda``.

Why a generated fragment instead of the package's XML: the scene composer (``scene.py``) needs
the arm inside one ``<worldbody>`` with our own actuators (joint impedance with gravity
compensation, limits from ``hw/robot/panda_limits.toml``), finger pads that can really hold
an object by friction, and collision bits that do not fight each other. Kinematics (body
poses) are copied from dm-robotics-panda's ``panda.xml``/``panda_hand.xml`` and checked against
the team's DH table in the tests (flange/TCP within 1 mm).

Frames: the base (``panda_link0``) is at the world origin on the table top (z = 0). Flange =
``panda_link8`` (link7 · Tz(0.107)); the hand is flange · Rz(-pi/4); the TCP site is hand ·
Tz(0.1034) (z = approach, y = finger closing axis), matching DESIGN.md.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from dream2flow.config import load_robot_limits

ASSET_DIR = Path(__file__).resolve().parent / "assets" / "panda"

ARM_JOINTS: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
ARM_ACTUATORS: tuple[str, ...] = tuple(f"panda_act{i}" for i in range(1, 8))
FINGER_JOINTS: tuple[str, str] = ("panda_finger_joint1", "panda_finger_joint2")
GRIPPER_ACTUATOR = "panda_hand_act"
TCP_SITE = "panda_tcp"
FLANGE_BODY = "panda_link8"
HAND_BODY = "panda_hand"
FINGER_PAD_GEOMS: tuple[str, str] = ("panda_leftfinger_pad", "panda_rightfinger_pad")

ROBOT_GEOM_GROUP = 1  # visual + collision geoms of the robot: hidden in generated videos
HIDDEN_GEOM_GROUP = 3  # collision-only geoms (never rendered by default)

# Joint impedance (N·m/rad, N·m·s/rad), as in MuJoCo Menagerie's Panda; damping is integrated
# implicitly (integrator="implicitfast"), so these are stable at a 2 ms step.
KP: tuple[float, ...] = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0)
KV: tuple[float, ...] = (450.0, 450.0, 350.0, 350.0, 200.0, 200.0, 200.0)
ARMATURE = 0.1  # reflected rotor inertia (kg·m²), keeps the stiff PD well conditioned

# Gripper: a position servo on the mean finger opening (tendon length = width / 2, 0..0.04 m)
# with a force limit. The tendon force is shared by the two fingers (coef 0.5 each): 100 N ->
# 50 N per finger (the Franka Hand does up to 70 N continuous). A grasp commands a target
# GRASP_TARGET_M below zero so the servo squeezes: 45 N per finger on a 2 cm bar, 50 N (the
# limit) on anything 3.4 cm or wider; with nothing in between the fingers rest on their limits.
GRIPPER_KP = 6000.0  # N/m on the tendon
GRIPPER_KV = 60.0
GRIPPER_FORCE_N = 100.0
FINGER_MAX_M = 0.04
GRASP_TARGET_M = -0.01

# (name, mesh stems, body pos, body quat wxyz, inertial pos, mass, fullinertia, damping, frictionloss)
# Copied from dm-robotics-panda 0.4.8 panda.xml (joint 6 damping there is -0.0132: made positive).
_LINKS = (
    ("panda_link1", "link1", "0 0 0.333", "1 0 0 0", "3.875e-03 2.081e-03 -4.762e-02", 4.970684,
     "7.0337e-01 7.0661e-01 9.1170e-03 -1.3900e-04 6.7720e-03 1.9169e-02", 0.0665, 0.2450),
    ("panda_link2", "link2", "0 0 0", "1 -1 0 0", "-3.141e-03 -2.872e-02 3.495e-03", 0.646926,
     "7.9620e-03 2.8110e-02 2.5995e-02 -3.9250e-03 1.0254e-02 7.0400e-04", 0.1987, 0.1523),
    ("panda_link3", "link3", "0 -0.316 0", "1 1 0 0", "2.7518e-02 3.9252e-02 -6.6502e-02", 3.228604,
     "3.7242e-02 3.6155e-02 1.0830e-02 -4.7610e-03 -1.1396e-02 -1.2805e-02", 0.0399, 0.1827),
    ("panda_link4", "link4", "0.0825 0 0", "1 1 0 0", "-5.317e-02 1.04419e-01 2.7454e-02", 3.587895,
     "2.5853e-02 1.9552e-02 2.8323e-02 7.7960e-03 -1.3320e-03 8.6410e-03", 0.2257, 0.3591),
    ("panda_link5", "link5", "-0.0825 0.384 0", "1 -1 0 0", "-1.1953e-02 4.1065e-02 -3.8437e-02", 1.225946,
     "3.5549e-02 2.9474e-02 8.6270e-03 -2.1170e-03 -4.0370e-03 2.2900e-04", 0.1023, 0.2669),
    ("panda_link6", "link6", "0 0 0", "1 1 0 0", "6.0149e-02 -1.4117e-02 -1.0517e-02", 1.666555,
     "1.9640e-03 4.3540e-03 5.4330e-03 1.0900e-04 -1.1580e-03 3.4100e-04", 0.0132, 0.1658),
    ("panda_link7", "link7", "0.088 0 0", "1 1 0 0", "1.0517e-02 -4.252e-03 6.1597e-02", 7.35522e-01,
     "1.2516e-02 1.0027e-02 4.8150e-03 -4.2800e-04 -1.1960e-03 -7.4100e-04", 0.0638, 1.2109),
)

_COLOURS = {"dark": "0.25 0.25 0.27 1", "grey": "0.75 0.75 0.77 1", "white": "0.95 0.95 0.95 1",
            "orange": "0.8 0.54 0.15 1", "green": "0.2 0.8 0.2 1", "blue": "0.2 0.2 0.8 1"}


@lru_cache(maxsize=1)
def mesh_assets() -> dict[str, bytes]:
    """Vendored STL meshes as an ``assets`` dict for ``MjModel.from_xml_string`` (read once)."""
    return {f"panda_{p.name}": p.read_bytes() for p in sorted(ASSET_DIR.glob("*.stl"))}


def _stems(link: str) -> list[str]:
    return sorted(k[len("panda_"):-len(".stl")] for k in mesh_assets() if k.startswith(f"panda_{link}_"))


def _mesh_geoms(link: str, indent: str) -> str:
    out = []
    for stem in _stems(link):
        colour = stem.split("_")[-1]
        out.append(f'{indent}<geom class="panda_link" mesh="panda_{stem}" material="panda_{colour}"/>')
    return "\n".join(out)


def asset_xml() -> str:
    """``<asset>`` children: meshes and plain materials for the palette colours."""
    lines = [f'<mesh name="panda_{k[len("panda_"):-4]}" file="{k}"/>' for k in mesh_assets()]
    lines += [f'<material name="panda_{c}" rgba="{rgba}" specular="0.4" shininess="0.4"/>' for c, rgba in _COLOURS.items()]
    return "\n".join(lines)


def default_xml() -> str:
    """``<default>`` classes. Arm geoms collide with the scene (contype 2 vs conaffinity 1) but not
    with each other (their convex hulls overlap at the joints)."""
    return f"""
<default class="panda_link">
  <geom type="mesh" group="{ROBOT_GEOM_GROUP}" contype="2" conaffinity="1" condim="3" friction="0.8 0.005 0.0001"/>
</default>
<default class="panda_pad">
  <geom type="box" group="{HIDDEN_GEOM_GROUP}" contype="2" conaffinity="1" condim="4" friction="1.5 0.01 0.0001"
        solref="0.004 1" solimp="0.95 0.99 0.001" priority="1" rgba="1 0.2 0.2 0.5"/>
</default>"""


def body_xml() -> str:
    """The arm + hand under ``<worldbody>`` (base at the origin)."""
    lim = load_robot_limits()
    parts = ['<body name="panda_link0" pos="0 0 0">',
             '  <inertial pos="-4.1018e-02 -1.4e-04 4.9974e-02" mass="0.629769" '
             'fullinertia="3.15e-03 3.88e-03 4.285e-03 8.2904e-07 1.5e-04 8.2299e-06"/>',
             _mesh_geoms("link0", "  ")]
    indent = "  "
    for i, (name, stem, pos, quat, ipos, mass, inertia, damp, fric) in enumerate(_LINKS):
        lo, hi = lim.q_min[i], lim.q_max[i]
        parts += [f'{indent}<body name="{name}" pos="{pos}" quat="{quat}" gravcomp="1">',
                  f'{indent}  <inertial pos="{ipos}" mass="{mass}" fullinertia="{inertia}"/>',
                  f'{indent}  <joint name="{ARM_JOINTS[i]}" axis="0 0 1" range="{float(lo)!r} {float(hi)!r}" limited="true" '
                  f'damping="{damp}" frictionloss="{fric}" armature="{ARMATURE}"/>',
                  _mesh_geoms(stem, indent + "  ")]
        indent += "  "
    # flange (link8) and hand: Rz(-pi/4); quat (cos(-pi/8), 0, 0, sin(-pi/8))
    c, s = float(np.cos(-np.pi / 8)), float(np.sin(-np.pi / 8))
    parts += [f'{indent}<body name="{FLANGE_BODY}" pos="0 0 0.107" gravcomp="1">',
              f'{indent}  <site name="panda_flange" size="0.005" group="{HIDDEN_GEOM_GROUP}"/>',
              hand_xml(indent + "  ", f'quat="{c!r} 0 0 {s!r}"'),
              f'{indent}</body>']
    for _ in range(len(_LINKS)):
        indent = indent[:-2]
        parts.append(f"{indent}</body>")
    parts.append("</body>")
    return "\n".join(parts)


def hand_xml(indent: str, placement: str) -> str:
    """The Franka Hand body (meshes, TCP site, two fingers with friction pads) with ``placement``
    attributes (e.g. ``quat="..."``) relative to its parent; shared by the arm and the floating hand."""
    pad = _finger_pads()
    parts = [f'{indent}<body name="{HAND_BODY}" {placement} gravcomp="1">',
             f'{indent}  <inertial pos="-1e-02 0 3e-02" mass="0.73" diaginertia="1e-03 2.5e-03 1.7e-03"/>',
             f'{indent}  <site name="{TCP_SITE}" pos="0 0 0.1034" size="0.005" group="{HIDDEN_GEOM_GROUP}"/>',
             _mesh_geoms("hand", indent + "  ")]
    for side, quat, joint, pad_name in (("left", "0 0 0 1", FINGER_JOINTS[0], FINGER_PAD_GEOMS[0]),
                                        ("right", "1 0 0 0", FINGER_JOINTS[1], FINGER_PAD_GEOMS[1])):
        ind = indent + "  "
        parts += [f'{ind}<body name="panda_{side}finger" pos="0 0 0.0584" quat="{quat}" gravcomp="1">',
                  f'{ind}  <inertial pos="0 0.01 0.03" mass="0.015" diaginertia="2.375e-06 2.375e-06 7.5e-07"/>',
                  f'{ind}  <joint name="{joint}" type="slide" axis="0 1 0" range="0 {FINGER_MAX_M}" limited="true" '
                  f'damping="5" armature="0.05" solreflimit="0.004 1"/>',
                  "\n".join(f'{ind}  <geom class="panda_link" mesh="panda_{st}" material="panda_{st.split("_")[-1]}" '
                            f'contype="0" conaffinity="0"/>' for st in _stems("finger")),
                  pad.format(ind=ind + "  ", name=pad_name),
                  f'{ind}</body>']
    parts.append(f"{indent}</body>")
    return "\n".join(parts)


# The floating hand (a stand-in for a mobile manipulator's base + arm: the hand moves freely in
# translation, its orientation fixed): three slide joints under position servos, gravity
# compensated, plus the Franka Hand. Its frame FLOAT_BODY sits at the world origin; the slide
# joints' values are the hand frame's position (m).
FLOAT_BODY = "float_base"
FLOAT_JOINTS: tuple[str, str, str] = ("float_x", "float_y", "float_z")
FLOAT_ACTUATORS: tuple[str, str, str] = ("float_act_x", "float_act_y", "float_act_z")
FLOAT_KP = 6000.0  # N/m
FLOAT_KV = 300.0   # N·s/m
FLOAT_FORCE_N = 150.0
FLOAT_RANGE_M = 2.0
# A passive, compliant yaw (about the vertical through the hand, i.e. through the TCP): like an
# arm's wrist it gives way when a handle turns against the fingers; the policy does not drive it.
FLOAT_YAW_JOINT = "float_yaw"
FLOAT_YAW_ACTUATOR = "float_act_yaw"
FLOAT_YAW_KP = 3.0   # N·m/rad
FLOAT_YAW_KV = 0.3   # N·m·s/rad


def floating_hand_body_xml(quat_wxyz: np.ndarray) -> str:
    """The floating Franka Hand under ``<worldbody>``: slide joints x, y, z (world axes) carrying
    the hand at orientation ``quat_wxyz``, with a passive compliant yaw (``FLOAT_YAW_*``)."""
    q = " ".join(repr(float(x)) for x in quat_wxyz)
    r = FLOAT_RANGE_M
    parts = [f'<body name="{FLOAT_BODY}" pos="0 0 0" gravcomp="1">',
             '  <inertial pos="0 0 0" mass="0.5" diaginertia="1e-3 1e-3 1e-3"/>']
    for name, axis in zip(FLOAT_JOINTS, ("1 0 0", "0 1 0", "0 0 1")):
        parts.append(f'  <joint name="{name}" type="slide" axis="{axis}" range="{-r} {r}" limited="true" damping="5" '
                     f'armature="0.1"/>')
    parts += ['  <body name="float_wrist" pos="0 0 0" gravcomp="1">',
              '    <inertial pos="0 0 0" mass="0.1" diaginertia="1e-4 1e-4 1e-4"/>',
              f'    <joint name="{FLOAT_YAW_JOINT}" type="hinge" axis="0 0 1" range="-1.2 1.2" limited="true" '
              f'damping="0.05" armature="0.01"/>',
              hand_xml("    ", f'quat="{q}"'), "  </body>", "</body>"]
    return "\n".join(parts)


def floating_actuator_xml() -> str:
    """Finger coupling, the gripper servo (as on the arm) and the three slide position servos."""
    acts = [f'<general name="{a}" joint="{j}" gainprm="{FLOAT_KP}" biastype="affine" biasprm="0 {-FLOAT_KP} {-FLOAT_KV}" '
            f'forcelimited="true" forcerange="{-FLOAT_FORCE_N} {FLOAT_FORCE_N}"/>'
            for a, j in zip(FLOAT_ACTUATORS, FLOAT_JOINTS)]
    acts.append(f'<general name="{FLOAT_YAW_ACTUATOR}" joint="{FLOAT_YAW_JOINT}" gainprm="{FLOAT_YAW_KP}" '
                f'biastype="affine" biasprm="0 {-FLOAT_YAW_KP} {-FLOAT_YAW_KV}"/>')
    return _gripper_xml(acts)


def _finger_pads() -> str:
    """Collision boxes of a finger, in the finger frame (joint axis y, inner face at y = 0).
    Measured from the finger mesh: the pad is 1.8 cm wide (x), about 1.4 cm thick (y) and spans
    z = 0.035..0.054 (the tip); the upper part is set back from the inner face."""
    return ('{ind}<geom class="panda_pad" name="{name}" pos="0 0.007 0.0445" size="0.009 0.007 0.0095"/>\n'
            '{ind}<geom class="panda_pad" pos="0 0.017 0.018" size="0.0105 0.0085 0.017" condim="3"/>')


def tendon_actuator_xml() -> str:
    """Finger coupling, the gripper servo and the arm's joint-impedance actuators
    (``general``: force = kp·ctrl − kp·q − kv·dq, clipped to the joint's torque limit)."""
    lim = load_robot_limits()
    acts = []
    for i in range(7):
        kp, kv, tau = KP[i], KV[i], lim.tau_max[i]
        acts.append(f'<general name="{ARM_ACTUATORS[i]}" joint="{ARM_JOINTS[i]}" gainprm="{kp}" biastype="affine" '
                    f'biasprm="0 {-kp} {-kv}" forcelimited="true" forcerange="{-float(tau)!r} {float(tau)!r}"/>')
    return _gripper_xml(acts)


def _gripper_xml(acts: list[str]) -> str:
    """``<tendon>``, ``<equality>`` and ``<actuator>`` with ``acts`` followed by the gripper servo."""
    acts = acts + [f'<general name="{GRIPPER_ACTUATOR}" tendon="panda_split" gainprm="{GRIPPER_KP}" biastype="affine" '
                   f'biasprm="0 {-GRIPPER_KP} {-GRIPPER_KV}" forcelimited="true" '
                   f'forcerange="{-GRIPPER_FORCE_N} {GRIPPER_FORCE_N}" ctrllimited="true" '
                   f'ctrlrange="{GRASP_TARGET_M} {FINGER_MAX_M}"/>']
    return f"""
<tendon>
  <fixed name="panda_split">
    <joint joint="{FINGER_JOINTS[0]}" coef="0.5"/>
    <joint joint="{FINGER_JOINTS[1]}" coef="0.5"/>
  </fixed>
</tendon>
<equality>
  <joint name="panda_couple_fingers" joint1="{FINGER_JOINTS[0]}" joint2="{FINGER_JOINTS[1]}" solimp="0.95 0.99 0.001" solref="0.005 1"/>
</equality>
<actuator>
  {chr(10).join(acts)}
</actuator>"""
