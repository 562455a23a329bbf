"""The ``run`` object of report.json / eval JSON: versions, the full configuration, the inputs mode;
and the stage metrics derived from each stage's output."""

from __future__ import annotations

import argparse
import json

import numpy as np

from dream2flow.run_record import run_record
from dream2flow.stage_metrics import stage_metrics
from dream2flow.types import Plan


def test_run_record_is_complete_and_json() -> None:
    rec = run_record(argparse.Namespace(task="open_drawer", seed=3, func=print), inputs="privileged")
    json.dumps(rec)                                       # JSON-able as is
    assert rec["inputs"] == "privileged"
    for k in ("dream2flow", "python", "numpy", "jax", "mujoco", "opencv", "onnxruntime", "imageio-ffmpeg"):
        assert rec["versions"][k], k
    cfg = rec["config"]
    assert cfg["command"] == {"task": "open_drawer", "seed": 3}          # callables (the handler) left out
    assert cfg["control"]["file"].endswith("robot/control.toml") and cfg["control"]["deviation_cap_rad"] == 0.2
    assert len(cfg["robot_limits"]["dq_max"]) == 7 and "horizon" in cfg["planner"] and "erode_px" in cfg["flow"]


def test_stage_metrics_of_a_plan_and_of_unknown_output() -> None:
    H = 5
    plan = Plan(q=np.zeros((H, 7)), dt_s=0.1, gripper=np.zeros(H), predicted_points=np.zeros((H, 2, 3)),
                meta={"method": "dream2flow", "task_error_mean_m": 0.004, "task_error_max_m": 0.01,
                      "costs": {"total": 1.5}, "solver": {"iterations": 12}, "grasp": {"score": 0.7}})
    m = stage_metrics(plan)
    assert m == {"method": "dream2flow", "waypoints": 5, "dt_s": 0.1, "duration_s": 0.4, "plan_error_mean_m": 0.004,
                 "plan_error_max_m": 0.01, "cost_total": 1.5, "solver_iterations": 12, "grasp_score": 0.7}
    assert stage_metrics(object()) == {}
