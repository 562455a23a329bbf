"""Robot backends: ``make_backend(name, **kwargs)`` builds one by name.

- ``kinematic``: pure NumPy, exact (``kinematic.KinematicBackend``; kwargs: q0, tau_s, faults, ...).
- ``mujoco``: the simulated Panda of ``dream2flow.sim`` (``env=SimEnv`` or ``task=``/``seed=``);
  imported lazily so the control package does not need MuJoCo.
- ``polymetis``: the real Franka Panda (``polymetis.PolymetisBackend``; kwargs: config, host, mode,
  config_path); ``polymetis``/``torch`` are imported only in ``connect()``.
- ``libfranka``: the real Franka Research 3 (``libfranka.LibfrankaBackend``; kwargs: config,
  robot_ip, config_path, limits); ``pylibfranka`` is imported only in ``connect()``.

A backend class that drives a real arm declares ``moves_real_arm = True``; the control loop then
runs it only with the operator's consent (``control.loop.check_consent``).
"""

from __future__ import annotations

from typing import Any

from dream2flow.control.backend import RobotBackend
from dream2flow.errors import InvalidInput, NotReady

BACKENDS: tuple[str, ...] = ("kinematic", "mujoco", "polymetis", "libfranka")
# Backends built from a class: name -> (module, class). The mujoco backend comes from a SimEnv.
_CLASSES: dict[str, tuple[str, str]] = {
    "kinematic": ("dream2flow.control.backends.kinematic", "KinematicBackend"),
    "polymetis": ("dream2flow.control.backends.polymetis", "PolymetisBackend"),
    "libfranka": ("dream2flow.control.backends.libfranka", "LibfrankaBackend"),
}


def _backend_class(name: str) -> type:
    import importlib

    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def backend_moves_real_arm(name: str) -> bool:
    """Whether backend ``name`` drives a real arm (its class's ``moves_real_arm``), without
    building or connecting one: lets the service refuse at start-up what the loop would refuse
    at the first motion (``control.loop.check_consent``)."""
    return name in _CLASSES and bool(getattr(_backend_class(name), "moves_real_arm", False))


def make_backend(name: str, **kwargs: Any) -> RobotBackend:
    """A backend by name (not yet connected; the loop calls ``connect()``)."""
    if name in _CLASSES:
        return _backend_class(name)(**kwargs)
    if name == "mujoco":
        env = kwargs.pop("env", None)
        task = kwargs.pop("task", None)
        seed = kwargs.pop("seed", 0)
        if kwargs:
            raise InvalidInput(f"mujoco backend: unknown option(s) {', '.join(sorted(kwargs))} (use env= or task=/seed=)")
        if env is None:
            try:
                from dream2flow import sim
                from dream2flow.sim import make_env
            except ImportError as exc:
                raise NotReady(f"the mujoco backend needs dream2flow.sim ({exc})") from None
            if task is None:
                tasks = getattr(sim, "TASKS", ())
                if not tasks:
                    raise NotReady("the mujoco backend needs a task (dream2flow.sim.TASKS is empty)")
                task = tasks[0]
            env = make_env(task, int(seed))
        return env.robot_backend()
    raise InvalidInput(f"unknown robot backend '{name}' (choose from {', '.join(BACKENDS)})")


__all__ = ["BACKENDS", "backend_moves_real_arm", "make_backend"]
