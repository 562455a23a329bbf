"""Warm the planner's compiled code before the first task: every executable a plan can need.

Why: the first call of each jitted solver in a process traces it and compiles it (or loads it
from the persistent cache, ``jax_setup``): ~0.5 s per executable with a warm cache, seconds
without. A long-lived process (the service, ``eval``) pays that once at start-up, where it is
reported, instead of inside the first task a robot waits for. Shapes are the compile buckets, so
a handful of calls covers every plan: IK at each batch bucket, the trajectory solver at the
configured horizon's bucket for each point bucket, and the rigid baselines' sequential IK.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dream2flow.planning.config import PlannerConfig


def warm_planner(config: "PlannerConfig | None" = None, *, methods: tuple[str, ...] = ("dream2flow",),
                 point_buckets: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Compile or load the executables plans with ``config`` use (see the module doc). ``methods``:
    the planning methods to expect (the rigid baselines add their sequential IK); ``point_buckets``:
    default every bucket of the configuration. Returns ``{"seconds": s, "executables": [names]}``."""
    from dream2flow.config import load_robot_limits
    from dream2flow.planning.config import load_planner_config
    from dream2flow.planning.kinematics import fk_tcp_np
    from dream2flow.planning.optimizer import bucket_for, follow_flow
    from dream2flow.planning.planner import normalise_method
    from dream2flow.planning.solver import IK_BUCKETS, ik_batch, ik_sequence

    t0 = time.perf_counter()
    cfg = config or load_planner_config()
    lim = load_robot_limits()
    q = lim.q_ready
    T = fk_tcp_np(q)
    done: list[str] = []
    prev = 0
    for b in IK_BUCKETS:  # a batch just above the previous bucket lands in this one
        k = prev + 1
        ik_batch(np.repeat(T[None], k, axis=0), np.repeat(q[None], k, axis=0), config=cfg, limits=lim)
        done.append(f"ik[{b}]")
        prev = b
    H = cfg.horizon
    Hb = bucket_for(H + 1, cfg.horizon_buckets, "horizon")
    rng = np.random.default_rng(0)
    for nb in (point_buckets or cfg.point_buckets):
        X0 = T[:3, 3] + rng.uniform(-0.03, 0.03, (nb, 3))
        targets = np.repeat(X0[None], H, axis=0)
        targets[:, :, 2] += np.linspace(0.0, 0.05, H)[:, None]
        follow_flow(q, X0, targets, np.ones((H, nb), dtype=bool), limits=lim, config=cfg)
        done.append(f"trajectory[H={Hb},n={nb}]")
    if any(normalise_method(m) != "dream2flow" for m in methods):
        ik_sequence(np.repeat(T[None], H, axis=0), q, horizon_bucket=Hb, config=cfg, limits=lim)
        done.append(f"ik_sequence[H={Hb}]")
    return {"seconds": time.perf_counter() - t0, "executables": done}


_background: dict[tuple, Future] = {}
_background_lock = threading.Lock()


def warm_in_background(*, methods: tuple[str, ...] = ("dream2flow",), num_points: int | None = None) -> Future:
    """``warm_planner`` for the default configuration on a daemon thread, once per process and
    arguments; returns its ``Future`` (``result()`` waits; a failed warm-up is left for the plan
    itself to report). Why: a one-shot process (``demo``) has seconds of rendering and perception
    before its first plan, on one core; the other core loads JAX and the compiled solvers meanwhile
    (the loading runs mostly outside the GIL). ``num_points``: only the point bucket the flow's
    point count falls in (and the smaller ones a part selection can reduce it to)."""
    from dream2flow.planning.config import load_planner_config

    cfg = load_planner_config()
    buckets = tuple(cfg.point_buckets)
    if num_points is not None:
        buckets = tuple(b for b in buckets if b < num_points) + tuple(b for b in buckets if b >= num_points)[:1]
    key = (tuple(methods), buckets)
    with _background_lock:
        fut = _background.get(key)
        if fut is None:
            fut = Future()
            _background[key] = fut

            def work() -> None:
                try:
                    import scipy.interpolate  # noqa: F401 - the control-loop fit's first import, ~0.5 s
                    import scipy.spatial  # noqa: F401 - the grasp proposals' first import, ~0.3 s
                    fut.set_result(warm_planner(cfg, methods=methods, point_buckets=buckets))
                except BaseException as exc:  # noqa: BLE001 - reported by the plan that needs the executables
                    fut.set_exception(exc)

            threading.Thread(target=work, name="d2f-warm-planner", daemon=True).start()
    return fut
