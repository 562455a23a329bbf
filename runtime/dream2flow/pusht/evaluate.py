"""``dream2flow pusht eval``: seeded episodes, optionally in parallel processes, and the table.

Episode i runs initial state ``i % 10`` with seed ``seed + i // 10`` (so 100 episodes are the ten
initial states x ten seeds). Workers (``multiprocessing``, spawn) each run whole episodes; every
random choice in an episode comes from its own seeds, so the results equal a serial run's and
come back in episode order.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from dream2flow.log import progress
from dream2flow.pusht import geometry as G


def episode_ids(n: int, seed: int) -> list[tuple[int, int]]:
    return [(i % G.NUM_INITIAL_STATES, seed + i // G.NUM_INITIAL_STATES) for i in range(n)]


def _run_one(job: tuple[int, int, tuple[str, ...], Any, Any]) -> list[dict[str, Any]]:
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    from dream2flow.pusht.episode import run_episode

    state, seed, dyn, cfg, weights = job
    return run_episode(state, seed, dyn, cfg, weights_dir=weights)


def evaluate(episodes: int, seed: int, dynamics: tuple[str, ...], cfg: Any, *, workers: int = 1,
             weights_dir: Any = None) -> dict[str, Any]:
    """Run the episodes -> the JSON-able result (header, ``table``, ``episodes``)."""
    from dream2flow.pusht.models import load_model

    for d in dynamics:  # fail fast (missing weights) before any episode runs
        load_model(d, weights_dir)
    ids = episode_ids(episodes, seed)
    jobs = [(s, sd, dynamics, cfg, weights_dir) for s, sd in ids]
    t0 = time.perf_counter()
    results: list[list[dict[str, Any]]] = []

    def report(k: int, res: list[dict[str, Any]]) -> None:
        marks = " ".join(f"{r['dynamics']}={'ok' if r['success'] else 'fail'}({r['pushes']})" for r in res)
        progress(f"[pusht eval {k}/{len(jobs)}] state {res[0]['initial_state']} seed {res[0]['seed']}: {marks} "
                 f"({time.perf_counter() - t0:.0f} s)")

    if workers <= 1:
        for k, job in enumerate(jobs, 1):
            results.append(_run_one(job))
            report(k, results[-1])
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for k, res in enumerate(pool.imap(_run_one, jobs), 1):
                results.append(res)
                report(k, res)
    flat = [r for res in results for r in res]
    table = {}
    for d in dynamics:
        rs = [r for r in flat if r["dynamics"] == d]
        ok = [r for r in rs if r["success"]]
        table[d] = {"success": len(ok), "episodes": len(rs),
                    "mean_pushes": round(sum(r["pushes"] for r in rs) / max(len(rs), 1), 2),
                    "mean_pushes_successful": round(sum(r["pushes"] for r in ok) / len(ok), 2) if ok else None,
                    "errors": sum(1 for r in rs if r.get("error"))}
    return {"inputs": cfg.inputs, "observation": cfg.observation, "artifacts": cfg.artifacts,
            "note": ("flow stage given the simulator's object box and relative depth (inputs: privileged); "
                     "block points between pushes from the camera" if cfg.observation == "camera" else
                     "flow inputs privileged; block points from the simulator's segmentation (privileged)"),
            "success_rule": f"centroid within {G.SUCCESS_POS_M * 100:.0f} cm and yaw within "
                            f"{G.SUCCESS_YAW_RAD * 180 / 3.141592653589793:.0f} deg of the goal",
            "episodes_requested": episodes, "first_seed": seed, "dynamics": list(dynamics), "workers": workers,
            "shooting": asdict(cfg.shooting), "wall_s": round(time.perf_counter() - t0, 1), "table": table,
            "episodes": flat}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"Push-T — inputs: {result['inputs']} (flow), observation: {result['observation']}, "
             f"artifacts: {result['artifacts']}", f"{'dynamics':<10} {'success':>9} {'mean pushes':>12}"]
    for d, row in result["table"].items():
        lines.append(f"{d:<10} {row['success']:>4}/{row['episodes']:<4} {row['mean_pushes']:>12.2f}")
    return "\n".join(lines)
