"""The bowl shared by ``bread_in_bowl`` and ``cover_bowl``: a flat bottom and flared wall segments
(boxes), fixed to the table. One function so that both tasks build the same kind of bowl."""

from __future__ import annotations

import numpy as np

from dream2flow.sim.tasks.base import box, fmt, quat_axis_angle, quat_mul, quat_yaw

N_SEGMENTS = 20
BOTTOM_T = 0.01  # bottom thickness (m)
WALL_T = 0.008  # wall thickness (m)


def bowl_body_xml(xy: np.ndarray, r_in: float, wall_h: float, flare: float, material: str, *,
                  name: str = "bowl") -> str:
    """``<body>`` of a bowl standing on the table at ``xy`` (m): inner radius ``r_in`` at the bottom,
    rim ``wall_h`` above the table, walls flared outwards by ``flare`` rad."""
    walls = []
    r_mid = r_in + 0.5 * wall_h * np.tan(flare) + 0.5 * WALL_T
    seg_half = np.pi * r_mid / N_SEGMENTS * 1.08
    for i in range(N_SEGMENTS):
        phi = 2 * np.pi * i / N_SEGMENTS
        q = quat_mul(quat_yaw(phi), quat_axis_angle([0, 1, 0], flare))
        c = [r_mid * np.cos(phi), r_mid * np.sin(phi), 0.5 * wall_h]
        walls.append("  " + box(c, [0.5 * WALL_T, seg_half, 0.5 * wall_h / np.cos(flare)], material, quat=q))
    bottom_r = r_in + 0.004
    return (f'<body name="{name}" pos="{fmt([*xy, 0.0])}">\n'
            f'  <geom name="{name}_bottom" type="cylinder" pos="0 0 {BOTTOM_T / 2}" '
            f'size="{bottom_r:.6g} {BOTTOM_T / 2}" material="{material}"/>\n'
            + "\n".join(walls) + "\n</body>")


def rim_radius(r_in: float, wall_h: float, flare: float) -> float:
    """Horizontal radius (m) of the rim's outer edge (the top of the flared wall's outside)."""
    return float(r_in + wall_h * np.tan(flare) + WALL_T)
