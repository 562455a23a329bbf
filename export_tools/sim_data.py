"""Training data for the sim-trained perception models, rendered by ``dream2flow.sim``.

Seeds (disjoint from every seed the tests and evaluations use: 0-99, 1000-1099, 6000-7199,
9000-9300):

- ``train``: 100000 + i (i = 0, 1, ...), the scene seed of training scene i of a task;
- ``val``: 50000-50099 (model selection during training, reported as validation);
- ``heldout``: 60000-60999 (the acceptance measurements; never seen in training).

Per scene (task, seed): the task's own randomisation (poses, sizes, colours, textures) plus
``sim.variation`` lighting and camera-pose jitter drawn from the seed; frames:

- ``i0``: what the robot camera sees before the task (robot visible, object at rest);
- ``robot_moved``: robot visible, the object at a random point of a generated path;
- ``path``: robot hidden (as in a generated video), the object at rest (the video's first
  frame) and at stratified random points of the generator's scripted path (``task.video_path`` + ``set_progress``), so articulated and
  moved states are covered.

Each frame keeps RGB (uint8), metric depth (float16 m, 0 = nothing), the task object's mask and
its tight box. A scene is cached as one ``.npz`` under ``--cache`` (default ``/tmp/d2f_simdata``),
so each scene is rendered once; the cache is never committed.

    python export_tools/sim_data.py --split train --per-task 25 --cache /tmp/d2f_simdata
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402,F401  (puts runtime/ on the path)

os.environ.setdefault("MUJOCO_GL", "egl")

SPLITS = {"train": (100000, 200000), "val": (50000, 50100), "heldout": (60000, 61000)}
TASKS = ("bread_in_bowl", "open_drawer", "open_oven", "open_door")
# The detector's classes and which sim task shows which (open_oven and open_door show the same
# kind of object: a vertically hinged door on a cabinet).
CLASSES = ("bread", "drawer", "hinged_door")
TASK_CLASS = {"bread_in_bowl": "bread", "open_drawer": "drawer", "open_oven": "hinged_door",
              "open_door": "hinged_door"}
DEFAULT_CACHE = Path("/tmp/d2f_simdata")
FRAME_KINDS = ("i0", "robot_moved", "path")
# (generated-video frames, robot-visible moved-object frames) per scene, besides I0: training scenes
# carry more frames (a scene's set-up costs ~2 s of CPU, a frame ~0.15 s)
SPLIT_FRAMES = {"train": (8, 2), "val": (4, 1), "heldout": (4, 1)}


@dataclass
class SceneFrames:
    """One scene's frames: ``rgb`` [F,H,W,3] uint8, ``depth`` [F,H,W] float16 m, ``mask`` [F,H,W]
    bool, ``box`` [F,4] float32 (tight x0,y0,x1,y1, x1/y1 exclusive; NaN if the object is not
    visible), ``kind`` [F] (index into FRAME_KINDS), ``progress`` [F], ``task``, ``seed``."""

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    box: np.ndarray
    kind: np.ndarray
    progress: np.ndarray
    task: str
    seed: int

    @property
    def cls(self) -> int:
        return CLASSES.index(TASK_CLASS[self.task])


def tight_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if xs.size < 20:
        return np.full(4, np.nan, np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def scene_seed(split: str, index: int) -> int:
    lo, hi = SPLITS[split]
    if not 0 <= index < hi - lo:
        raise ValueError(f"{split} has seeds {lo}..{hi - 1}; index {index} is out of range")
    return lo + index


def render_scene(task: str, seed: int, *, path_frames: int = 4, robot_moved: int = 1,
                 vary: bool = True) -> SceneFrames:
    """Render one scene's frames (see the module docstring). Deterministic in (task, seed)."""
    from dream2flow import sim
    from dream2flow.sim.variation import jittered_camera, random_lighting

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(task.encode()),
                                                        zlib.crc32(b"sim-training-variation")]))
    camera = jittered_camera(rng) if vary else None
    lighting = random_lighting(rng) if vary else None
    rgbs, depths, masks, kinds, progress = [], [], [], [], []
    with sim.make_env(task, seed, camera=camera, lighting=lighting) as env:
        rgbs.append(env.render_rgb())
        depths.append(env.render_depth())
        masks.append(env.object_mask())
        kinds.append(0)
        progress.append(0.0)
        path = env.task_object.video_path(rng)
        todo = [(1, float(rng.uniform(0.05, 1.0)), True) for _ in range(robot_moved)]
        # the first generated-video frame at rest (s = 0: every video starts there, robot hidden), the
        # others stratified over the path; without the rest frame a model learns "no robot -> moved"
        todo += [(2, 0.0, False)] + [(2, float((k + rng.uniform()) / max(1, path_frames - 1)), False)
                                     for k in range(path_frames - 1)]
        for kind, s, robot in todo:
            rgb, depth, mask = env.render_at_progress(s, path, robot=robot)
            rgbs.append(rgb)
            depths.append(depth)
            masks.append(mask)
            kinds.append(kind)
            progress.append(s)
    masks_a = np.stack(masks)
    return SceneFrames(rgb=np.stack(rgbs), depth=np.stack(depths).astype(np.float16), mask=masks_a,
                       box=np.stack([tight_box(m) for m in masks_a]), kind=np.asarray(kinds, np.int8),
                       progress=np.asarray(progress, np.float32), task=task, seed=int(seed))


