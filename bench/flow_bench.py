"""Flow-stage benchmark (issue 2): time per stage for T=48 frames, n=256 points at 640x480 on the
synthetic scene (tests/synthetic_scene.py), how it grows with T and n, and the accuracy
numbers behind the defaults (filtering on/off, LK re-acquisition on/off).

Prints JSON lines, one per measurement. Ratios are against the base case (T=48, n=256) or
the alternative setting, measured in the same process.

    .venv/bin/python bench/flow_bench.py            # full (a few minutes on 2 cores)
    .venv/bin/python bench/flow_bench.py --quick    # tiny sizes, seconds (used by a test)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic scene lives with the tests

from synthetic_scene import make_scene  # noqa: E402

from dream2flow.flow.extract import FlowConfig, extract_flow  # noqa: E402
from dream2flow.flow.filtering import FilterConfig  # noqa: E402
from dream2flow.flow.pictures import write_flow_png, write_tracks_video  # noqa: E402
from dream2flow.perception.classical import ClassicalLKTracker  # noqa: E402
from dream2flow.video.decode import load_video  # noqa: E402
from dream2flow.video.encode import write_video  # noqa: E402

STAGES = ("decode", "video_depth", "segment", "sample", "track", "align", "lift", "filter", "pictures")


def emit(**kw) -> None:
    print(json.dumps({"bench": "flow", **kw}, sort_keys=False), flush=True)


def run_once(sc, n: int, seed: int = 0, config: FlowConfig | None = None, tracker=None,
             pictures: bool = False) -> tuple[dict, object]:
    """All stages once (pictures only if asked); returns (seconds per stage, FlowResult)."""
    rel = sc.rel_depth(noise=0.01, seed=seed)
    times: dict[str, float] = {}
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory() as d:
        p = write_video(Path(d) / "v.mp4", sc.frames, sc.fps)
        t0 = time.perf_counter()
        video = load_video(p, expect_size=(sc.camera.width, sc.camera.height))
        times["decode"] = time.perf_counter() - t0
        res = extract_flow(video, sc.rgbd0(), sc.box(), rel, num_points=n, seed=seed, config=config, tracker=tracker)
        times.update(res.timings_s)
        t0 = time.perf_counter()
        if pictures:
            write_tracks_video(Path(d) / "tracks.mp4", video, res.tracks_px, res.flow.visible)
            write_flow_png(Path(d) / "flow.png", res.flow, sc.frames[0])
        times["pictures"] = time.perf_counter() - t0
    times["cpu_total"] = time.process_time() - cpu0  # this process's CPU time (robust to a busy machine)
    times["total"] = sum(times[s] for s in STAGES)
    times["total_without_pictures"] = times["total"] - times["pictures"]
    return times, res


def accuracy(sc, res) -> dict:
    P, _, V, margin = sc.query_truth(res.flow.query_px)
    v = res.flow.visible & V[0][None]
    e = np.linalg.norm(res.flow.points_base - P, axis=-1)[v]
    return {"median_err_mm": round(1000 * float(np.median(e)), 3), "p95_err_mm": round(1000 * float(np.percentile(e, 95)), 3),
            "visible_frac": round(float(res.flow.visible.mean()), 4), "true_visible_frac": round(float(V.mean()), 4),
            "false_visible": int((res.flow.visible & ~V & (margin > 3)).sum()),
            "scale_err_pct": round(100 * (res.alignment.scale / 2.3 - 1), 3),
            "shift_err_pct": round(100 * (res.alignment.shift / -0.4 - 1), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for a smoke test")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the base case (median reported)")
    args = ap.parse_args(argv)
    import cv2

    if args.quick:
        W, H, T0, N0, Ts, Ns, rep = 160, 120, 8, 32, (4, 8), (16, 32), 1
    else:
        W, H, T0, N0, Ts, Ns, rep = 640, 480, 48, 256, (12, 24, 48, 96), (64, 256, 1024), max(1, args.repeat)
    emit(measure="env", cpus=os.cpu_count(), opencv=cv2.__version__, numpy=np.__version__,
         opencv_threads=cv2.getNumThreads(), width=W, height=H)

    base_scene = make_scene(width=W, height=H, num_frames=T0, seed=0)
    run_once(base_scene, N0, pictures=True)  # warm-up (imports, OpenCV/FFmpeg/matplotlib initialisation)
    runs = [run_once(base_scene, N0, pictures=True)[0] for _ in range(rep)]
    base = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    for stage in (*STAGES, "total_without_pictures", "total"):
        emit(measure="stage_time", stage=stage, T=T0, n=N0, width=W, height=H, seconds=round(base[stage], 4),
             ms_per_frame=round(1000 * base[stage] / T0, 3), share=round(base[stage] / base["total"], 3), repeats=rep)

    def median_run(sc, n: int) -> dict:
        rs = [run_once(sc, n)[0] for _ in range(rep)]
        return {k: statistics.median(r[k] for r in rs) for k in rs[0]}

    base_np = median_run(base_scene, N0)  # the scaling baseline: same runs, no pictures
    for T in Ts:
        sc = base_scene if T == T0 else make_scene(width=W, height=H, num_frames=T, seed=0)
        t = base_np if T == T0 else median_run(sc, N0)
        emit(measure="scaling", vary="T", T=T, n=N0, width=W, height=H,
             track_s=round(t["track"], 4), lift_s=round(t["lift"], 4), total_s=round(t["total_without_pictures"], 4),
             cpu_s=round(t["cpu_total"], 4),
             ratio_vs_base=round(t["total_without_pictures"] / base_np["total_without_pictures"], 3),
             cpu_ratio_vs_base=round(t["cpu_total"] / base_np["cpu_total"], 3),
             track_ratio_vs_base=round(t["track"] / base_np["track"], 3), repeats=rep)
    for n in Ns:
        t = base_np if n == N0 else median_run(base_scene, n)
        emit(measure="scaling", vary="n", T=T0, n=n, width=W, height=H,
             sample_s=round(t["sample"], 4), track_s=round(t["track"], 4), lift_s=round(t["lift"], 4),
             total_s=round(t["total_without_pictures"], 4),
             cpu_s=round(t["cpu_total"], 4),
             ratio_vs_base=round(t["total_without_pictures"] / base_np["total_without_pictures"], 3),
             cpu_ratio_vs_base=round(t["cpu_total"] / base_np["cpu_total"], 3),
             track_ratio_vs_base=round(t["track"] / base_np["track"], 3), repeats=rep)

    # accuracy behind the defaults, same scene, same seed
    _, on = run_once(base_scene, N0)
    _, off = run_once(base_scene, N0, config=FlowConfig(filter=FilterConfig(enabled=False)))
    a_on, a_off = accuracy(base_scene, on), accuracy(base_scene, off)
    emit(measure="accuracy", setting="filter_on (default)", T=T0, n=N0, **a_on)
    emit(measure="accuracy", setting="filter_off", T=T0, n=N0, **a_off,
         median_err_ratio_on_vs_off=round(a_on["median_err_mm"] / max(a_off["median_err_mm"], 1e-9), 3))
    occ = make_scene(width=W, height=H, num_frames=T0, occluder=True, seed=0)
    t_re, re = run_once(occ, N0)
    t_no, no = run_once(occ, N0, tracker=ClassicalLKTracker(reacquire=False))
    a_re, a_no = accuracy(occ, re), accuracy(occ, no)
    emit(measure="accuracy", setting="occluder, reacquire on (default)", T=T0, n=N0, track_s=round(t_re["track"], 4), **a_re)
    emit(measure="accuracy", setting="occluder, reacquire off", T=T0, n=N0, track_s=round(t_no["track"], 4), **a_no,
         visible_ratio_on_vs_off=round(a_re["visible_frac"] / max(a_no["visible_frac"], 1e-9), 3),
         track_time_ratio_on_vs_off=round(t_re["track"] / t_no["track"], 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
