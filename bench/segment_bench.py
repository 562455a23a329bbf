"""Segmentation benchmark (issue 13, item 3): ``RGBDSegmenter`` (``classical_rgbd``, colour + D0)
against ``GrabCutSegmenter`` (``classical_grabcut``, colour only), IoU against the renderer's own
object mask (independent truth: MuJoCo's segmentation, or the synthetic scene's ray casting).

Scenes:
- the three sim tasks (``bread_in_bowl``, ``open_drawer``, ``open_oven``) at held-out seeds
  7000-7019 (tests use 0-9 and evaluations 9200-9202), I0/D0 as the robot camera sees them
  (robot visible), truth ``env.object_mask()``;
- the hard case: ``tests/synthetic_scene.make_door_scene`` (a door in front of a wall of the same
  material, 640x480) at seeds 100-109, where the flow's median 3D error is reported too.

``--depth-noise K`` adds zero-mean Gaussian noise of standard deviation ``K·z²`` (metres; K = 0.002
is about a D435's 2 mm at 1 m) to D0, seeded per scene, to see whether the depth cues survive
a real sensor (the renderer's depth is exact).

Boxes: ``tight`` (the truth mask's bounding box), ``pad20`` (width and height +20 %, i.e. 10 %
of the size added on each side, clipped to the image), ``pad40`` (+40 %).

Prints JSON lines: one per (scene, box, method) (``measure: "scene"``: iou, seconds, mode or
error), then one per (task, box, method) (``measure: "summary"``: mean/median/p10 IoU, failures
= IoU < 0.5, median seconds) with ``iou_ratio``/``time_ratio`` of classical_rgbd over
classical_grabcut measured in the same process on the same inputs.

    .venv/bin/python bench/segment_bench.py            # full (about 10 min on 2 cores)
    .venv/bin/python bench/segment_bench.py --quick    # 1 seed per task, a small door (a test)
    .venv/bin/python bench/segment_bench.py --depth-noise 0.002   # the same with a noisy D0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic scenes live with the tests
os.environ.setdefault("MUJOCO_GL", "egl")

from synthetic_scene import make_door_scene  # noqa: E402

from dream2flow.errors import Dream2FlowError  # noqa: E402
from dream2flow.perception.classical import GrabCutSegmenter  # noqa: E402
from dream2flow.perception.rgbd_segmenter import RGBDSegmenter  # noqa: E402

TASKS = ("bread_in_bowl", "open_drawer", "open_oven")
PADS = {"tight": 0.0, "pad20": 0.2, "pad40": 0.4}
METHODS = ("classical_grabcut", "classical_rgbd")


def emit(**kw) -> None:
    print(json.dumps({"bench": "segment", **kw}), flush=True)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def boxes_for(mask: np.ndarray) -> dict[str, tuple[float, float, float, float]]:
    H, W = mask.shape
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    out = {}
    for name, pad in PADS.items():
        px, py = 0.5 * pad * (x1 - x0), 0.5 * pad * (y1 - y0)
        out[name] = (max(0.0, x0 - px), max(0.0, y0 - py), min(float(W), x1 + px), min(float(H), y1 + py))
    return out


def segment(method: str, rgb: np.ndarray, depth: np.ndarray, box, seed: int) -> tuple[np.ndarray | None, dict]:
    t0 = time.perf_counter()
    info: dict = {}
    try:
        if method == "classical_rgbd":
            res = RGBDSegmenter(seed=seed).segment(rgb, box, depth)
            mask, info["mode"] = res.mask, res.mode
        else:
            mask = GrabCutSegmenter(seed=seed)(rgb, box)
    except Dream2FlowError as exc:
        mask, info["error"] = None, f"{type(exc).__name__}: {exc.message}"
    info["seconds"] = time.perf_counter() - t0
    return mask, info


def noisy(depth: np.ndarray, k: float, seed: int) -> np.ndarray:
    """D0 with Gaussian noise of std ``k·z²`` m on valid pixels (seeded)."""
    if k <= 0:
        return depth
    d = np.array(depth, np.float32)
    v = d > 0
    d[v] += (np.random.default_rng(seed).standard_normal(int(v.sum())) * k * d[v] ** 2).astype(np.float32)
    return d


def run_scene(task: str, seed: int, rgb: np.ndarray, depth: np.ndarray, truth: np.ndarray,
              rows: list[dict]) -> None:
    for box_name, box in boxes_for(truth).items():
        for method in METHODS:
            mask, info = segment(method, rgb, depth, box, 0)
            row = {"task": task, "seed": seed, "box": box_name, "method": method,
                   "iou": round(iou(mask, truth), 4) if mask is not None else 0.0,
                   "box_px": [round(v, 1) for v in box], **info}
            row["seconds"] = round(row["seconds"], 4)
            rows.append(row)
            emit(measure="scene", **row)


def door_flow_errors(sc, seed: int) -> None:
    """Median 3D flow error (mm) on the door scene with each segmenter and a hugging box."""
    from dream2flow.flow.extract import extract_flow

    box = sc.box(margin_px=0)
    rel = sc.rel_depth(seed=seed)
    for method in METHODS:
        seg = RGBDSegmenter(seed=0) if method == "classical_rgbd" else GrabCutSegmenter(seed=0)
        row = {"task": "door_vs_wall", "seed": seed, "box": "tight", "method": method}
        try:
            res = extract_flow(sc.video(), sc.rgbd0(), box, rel, seed=0, segmenter=seg)
            P, _, _, _ = sc.query_truth(res.flow.query_px)
            err = np.linalg.norm(res.flow.points_base - P, axis=-1)[res.flow.visible]
            row["flow_median_err_mm"] = round(1000 * float(np.median(err)), 2)
        except Dream2FlowError as exc:
            row["error"] = f"{type(exc).__name__}: {exc.message}"
        emit(measure="door_flow", **row)


def summarise(rows: list[dict]) -> None:
    keys = sorted({(r["task"], r["box"]) for r in rows}, key=lambda k: (k[0], list(PADS).index(k[1])))
    for task, box in keys:
        stats = {}
        for method in METHODS:
            sel = [r for r in rows if r["task"] == task and r["box"] == box and r["method"] == method]
            ious = np.array([r["iou"] for r in sel])
            stats[method] = {"n": len(sel), "mean_iou": round(float(ious.mean()), 4),
                             "median_iou": round(float(np.median(ious)), 4),
                             "p10_iou": round(float(np.percentile(ious, 10)), 4),
                             "failures": int((ious < 0.5).sum()),
                             "median_seconds": round(statistics.median(r["seconds"] for r in sel), 4)}
            modes = [r.get("mode") for r in sel if r.get("mode")]
            if modes:
                stats[method]["modes"] = {m: modes.count(m) for m in sorted(set(modes))}
        g = stats["classical_grabcut"]
        for method in METHODS:
            emit(measure="summary", task=task, box=box, method=method, **stats[method],
                 iou_ratio=round(stats[method]["mean_iou"] / max(g["mean_iou"], 1e-9), 3),
                 time_ratio=round(stats[method]["median_seconds"] / max(g["median_seconds"], 1e-9), 3),
                 baseline="classical_grabcut")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one seed per task and a small door scene (seconds)")
    ap.add_argument("--seeds", default="7000:7020", help="sim seeds START:STOP (default 7000:7020)")
    ap.add_argument("--door-seeds", default="100:110", help="door scene seeds START:STOP (default 100:110)")
    ap.add_argument("--depth-noise", type=float, default=0.0, metavar="K",
                    help="Gaussian noise of std K*z^2 m added to D0 (0 = exact; 0.002 ~ a D435 at 1 m)")
    args = ap.parse_args(argv)
    if not 0.0 <= args.depth_noise <= 0.05:
        ap.error(f"--depth-noise must be in [0, 0.05] m (std at 1 m), got {args.depth_noise}")
    from dream2flow import sim

    def span(text: str) -> range:
        a, b = (int(v) for v in text.split(":"))
        return range(a, b)

    sim_seeds = range(7000, 7001) if args.quick else span(args.seeds)
    door_seeds = range(100, 101) if args.quick else span(args.door_seeds)
    emit(measure="config", sim_seeds=[sim_seeds.start, sim_seeds.stop], door_seeds=[door_seeds.start, door_seeds.stop],
         depth_noise_k=args.depth_noise, boxes=PADS, methods=list(METHODS))
    rows: list[dict] = []
    for task in TASKS:
        for seed in sim_seeds:
            with sim.make_env(task, seed) as env:
                rgbd = env.render_rgbd()
                truth = env.object_mask()
            run_scene(task, seed, rgbd.rgb, noisy(rgbd.depth_m, args.depth_noise, seed), truth, rows)
    for seed in door_seeds:
        size = (320, 240, 8) if args.quick else (640, 480, 24)
        sc = make_door_scene(width=size[0], height=size[1], num_frames=size[2], seed=seed)
        run_scene("door_vs_wall", seed, np.asarray(sc.frames[0]), noisy(sc.depth_m[0], args.depth_noise, seed),
                  sc.object_mask[0], rows)
        if args.depth_noise == 0:  # (the flow stage reads the scene's own exact D0)
            door_flow_errors(sc, seed)
    summarise(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
