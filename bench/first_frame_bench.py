"""Evidence for the first-frame check's thresholds (``video/first_frame.py``, issue 13).

For every task x seed x video artefact of the simulator: the generated video, through a real MP4
encode/decode, frame 0 against I0 ("same": must pass); the same frame 0 translated by k px
("shift_k": the camera moved; must fail from 40 px); frame 0 of another scene (the next seed of
the same task, and another task: must fail). Prints one JSON line per pair and a summary line
with the extremes of each group and the margins to the thresholds.

    .venv/bin/python bench/first_frame_bench.py                # 3 tasks x 4 seeds x 7 artefacts
    .venv/bin/python bench/first_frame_bench.py --quick        # 1 task, 2 seeds, 2 artefacts
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from dream2flow import sim  # noqa: E402
from dream2flow.sim.video_gen import ARTIFACTS  # noqa: E402
from dream2flow.video.decode import load_video  # noqa: E402
from dream2flow.video.encode import write_video  # noqa: E402
from dream2flow.video.first_frame import MAX_SHIFT_FRAC, MIN_SIMILARITY, measure_first_frame  # noqa: E402

SHIFTS = (2, 5, 10, 20, 40)


def emit(**kw) -> None:
    print(json.dumps({"bench": "first_frame", **kw}), flush=True)


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    import cv2

    A = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(img, A, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--frames", type=int, default=8)
    a = ap.parse_args()
    tasks = ("bread_in_bowl",) if a.quick else tuple(sim.TASKS)
    seeds = (0, 1) if a.quick else (0, 1, 2, 3)
    arts = ("clean", "shake") if a.quick else ARTIFACTS
    groups: dict[str, list[tuple[float, float]]] = {}
    i0s: dict[tuple[str, int], np.ndarray] = {}
    f0s: dict[tuple[str, int], np.ndarray] = {}
    times = []
    with tempfile.TemporaryDirectory() as d:
        for task in tasks:
            for seed in seeds:
                env = sim.make_env(task, seed)
                i0 = env.render_rgbd().rgb
                i0s[(task, seed)] = i0
                for art in arts:
                    gen = env.generate_video(art, num_frames=a.frames, seed=seed)
                    path = Path(d) / "v.mp4"
                    write_video(path, gen.video.frames, gen.video.fps)
                    f0 = load_video(path, expect_size=(i0.shape[1], i0.shape[0])).frames[0]
                    if art == "clean":
                        f0s[(task, seed)] = f0
                    t0 = time.perf_counter()
                    r = measure_first_frame(f0, i0)
                    times.append(time.perf_counter() - t0)
                    groups.setdefault("same", []).append((r.similarity, r.shift_norm_px))
                    emit(group="same", task=task, seed=seed, artifacts=art, **r.to_dict())
                    if art == "clean":
                        for k in SHIFTS:
                            for dx, dy in ((k, 0), (0, -k), (int(round(k * 0.6)), int(round(k * 0.8)))):
                                r = measure_first_frame(shifted(f0, dx, dy), i0)
                                groups.setdefault(f"shift_{k}", []).append((r.similarity, r.shift_norm_px))
                                emit(group=f"shift_{k}", task=task, seed=seed, true_shift=[dx, dy], **r.to_dict())
                env.close()
    keys = sorted(i0s)
    for task, seed in keys:
        others = [k for k in keys if k != (task, seed)]
        for other in others:
            r = measure_first_frame(f0s[other], i0s[(task, seed)])
            g = "other_seed" if other[0] == task else "other_task"
            groups.setdefault(g, []).append((r.similarity, r.shift_norm_px))
            emit(group=g, task=task, seed=seed, other=list(other), **r.to_dict())
    summary = {g: {"n": len(v), "similarity_min": round(min(s for s, _ in v), 4),
                   "similarity_max": round(max(s for s, _ in v), 4),
                   "shift_px_max": round(max(x for _, x in v), 2), "shift_px_min": round(min(x for _, x in v), 2)}
               for g, v in groups.items()}
    refused = {g: sum(1 for s, x in v if s < MIN_SIMILARITY or x > MAX_SHIFT_FRAC * 800.0) for g, v in groups.items()}
    emit(summary=summary, refused=refused, min_similarity=MIN_SIMILARITY, max_shift_px_640x480=MAX_SHIFT_FRAC * 800.0,
         ms_per_check_median=round(1000 * float(np.median(times)), 2))


if __name__ == "__main__":
    main()
