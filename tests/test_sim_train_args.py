"""The sim-trained models' shared command line (export_tools/sim_train.py): per-task scene counts,
including the per-task override a hard task gets (``--task-scenes``), and which scenes load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export_tools import sim_data, sim_train


def _parse(*argv: str):
    ap = sim_train.parser("t", steps=10, batch=2, per_task=5, val_per_task=1)
    return sim_train.finish_args(ap, ap.parse_args(list(argv)))


def test_task_scenes_override_named_tasks_only() -> None:
    args = _parse("--per-task", "75", "--task-scenes", "bread_in_bowl=175, open_door=10")
    assert args.per_task == 75 and args.task_scenes == {"bread_in_bowl": 175, "open_door": 10}
    assert _parse().task_scenes == {}
    assert _parse("--quick", "--task-scenes", "bread_in_bowl=175").task_scenes == {}   # --quick: one scene each


@pytest.mark.parametrize("bad", ["bread=3", "bread_in_bowl", "bread_in_bowl=0", "bread_in_bowl=x", "open_oven=-2"])
def test_a_bad_task_scenes_value_is_a_clear_error(bad: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        _parse("--task-scenes", bad)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--task-scenes" in err and "bread_in_bowl, open_drawer, open_oven, open_door" in err


def test_load_takes_the_override_count_of_each_task(tmp_path: Path, monkeypatch) -> None:
    """``load`` asks for each task's own count (the render itself is covered by the --quick recipe)."""
    asked: list[tuple[int, tuple[str, ...]]] = []

    def ensure(split, n, *, cache, log, tasks):
        asked.append((n, tasks))
        return [sim_data.scene_path(cache, split, t, sim_data.scene_seed(split, i)) for i in range(n) for t in tasks]

    def load_scene(p: Path):
        task, seed = p.stem.rsplit("_", 1)
        return sim_data.SceneFrames(rgb=np.zeros((1, 2, 2, 3), np.uint8), depth=np.zeros((1, 2, 2), np.float16),
                                    mask=np.zeros((1, 2, 2), bool), box=np.zeros((1, 4), np.float32),
                                    kind=np.zeros(1, np.int8), progress=np.zeros(1, np.float32), task=task, seed=int(seed))

    monkeypatch.setattr(sim_data, "ensure_scenes", ensure)
    monkeypatch.setattr(sim_data, "load_scene", load_scene)
    scenes = sim_train.load("train", 3, tmp_path, log=lambda _: None, task_scenes={"bread_in_bowl": 5})
    assert asked == [(3, ("open_drawer", "open_oven", "open_door")), (5, ("bread_in_bowl",))]
    counts = {t: sum(s.task == t for s in scenes) for t in sim_data.TASKS}
    assert counts == {"bread_in_bowl": 5, "open_drawer": 3, "open_oven": 3, "open_door": 3}
    assert sim_train.seeds_of(scenes)["bread_in_bowl"] == [100000, 100004]
