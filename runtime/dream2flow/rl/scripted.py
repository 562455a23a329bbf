"""A scripted door opener from the observation (privileged: it reads the handle and the hinge
from the simulator's state): above the handle, down into the gap behind the bar with the
fingers open, then pull along the door's normal until ``stop_deg``.

Used for (1) the tests that show the environment's mechanics allow the task, and (2) optional
demonstration episodes that seed SAC's replay buffer (``rl train --demos N``): their rewards are
computed by the reward being trained (flow or object state), so the critic still learns from that
reward alone; the demonstrations only make the rare event "hooked the bar and pulled" appear in
the buffer early. Runs that use them say so (``train.json``, the policy's description).
"""

from __future__ import annotations

import numpy as np


class ScriptedOpener:
    """``act(obs) -> action [4]``; call ``reset()`` at the start of each episode."""

    def __init__(self, stop_deg: float = 60.0, hook_offset_m: float = 0.012) -> None:
        self.stop_deg = float(stop_deg)
        self.hook_offset_m = float(hook_offset_m)
        self.phase = 0

    def reset(self) -> None:
        self.phase = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        tcp, handle, ang = obs[0:3].astype(float), obs[7:10].astype(float), float(obs[13])
        yaw = float(np.arctan2(obs[16], obs[15]))
        n = np.array([-np.cos(yaw + ang), -np.sin(yaw + ang), 0.0])  # the door's outward normal
        hook = handle + self.hook_offset_m * n
        if self.phase == 0 and np.linalg.norm(tcp - (hook + [0, 0, 0.06])) < 0.006:
            self.phase = 1
        if self.phase == 1 and abs(tcp[2] - (hook[2] - 0.01)) < 0.006:
            self.phase = 2
        if self.phase < 2:
            v = np.clip((hook + ([0, 0, 0.06] if self.phase == 0 else [0, 0, -0.01]) - tcp) * 15, -1, 1)
        elif np.rad2deg(ang) < self.stop_deg:
            v = n * 0.8 + np.clip((hook + [0, 0, -0.01] - tcp) * 8, -0.5, 0.5)
        else:
            v = np.zeros(3)
        return np.concatenate([np.clip(v, -1, 1), [-1.0]])
