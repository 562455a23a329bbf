"""A plan records the simulated scene its inputs came from; execution in simulation runs that
scene or refuses another one (a drawer plan in the oven scene moves the arm through the oven)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dream2flow.errors import InvalidInput
from dream2flow.provenance import KEY, plan_scene, provenance_from_folder, scene_for_execution, sim_provenance


def test_sim_render_folder_carries_its_scene(tmp_path: Path) -> None:
    assert provenance_from_folder(tmp_path) is None                       # real-robot inputs: no scene
    (tmp_path / "task.toml").write_text('task = "open_drawer"\nseed = 4\ninstruction = "open the drawer"\n')
    prov = provenance_from_folder(tmp_path)
    assert prov == sim_provenance("open_drawer", 4) == {"source": "sim", "task": "open_drawer", "seed": 4}
    (tmp_path / "task.toml").write_text('task = "open_drawer"\n')
    with pytest.raises(InvalidInput, match="'seed'"):
        provenance_from_folder(tmp_path)


def test_execution_runs_the_recorded_scene_or_refuses() -> None:
    meta = {KEY: sim_provenance("open_drawer", 4)}
    assert plan_scene(meta) == ("open_drawer", 4)
    assert scene_for_execution(meta, None, None) == ("open_drawer", 4, True)       # defaults: the plan's scene
    assert scene_for_execution(meta, "open_drawer", 4) == ("open_drawer", 4, True)
    with pytest.raises(InvalidInput, match="made for scene open_drawer seed 4, not open_oven seed 4"):
        scene_for_execution(meta, "open_oven", None)
    with pytest.raises(InvalidInput, match="not open_drawer seed 0"):
        scene_for_execution(meta, None, 0)
    # a plan without a recorded scene runs only where it is told to, and says it could not check
    with pytest.raises(InvalidInput, match="records no simulated scene"):
        scene_for_execution({}, None, None)
    assert scene_for_execution({}, "open_oven", None) == ("open_oven", 0, False)