def scene_path(cache: Path, split: str, task: str, seed: int) -> Path:
    return Path(cache) / split / f"{task}_{seed}.npz"


def save_scene(path: Path, sf: SceneFrames) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, rgb=sf.rgb, depth=sf.depth, mask=np.packbits(sf.mask, axis=-1), box=sf.box,
                        kind=sf.kind, progress=sf.progress, task=np.array(sf.task), seed=np.array(sf.seed),
                        width=np.array(sf.mask.shape[-1]))
    tmp.replace(path)


def load_scene(path: Path) -> SceneFrames:
    with np.load(path) as z:
        W = int(z["width"])
        return SceneFrames(rgb=z["rgb"], depth=z["depth"], mask=np.unpackbits(z["mask"], axis=-1, count=W).astype(bool),
                           box=z["box"], kind=z["kind"], progress=z["progress"], task=str(z["task"]), seed=int(z["seed"]))


def ensure_scenes(split: str, per_task: int, *, cache: Path = DEFAULT_CACHE, tasks: tuple[str, ...] = TASKS,
                  path_frames: int | None = None, robot_moved: int | None = None, log=print) -> list[Path]:
    """Render the missing scenes of ``split`` (``per_task`` scenes of each task, seeds from the split's
    start; frames per scene: ``SPLIT_FRAMES[split]`` unless given) into the cache; returns every scene's
    path (task-interleaved order)."""
    path_frames = SPLIT_FRAMES[split][0] if path_frames is None else int(path_frames)
    robot_moved = SPLIT_FRAMES[split][1] if robot_moved is None else int(robot_moved)
    out: list[Path] = []
    t0 = time.perf_counter()
    todo = [(i, task) for i in range(per_task) for task in tasks]
    made = 0
    for n, (i, task) in enumerate(todo):
        seed = scene_seed(split, i)
        p = scene_path(cache, split, task, seed)
        if not p.is_file():
            save_scene(p, render_scene(task, seed, path_frames=path_frames, robot_moved=robot_moved))
            made += 1
            if made % 10 == 0 or n == len(todo) - 1:
                log(f"[sim_data {split}] {n + 1}/{len(todo)} scenes ({made} rendered, "
                    f"{time.perf_counter() - t0:.0f} s)")
        out.append(p)
    return out


def iter_scenes(paths: list[Path]) -> Iterator[SceneFrames]:
    for p in paths:
        yield load_scene(p)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=tuple(SPLITS), default="train")
    ap.add_argument("--per-task", type=int, default=120, help="scenes per task (default 120)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--path-frames", type=int, default=None,
                    help="generated-video frames per scene (default: SPLIT_FRAMES, 8 for train, else 4)")
    ap.add_argument("--robot-moved", type=int, default=None,
                    help="robot-visible moved-object frames per scene (default: SPLIT_FRAMES, 2 for train, else 1)")
    args = ap.parse_args(argv)
    if not 1 <= args.per_task <= SPLITS[args.split][1] - SPLITS[args.split][0]:
        ap.error("--per-task out of the split's seed range")
    t0 = time.perf_counter()
    if (args.path_frames is not None and not 1 <= args.path_frames <= 64) or (
            args.robot_moved is not None and not 0 <= args.robot_moved <= 16):
        ap.error("--path-frames must be in [1, 64] and --robot-moved in [0, 16]")
    paths = ensure_scenes(args.split, args.per_task, cache=args.cache, tasks=tuple(args.tasks.split(",")),
                          path_frames=args.path_frames, robot_moved=args.robot_moved)
    print(f"{len(paths)} scenes in {args.cache / args.split} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
