"""Which grasp the planner tries first (``planning.grasps.rank_grasps``)."""

from __future__ import annotations

import numpy as np

from dream2flow.planning.grasps import rank_grasps
from dream2flow.types import Grasp


def _grasp(x: float, score: float) -> Grasp:
    T = np.eye(4)
    T[0, 3] = x
    return Grasp(T_base_grasp=T, width_m=0.04, score=score)


# A door hinged at x = 0 along a 40 cm line of flow points: each point moves in proportion to its
# distance from the hinge (an opening arc), the frame at x < 0 stays put.
POINTS = np.stack([np.linspace(-0.2, 0.4, 61), np.zeros(61), np.zeros(61)], axis=1)
MOTION = np.clip(POINTS[:, 0], 0.0, None) * 0.5  # metres moved
GRASPS = [_grasp(0.38, 0.45),   # the far edge: moves most, a poor grasp
          _grasp(0.25, 0.90),   # the middle of the door: moves, a good grasp
          _grasp(0.05, 0.95),   # next to the hinge: barely moves
          _grasp(-0.15, 1.00)]  # the static frame: best scored, never first


def test_without_a_thumb_the_best_grasp_on_the_moving_part_comes_first() -> None:
    order = rank_grasps(GRASPS, POINTS, MOTION, radius_m=0.05)
    assert order[:2] == [1, 0]
    assert order[-1] == 3  # the part that does not move comes last, however well it scores


def test_the_plain_most_motion_rule_is_the_fraction_one() -> None:
    assert rank_grasps(GRASPS, POINTS, MOTION, radius_m=0.05, moving_fraction=1.0)[0] == 0


def test_a_thumb_point_decides_when_the_video_gives_one() -> None:
    order = rank_grasps(GRASPS, POINTS, MOTION, thumb_point=np.array([0.06, 0.0, 0.0]), radius_m=0.05)
    assert order[0] == 2


def test_the_order_is_deterministic_and_total() -> None:
    a = rank_grasps(GRASPS, POINTS, MOTION)
    assert a == rank_grasps(GRASPS, POINTS, MOTION) and sorted(a) == [0, 1, 2, 3]
    assert rank_grasps([], POINTS, MOTION) == []
