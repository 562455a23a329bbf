"""Grasp proposals started on a worker thread when the mask exists (planning.grasp_prefetch, issue 21)
give the plan computed without them; a prefetch for other inputs is not used."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from dream2flow.planning import synthetic
from dream2flow.planning.cloud import default_object_mask
from dream2flow.planning.config import load_planner_config
from dream2flow.planning.grasp_prefetch import GraspPrefetch
from dream2flow.planning.planner import plan_from_flow


def _same(a, b) -> bool:
    meta = lambda p: {k: v for k, v in p.meta.items() if k != "timing"}  # noqa: E731 (wall times differ)
    return (np.array_equal(a.q, b.q) and np.array_equal(a.gripper, b.gripper)
            and np.array_equal(a.predicted_points, b.predicted_points) and a.dt_s == b.dt_s
            and repr(meta(a)) == repr(meta(b)))


def test_prefetched_grasps_give_the_same_plan() -> None:
    task = synthetic.make_task("drawer")
    mask = default_object_mask(task.flow, task.rgbd)
    plain = plan_from_flow(task.flow, task.rgbd, object_mask=mask)
    pre = GraspPrefetch(task.rgbd, mask)
    mask[:] = False  # the prefetch keeps its own copy of the mask
    fast = plan_from_flow(task.flow, task.rgbd, object_mask=pre.mask, prefetch=pre)
    assert fast.meta["timing"]["grasps_prefetched"] and not plain.meta["timing"]["grasps_prefetched"]
    assert _same(plain, fast)


def test_a_prefetch_for_other_inputs_is_not_used() -> None:
    task = synthetic.make_task("block")
    mask = default_object_mask(task.flow, task.rgbd)
    plain = plan_from_flow(task.flow, task.rgbd, object_mask=mask)
    other_mask = mask.copy()
    other_mask[np.nonzero(mask)[0][0]] = False  # one row less
    for pre, cfg in ((GraspPrefetch(task.rgbd, other_mask), None),
                     (GraspPrefetch(task.rgbd, mask, replace(load_planner_config(), grasp_seeds=7)), None),
                     (GraspPrefetch(task.rgbd, mask), replace(load_planner_config(), gripper_max_width_m=0.07))):
        got = plan_from_flow(task.flow, task.rgbd, object_mask=mask, prefetch=pre, config=cfg)
        assert not got.meta["timing"]["grasps_prefetched"]
        if cfg is None:
            assert _same(plain, got)


def test_the_grasp_settings_list_is_complete() -> None:
    """Every PlannerConfig field grasps.py reads is in GRASP_CONFIG_FIELDS (else a prefetch made under
    other settings could be taken for the planner's)."""
    from dream2flow.planning import grasps

    src = Path(grasps.__file__).read_text()
    used = set(re.findall(r"\bcfg\.([a-z_][a-z0-9_]*)", src)) | set(re.findall(r"\bconfig\.([a-z_][a-z0-9_]*)", src))
    assert used and used <= set(grasps.GRASP_CONFIG_FIELDS), used - set(grasps.GRASP_CONFIG_FIELDS)


def test_a_dead_worker_means_the_planner_proposes_the_grasps(monkeypatch) -> None:
    from dream2flow.planning import grasp_prefetch

    task = synthetic.make_task("block")
    mask = default_object_mask(task.flow, task.rgbd)
    plain = plan_from_flow(task.flow, task.rgbd, object_mask=mask)
    broken = grasp_prefetch._Worker()
    monkeypatch.setattr(grasp_prefetch, "_WORKER", broken)
    monkeypatch.setattr(grasp_prefetch.sys, "executable", "/nonexistent/python")  # the worker cannot start
    pre = GraspPrefetch(task.rgbd, mask)
    got = plan_from_flow(task.flow, task.rgbd, object_mask=mask, prefetch=pre)
    assert not got.meta["timing"]["grasps_prefetched"] and _same(plain, got)
    broken.close()


def test_the_worker_process_answers_errors_and_survives() -> None:
    """A job that fails in the worker comes back as its exception; the next job is served."""
    from dream2flow.planning import grasp_prefetch

    task = synthetic.make_task("block")
    mask = default_object_mask(task.flow, task.rgbd)
    w = grasp_prefetch._Worker()
    try:
        bad = w.submit(task.rgbd, mask[:5], load_planner_config())  # a mask of the wrong size
        try:
            bad.result(timeout=120)
            raise AssertionError("expected an error")
        except (ValueError, IndexError):
            pass
        obj, normals, scene, cam, grasps = w.submit(task.rgbd, mask, load_planner_config()).result(timeout=120)
        assert len(obj) > 5 and len(grasps) > 0
    finally:
        w.close()
