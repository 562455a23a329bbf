"""Sim-trained perception models on held-out simulator scenes (issue 14): each model against
the truth and against the classical backend it stands beside, and the 3D flow they give.

Scenes: ``dream2flow.sim`` tasks at held-out seeds 60000.. (``export_tools/sim_data.py``: never
used by training, validation, tests or evaluations), default camera and lights (what the robot
camera and ``eval`` see), a 48-frame generated video (clean), written to H.264 and decoded again
as ``dream2flow flow`` reads it. Per scene it measures

- ``depth``: the video-depth model on every frame vs the clean render's metric depth, after a
  per-image least-squares scale/shift: AbsRel, delta<1.25 (all pixels, object pixels), the
  per-frame scale's drift (max |s_t/s_0 - 1| of a fit on the static scene) and ms per frame;
- ``segment``: IoU with the object's true I0 mask of the sim segmenter and of the classical
  RGB-D segmenter, with a tight box and with a box padded by 20 % a side;
- ``detect``: the detector's best box for the task's object prompt on I0: reported at all
  (score >= its threshold), IoU with the true box, correct (IoU >= 0.5);
- ``flow``: the flow's 3D error against the truth (``sim.flow_truth``; median, visible fraction)
  for these variants: ``privileged`` (the simulator's box and relative depth, RGB-D segmenter, LK),
  ``privileged_dis`` (same with the DIS tracker), ``sim_depth`` / ``sim_depth_noalign`` (truth box,
  the depth model, with / without the per-frame static-scene alignment; ``sim_depth_maskfit``: with
  it, but the object's scale fitted on its own pixels instead of the static scene's), ``simrel_noalign``
  (privileged without that alignment), ``perceived_simrel`` (the detector's box and the sim
  segmenter with the simulator's relative depth: the error of detection + segmentation + tracking
  alone), and ``perceived`` / ``perceived_maskfit`` / ``perceived_dis`` / ``perceived_noalign``
  (everything from the sim models: detector box, sim segmenter, depth model; maskfit: the object's
  scale and shift fitted on its own pixels); ``*_noanchor``: the same without anchoring each track's
  frame-0 depth to D0 (``flow.anchor``, on by default).

Prints JSON lines (one per scene and variant, then a summary per task and variant with ratios to
``privileged`` measured in the same process).

    flock /tmp/d2f-heavy.lock .venv/bin/python bench/sim_models_bench.py --seeds 5 --json bench/results/sim_models.json
    ... --seeds 10 --acceptance-seeds --variants privileged,perceived_simrel,perceived,perceived_noanchor   # issue 14 table
    .venv/bin/python bench/sim_models_bench.py --quick   # one task, one seed, 12 frames
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HELDOUT_START = 60000  # export_tools/sim_data.SPLITS["heldout"]
TASKS = ("bread_in_bowl", "open_drawer", "open_oven", "open_door")
ACCEPT_START = 60500  # tests/test_perception_sim_config.py: acceptance 2 renders seed 60500 + the task's index in TASKS
VARIANTS = ("privileged", "privileged_noanchor", "privileged_dis", "simrel_noalign", "perceived_simrel",
            "perceived_simrel_noanchor", "sim_depth", "sim_depth_maskfit", "sim_depth_noalign", "perceived",
            "perceived_noanchor", "perceived_maskfit", "perceived_dis", "perceived_noalign")


def emit(rows: list[dict[str, Any]], **kw: Any) -> None:
    row = {"bench": "sim_models", **kw}
    rows.append(row)
    print(json.dumps(row), flush=True)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def box_iou(a: Any, b: Any) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return float(inter / max(1e-9, (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def tight_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def pad_box(b: Any, frac: float, W: int, H: int) -> tuple[float, float, float, float]:
    w, h = b[2] - b[0], b[3] - b[1]
    return (max(0.0, b[0] - frac * w), max(0.0, b[1] - frac * h), min(W - 1.0, b[2] + frac * w),
            min(H - 1.0, b[3] + frac * h))


def depth_metrics(pred: np.ndarray, gt: np.ndarray, obj: np.ndarray, static: np.ndarray) -> dict[str, Any]:
    """Per frame least-squares (s, b) on all valid pixels -> AbsRel, delta<1.25; the object's AbsRel under
    that fit; the drift of a fit on the static scene (pixels the object never covers) relative to frame 0."""
    absrel, d125, oabs, s_static = [], [], [], []
    for p, g, o in zip(pred, gt, obj):
        v = np.isfinite(g) & (g > 0)
        A = np.stack([p[v], np.ones(int(v.sum()))], 1).astype(np.float64)
        s, b = np.linalg.lstsq(A, g[v].astype(np.float64), rcond=None)[0]
        a = s * p + b
        r = np.maximum(a[v], 1e-3) / g[v]
        absrel.append(float(np.mean(np.abs(a[v] - g[v]) / g[v])))
        d125.append(float(np.mean(np.maximum(r, 1 / r) < 1.25)))
        ov = v & o
        if ov.sum() > 10:
            oabs.append(float(np.mean(np.abs(a[ov] - g[ov]) / g[ov])))
        sv = v & static
        A = np.stack([p[sv], np.ones(int(sv.sum()))], 1).astype(np.float64)
        s_static.append(float(np.linalg.lstsq(A, g[sv].astype(np.float64), rcond=None)[0][0]))
    s_static = np.asarray(s_static)
    return {"absrel": float(np.mean(absrel)), "delta125": float(np.mean(d125)),
            "object_absrel": float(np.mean(oabs)) if oabs else None,
            "scale_drift_max": float(np.max(np.abs(s_static / s_static[0] - 1))),
            "scale_drift_frame_to_frame": float(np.median(np.abs(np.diff(s_static) / s_static[:-1])))}


def run_scene(task: str, seed: int, num_frames: int, perc: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """One held-out scene: depth, segment and detect rows, then a flow row per variant in ``perc["variants"]``."""
    from dream2flow import sim
    from dream2flow.errors import Dream2FlowError
    from dream2flow.flow.align import FrameAlignConfig
    from dream2flow.flow.anchor import AnchorConfig
    from dream2flow.flow.extract import FlowConfig, extract_flow
    from dream2flow.perception.classical import ClassicalLKTracker
    from dream2flow.perception.classical_dis import DISFlowTracker
    from dream2flow.perception.rgbd_segmenter import RGBDSegmenter
    from dream2flow.sim.flow_truth import flow_error
    from dream2flow.video.decode import load_video
    from dream2flow.video.encode import write_video

    with sim.make_env(task, seed) as env:
        rgbd = env.render_rgbd()
        true_mask = env.object_mask()
        box_priv = env.object_box()
        prompt = env.object_prompt
        gen = env.generate_video(num_frames=num_frames, seed=seed, with_segmentation=True)
        obj_ids = env.object_body_ids
    with tempfile.TemporaryDirectory() as d:
        video = load_video(write_video(Path(d) / "v.mp4", gen.video.frames, gen.video.fps))
    H, W = true_mask.shape
    base = {"task": task, "seed": seed}

    # video depth
    t0 = time.perf_counter()
    rel_model = perc["depth"](video)
    ms = 1000 * (time.perf_counter() - t0) / len(video.frames)
    obj = np.isin(gen.segmentation, obj_ids)
    static = ~obj.any(0)
    emit(rows, kind="depth", **base, ms_per_frame=round(ms, 2), frame_wh=[W, H],
         **depth_metrics(rel_model, gen.depth_m, obj, static))

    # segmentation
    tb = tight_box(true_mask)
    seg_row = {}
    for bname, b in (("tight", tb), ("pad20", pad_box(tb, 0.2, W, H))):
        for sname, seg in (("sim", perc["segmenter"]), ("classical_rgbd", RGBDSegmenter(seed=seed))):
            try:
                seg_row[f"{sname}_{bname}"] = iou(seg(rgbd.rgb, b, rgbd.depth_m), true_mask)
            except Dream2FlowError:
                seg_row[f"{sname}_{bname}"] = 0.0
    emit(rows, kind="segment", **base, **{k: round(v, 4) for k, v in seg_row.items()})

    # detection
    found = perc["detector"](rgbd.rgb, prompt)
    det_box = tuple(float(v) for v in found.boxes[0]) if len(found.scores) else None
    det_iou = box_iou(det_box, tb) if det_box else 0.0
    emit(rows, kind="detect", **base, prompt=prompt, reported=det_box is not None,
         score=float(found.scores[0]) if det_box else None, iou=round(det_iou, 4), correct=det_iou >= 0.5)

    # flows
    no_align = replace(FlowConfig(), frame_align=replace(FrameAlignConfig(), enabled=False))
    mask_fit = replace(FlowConfig(), frame_align=replace(FrameAlignConfig(), object_fit="scale_shift"))
    no_anchor = replace(FlowConfig(), anchor=AnchorConfig(enabled=False))
    lk, dis = ClassicalLKTracker(), DISFlowTracker()
    variants = {
        "privileged": (box_priv, gen.rel_depth, None, lk, None),
        "privileged_noanchor": (box_priv, gen.rel_depth, None, lk, no_anchor),
        "privileged_dis": (box_priv, gen.rel_depth, None, dis, None),
        "simrel_noalign": (box_priv, gen.rel_depth, None, lk, no_align),
        "sim_depth": (box_priv, rel_model, None, lk, None),
        "sim_depth_maskfit": (box_priv, rel_model, None, lk, mask_fit),
        "sim_depth_noalign": (box_priv, rel_model, None, lk, no_align),
        "perceived_simrel": (det_box, gen.rel_depth, perc["segmenter"], lk, None),
        "perceived_simrel_noanchor": (det_box, gen.rel_depth, perc["segmenter"], lk, no_anchor),
        "perceived": (det_box, rel_model, perc["segmenter"], lk, None),
        "perceived_noanchor": (det_box, rel_model, perc["segmenter"], lk, no_anchor),
        "perceived_maskfit": (det_box, rel_model, perc["segmenter"], lk, mask_fit),
        "perceived_dis": (det_box, rel_model, perc["segmenter"], dis, None),
        "perceived_noalign": (det_box, rel_model, perc["segmenter"], lk, no_align),
    }
    for name, (box, rel, seg, trk, cfg) in variants.items():
        if name not in perc["variants"]:
            continue
        row: dict[str, Any] = {"variant": name}
        try:
            if box is None:
                raise RuntimeError("the detector found no box")
            t0 = time.perf_counter()
            res = extract_flow(video, rgbd, box, rel, seed=seed, segmenter=seg, tracker=trk, config=cfg)
            row["seconds"] = round(time.perf_counter() - t0, 2)
            e = flow_error(res.flow, rgbd.depth_m, rgbd.camera, gen.gt_flow)
            row.update(ok=True, median_err_m=e["median_err_m"], p90_err_m=e["p90_err_m"],
                       final_displacement_error_m=e["final_displacement_error_m"],
                       visible_fraction=e["visible_fraction"], mask_iou=iou(res.mask, true_mask))
            fa = res.flow.meta.get("frame_align", {})
            if fa.get("residual_m"):
                row["frame_align_residual_m_median"] = float(np.nanmedian([r for r in fa["residual_m"] if r is not None]))
        except (Dream2FlowError, RuntimeError) as exc:
            row.update(ok=False, error=str(exc)[:200])
        emit(rows, kind="flow", **base, **row)


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    tasks = sorted({r["task"] for r in rows if "task" in r})
    for task in tasks + ["all"]:
        sel = [r for r in rows if r.get("task") == task or task == "all"]
        dep = [r for r in sel if r["kind"] == "depth"]
        seg = [r for r in sel if r["kind"] == "segment"]
        det = [r for r in sel if r["kind"] == "detect"]
        s: dict[str, Any] = {"bench": "sim_models", "kind": "summary", "task": task, "scenes": len(dep)}
        for k in ("absrel", "delta125", "object_absrel", "scale_drift_max", "scale_drift_frame_to_frame",
                  "ms_per_frame"):
            vals = [r[k] for r in dep if r.get(k) is not None]
            s[f"depth_{k}"] = round(float(np.mean(vals)), 4) if vals else None
        for k in ("sim_tight", "sim_pad20", "classical_rgbd_tight", "classical_rgbd_pad20"):
            s[f"seg_iou_{k}"] = round(float(np.mean([r[k] for r in seg])), 4) if seg else None
        rep = [r for r in det if r["reported"]]
        s["det_precision"] = round(sum(r["correct"] for r in rep) / max(1, len(rep)), 4)
        s["det_recall"] = round(sum(r["correct"] for r in det) / max(1, len(det)), 4)
        s["det_mean_iou"] = round(float(np.mean([r["iou"] for r in det])), 4) if det else None
        base_med = None
        for v in VARIANTS:
            fl = [r for r in sel if r["kind"] == "flow" and r["variant"] == v]
            if not fl:
                continue
            ok = [r for r in fl if r["ok"]]
            med = float(np.median([r["median_err_m"] for r in ok])) if ok else None
            if v == "privileged":
                base_med = med
            s[f"flow_{v}"] = {
                "ok": f"{len(ok)}/{len(fl)}",
                "median_of_median_err_mm": round(1000 * med, 2) if med is not None else None,
                "worst_median_err_mm": round(1000 * max(r["median_err_m"] for r in ok), 2) if ok else None,
                "within_15mm": f"{sum(r['median_err_m'] <= 0.015 for r in ok)}/{len(fl)}",
                "per_scene_mm": {f"{r['task']}:{r['seed']}": (round(1000 * r["median_err_m"], 1) if r["ok"] else None)
                                 for r in fl},
                "visible_fraction": round(float(np.mean([r["visible_fraction"] for r in ok])), 4) if ok else None,
                "ratio_to_privileged": round(med / base_med, 3) if med is not None and base_med else None}
        out.append(s)
        print(json.dumps(s), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--seeds", type=int, default=5, help="held-out scenes per task (seeds 60000..; default 5)")
    ap.add_argument("--acceptance-seeds", action="store_true",
                    help=f"also each task's acceptance-2 scene (seed {ACCEPT_START} + the task's index in {', '.join(TASKS)})")
    ap.add_argument("--frames", type=int, default=48, help="video frames (default 48, as eval)")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "exported_models")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="flow variants to run (default: all)")
    ap.add_argument("--json", type=Path, help="also write every row and the summary to this file")
    ap.add_argument("--quick", action="store_true", help="one task, one seed, 12 frames")
    args = ap.parse_args(argv)
    if args.quick:
        args.tasks, args.seeds, args.frames = "open_drawer", 1, 12
    if not 1 <= args.seeds <= 1000 or not 8 <= args.frames <= 600:
        ap.error("--seeds must be in [1, 1000] and --frames in [8, 600]")
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if not variants or set(variants) - set(VARIANTS):
        ap.error(f"--variants must name some of {', '.join(VARIANTS)}")
    from dream2flow.perception.engine import InferenceEngine
    from dream2flow.perception.sim_models import SimBoxSegmenter, SimDetector, SimVideoDepth

    engine = InferenceEngine(args.models_dir / "manifest.toml", models_dir=args.models_dir)
    perc = {"depth": SimVideoDepth(engine, "sim_video_depth"), "segmenter": SimBoxSegmenter(engine, "sim_segmenter"),
            "detector": SimDetector(engine, "sim_detector"), "variants": variants}
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for task in args.tasks.split(","):
        seeds = [HELDOUT_START + i for i in range(args.seeds)]
        if args.acceptance_seeds:
            seeds.append(ACCEPT_START + TASKS.index(task))
        for seed in seeds:
            run_scene(task, seed, args.frames, perc, rows)
    summary = summarise(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "summary": summary, "seconds": round(time.perf_counter() - t0, 1),
                                         "argv": sys.argv[1:] if argv is None else argv}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
