"""What a results file must say about the run that made it: software versions, the full
configuration (command-line options, the hw folder and every config the stages read) and the
inputs mode. A number in ``eval.json`` or ``report.json`` means nothing without them.

``run_record(args, inputs=...)`` gives one JSON-able object, written as ``run`` at the top of
those files. ``inputs`` says whether the pipeline saw only what a robot would (``perceived``) or
the simulator's truth (``privileged``: its object box, relative depth, thumb point).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import sys
from importlib import metadata
from typing import Any

DISTRIBUTIONS = ("numpy", "scipy", "jax", "jaxlib", "mujoco", "opencv-python-headless", "onnxruntime", "grpcio",
                 "imageio-ffmpeg")


def versions() -> dict[str, str]:
    """Python, platform, dream2flow and the packages that change results."""
    from dream2flow import __version__

    out = {"dream2flow": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    import cv2

    out["opencv"] = cv2.__version__   # the module: several wheels provide it
    return out


def _jsonable(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist"):
        return v.tolist()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def configuration(args: Any = None) -> dict[str, Any]:
    """The command's options and every configuration the stages read (with where it came from)."""
    from dream2flow.config import hw_dir, hw_file, load_robot_limits
    from dream2flow.control.settings import load_loop_config
    from dream2flow.flow.extract import FlowConfig
    from dream2flow.planning.config import load_planner_config

    options = {k: _jsonable(v) for k, v in sorted(vars(args).items()) if not callable(v)} if args is not None else {}
    loop = load_loop_config()
    return {"command": options, "hw_dir": str(hw_dir()),
            "control": {"file": loop.source, **_jsonable(loop)},
            "robot_limits": {"file": str(hw_file("robot/panda_limits.toml", shipped_fallback=True)),
                             **_jsonable(load_robot_limits())},
            "planner": _jsonable(load_planner_config()), "flow": _jsonable(FlowConfig())}


def run_record(args: Any = None, *, inputs: str) -> dict[str, Any]:
    """``{"inputs", "versions", "config", "argv", "started_utc"}`` for a results file."""
    return {"inputs": inputs, "versions": versions(), "config": configuration(args), "argv": list(sys.argv[1:]),
            "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
