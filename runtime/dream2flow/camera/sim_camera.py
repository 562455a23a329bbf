"""The simulator's camera as a ``Camera``: renders the MuJoCo scene's current state.

Why a wrapper: the pipeline and the CLI take any ``Camera``; in simulation I0/D0 come
from ``SimEnv.render_rgbd()`` and the model from ``SimEnv.camera_model()`` (issue 3).
``dream2flow.sim`` is imported lazily, so the camera package works without MuJoCo.
"""

from __future__ import annotations

from typing import Any

from dream2flow.errors import NotReady
from dream2flow.types import RGBD, CameraModel


class SimCamera:
    """Wraps a ``SimEnv``: ``capture()`` renders the env's current state (robot visible)."""

    def __init__(self, env: Any) -> None:
        self.env = env

    @classmethod
    def from_task(cls, task: str, seed: int = 0, camera: CameraModel | None = None) -> "SimCamera":
        """Make the task's env (``dream2flow.sim.make_env``) and wrap its camera."""
        try:
            from dream2flow.sim import make_env
        except ImportError as exc:
            raise NotReady(f"the simulation (dream2flow.sim.make_env) is not available: {exc}") from None
        return cls(make_env(task, seed, camera=camera))

    def capture(self) -> RGBD:
        return self.env.render_rgbd()

    def model(self) -> CameraModel:
        return self.env.camera_model()

    def info(self) -> dict[str, Any]:
        return {"source": f"simulation task {getattr(self.env, 'task', '?')} seed {getattr(self.env, 'seed', '?')}"}

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if callable(close):
            close()
