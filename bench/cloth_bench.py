"""Cloth physics speed (issue 18: the cover_bowl flex must simulate at >= 1,000 steps/s here).

Physics steps/s of the ``cover_bowl`` scene (Panda + bowl + flex cloth + hem) in three states:
the cloth lying still, the cloth being drawn over the bowl by the generator's invisible hand,
and the same scene's arm alone for comparison (``open_drawer``, no cloth) in the same process
(ratio). One JSON line per measurement. Run: ``MUJOCO_GL=egl python bench/cloth_bench.py
[--quick] [--seed S]`` (under ``flock /tmp/d2f-heavy.lock`` for numbers you report).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")


def _emit(**kw: object) -> None:
    print(json.dumps(kw, sort_keys=True), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="few steps (smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import mujoco

    from dream2flow.sim import make_env
    from dream2flow.sim.tasks.cover_bowl import GRID_N

    n = 300 if args.quick else 3000
    common = {"bench": "cloth", "mujoco": mujoco.__version__, "machine": platform.machine(), "quick": args.quick,
              "seed": args.seed, "cloth_grid": [GRID_N, GRID_N]}

    def rate(env, drive=None) -> float:  # noqa: ANN001
        m, d = env.model, env.data
        t0 = time.perf_counter()
        for k in range(n):
            if drive is not None:
                drive(k)
            mujoco.mj_step(m, d)
        return n / (time.perf_counter() - t0)

    base = make_env("open_drawer", args.seed)
    arm = rate(base)
    _emit(**common, measure="steps_per_s", scene="open_drawer (arm, no cloth)", value=round(arm), unit="steps/s")

    env = make_env("cover_bowl", args.seed)
    still = rate(env)
    _emit(**common, measure="steps_per_s", scene="cover_bowl, cloth at rest", value=round(still), unit="steps/s",
          ratio_vs_arm=round(still / arm, 3), realtime_x=round(still * env.model.opt.timestep, 2))
    env.reset()
    task = env._task
    path = task.video_path(__import__("numpy").random.default_rng(args.seed))
    task.start_video(env.model, env.data, path)
    drawn = rate(env, lambda k: task.drive_video(env.model, env.data, min(1.0, k / n), path))
    _emit(**common, measure="steps_per_s", scene="cover_bowl, cloth drawn over the bowl", value=round(drawn),
          unit="steps/s", ratio_vs_arm=round(drawn / arm, 3), realtime_x=round(drawn * env.model.opt.timestep, 2),
          meets_1000=bool(drawn >= 1000))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
