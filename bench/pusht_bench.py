"""Push-T benchmark (issue 19): random-shooting throughput and the cost of a push.

JSON lines, one per measurement:
- ``shooting``: candidates scored per second (model prediction + Chamfer scoring, batched, jit
  warm) and time per push decision (alignment with the flow + sampling + scoring) for each
  dynamics model and r in --candidates; ratio against r = 256 of the same model;
- ``push``: wall time of one push executed by the floating pusher (data collection) and by the
  Panda through IK + the control loop (evaluation), physics steps/s, and the observation
  (loop camera render + segmentation + normals) — the ratio says how much slower the arm is.

    flock /tmp/d2f-heavy.lock .venv/bin/python bench/pusht_bench.py            # ~1-2 min
    .venv/bin/python bench/pusht_bench.py --quick                             # seconds
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def emit(**kw) -> None:
    print(json.dumps({"bench": "pusht", **kw}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--candidates", default="64,256,1024")
    args = ap.parse_args()
    from dream2flow.pusht import geometry as G
    from dream2flow.pusht.env import make_initial
    from dream2flow.pusht.execute import PandaPusher, reachable
    from dream2flow.pusht.models import DYNAMICS, load_model
    from dream2flow.pusht.observe import fit_pose
    from dream2flow.pusht.planner import ShootingConfig, decide, pad_flow
    from dream2flow.pusht.primitive import sample_pushes

    reps = 2 if args.quick else 10
    env = make_initial(0, 11)
    ob = env.observe(96, 0)
    # a synthetic flow: the block's observed points moved rigidly to the goal over 32 steps
    T = 32
    s = np.linspace(0, 1, T)
    pose0 = env.block_pose()
    P = np.stack([G.transform_points(ob.points.astype(np.float64), pose0, pose0 + si * (G.GOAL - pose0)) for si in s])
    Pp, Vp = pad_flow(P.astype(np.float32), np.ones(P.shape[:2], bool))
    rs = [int(x) for x in args.candidates.split(",")]
    rs = sorted(rs, key=lambda r: r != 256)  # the baseline r = 256 first (ratios against it)
    for kind in DYNAMICS:
        model = load_model(kind)
        base = None
        for r in rs:
            cfg = ShootingConfig(candidates=r)
            rng = np.random.default_rng(0)
            pose = fit_pose(ob.points, ob.normals) if kind == "pose" else None
            decide(model, ob, Pp, Vp, cfg, rng, pose=pose, reachable=reachable)  # compile
            t_dec, t_score = [], []
            for _ in range(reps):
                d = decide(model, ob, Pp, Vp, cfg, rng, pose=pose, reachable=reachable)
                t_dec.append(d.timings_s["decide"])
                t_score.append(d.timings_s["predict"] + d.timings_s["score"])
            cps = r / float(np.median(t_score))
            base = cps if r == 256 else base
            emit(what="shooting", dynamics=kind, candidates=r, points=cfg.points, flow_points=int(Pp.shape[1]),
                 candidates_per_s=round(cps, 1), decision_s=round(float(np.median(t_dec)), 4),
                 ratio_vs_r256=round(cps / base, 3) if base else None)
    # pushes: floating vs Panda
    rng = np.random.default_rng(1)
    n = 3 if args.quick else 10
    a, b = make_initial(0, 12), make_initial(0, 12)
    pusher = PandaPusher(a)
    pusher.push(sample_pushes(a.observe(96, 0).points[:, :2], 1, rng))  # compile IK
    t_obs, t_fl, t_pa, st_fl, st_pa = [], [], [], [], []
    for k in range(n):
        t0 = time.perf_counter()
        o = a.observe(96, k)
        t_obs.append(time.perf_counter() - t0)
        p = sample_pushes(o.points[:, :2], 1, rng)
        b.set_block_pose(a.block_pose())
        s0 = b.physics_steps
        t0 = time.perf_counter()
        b.floating_push(p)
        t_fl.append(time.perf_counter() - t0)
        st_fl.append(b.physics_steps - s0)
        t0 = time.perf_counter()
        tsim = float(a.data.time)
        pusher.push(p)
        t_pa.append(time.perf_counter() - t0)
        st_pa.append((float(a.data.time) - tsim) / a.model.opt.timestep)
    emit(what="push", pusher="floating", wall_s=round(float(np.median(t_fl)), 4),
         physics_steps_per_s=round(float(np.sum(st_fl) / np.sum(t_fl))))
    emit(what="push", pusher="panda", wall_s=round(float(np.median(t_pa)), 4),
         sim_s=round(float(np.median(st_pa)) * a.model.opt.timestep, 2),
         steps_per_s_incl_loop=round(float(np.sum(st_pa) / np.sum(t_pa))),
         ratio_vs_floating=round(float(np.median(t_pa) / np.median(t_fl)), 1))
    emit(what="observe", camera=f"{a.loop_cam.width}x{a.loop_cam.height}", robot_rendered=True,
         wall_s=round(float(np.median(t_obs)), 4))


if __name__ == "__main__":
    main()
