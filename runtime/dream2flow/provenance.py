"""Where a plan's inputs came from, so a plan is never run in a scene it was not made for.

A plan made from a simulated scene records that scene in ``plan.meta["provenance"]``
(``{"source": "sim", "task": T, "seed": S}``): ``run_episode`` knows it, and ``dream2flow plan``
reads it from the ``task.toml`` that ``dream2flow sim render`` writes beside ``i0.png``.
``execute --backend mujoco`` then builds that scene (or refuses another one): a drawer plan run
in the oven scene moves the arm through the oven.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dream2flow.errors import InvalidInput

KEY = "provenance"


def sim_provenance(task: str, seed: int) -> dict[str, Any]:
    """The provenance record of inputs rendered from simulated task ``task`` with scene ``seed``."""
    return {"source": "sim", "task": str(task), "seed": int(seed)}


def provenance_from_folder(folder: str | Path) -> dict[str, Any] | None:
    """The scene of a ``sim render`` folder (its ``task.toml``), or ``None`` for other inputs."""
    p = Path(folder) / "task.toml"
    if not p.is_file():
        return None
    from dream2flow.config import load_toml

    d = load_toml(p)
    task, seed = d.get("task"), d.get("seed")
    if not isinstance(task, str) or not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidInput(f"{p}: 'task' (text) and 'seed' (integer) are needed to record where the inputs came from")
    return sim_provenance(task, seed)


def plan_scene(meta: dict[str, Any]) -> tuple[str, int] | None:
    """(task, seed) a plan was made for, from its meta, or ``None`` when it records no scene."""
    prov = meta.get(KEY) if isinstance(meta, dict) else None
    if isinstance(prov, dict) and prov.get("source") == "sim":
        return str(prov["task"]), int(prov["seed"])
    return None


def scene_for_execution(meta: dict[str, Any], task: str | None, seed: int | None) -> tuple[str, int, bool]:
    """The simulated scene to execute a plan in: (task, seed, checked). The plan's recorded scene
    when ``task``/``seed`` are not given; an ``InvalidInput`` when they name another scene; a
    plan with no recorded scene needs ``task`` (``checked`` is then False)."""
    recorded = plan_scene(meta)
    if recorded is None:
        if task is None:
            raise InvalidInput("the plan records no simulated scene (it was not made from `sim render` inputs): "
                               "name the scene to run it in with --task (and --seed)")
        return task, 0 if seed is None else int(seed), False
    rtask, rseed = recorded
    want_task = rtask if task is None else task
    want_seed = rseed if seed is None else int(seed)
    if (want_task, want_seed) != (rtask, rseed):
        raise InvalidInput(f"the plan was made for scene {rtask} seed {rseed}, not {want_task} seed {want_seed}: "
                           f"its motion is meaningless (or harmful) there; run it with --task {rtask} --seed {rseed}")
    return rtask, rseed, True
