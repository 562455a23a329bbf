"""Train the sim-trained box-prompted segmenter (``sim_segmenter``): box + RGB + D0 -> mask.

The runtime wrapper (``dream2flow.perception.sim_models.SimBoxSegmenter``) crops the box plus
``context`` x its size on each side (at least 16 px), resizes the crop to SxS, and feeds five
channels: RGB (ImageNet-normalised), D0 normalised in the crop ((z − median z in the box) /
``depth_unit_m``, clipped to ±3, 0 where invalid) and the box as a 0/1 channel. A small U-Net
(``sim_nets.BoxSegNet``) returns mask logits; the wrapper upsamples them to the crop, keeps
logit > 0 and the largest connected component, and pastes it into the image.

Training boxes are the object's tight box with every side moved independently by -5 % .. +35 %
of the box size (so both hugging and loose boxes, as an operator or the detector gives them).
Loss: binary cross-entropy + soft Dice. Frames: robot-camera views and generated-video frames
(``sim_data``), every task.

    python export_tools/train_sim_segmenter.py                  # full run
    python export_tools/train_sim_segmenter.py --quick --out /tmp/q
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import sim_data, sim_train  # noqa: E402

NAME = "sim_segmenter"
SIZE = 96
WIDTHS = (16, 24, 32, 48)  # U-Net channels per level (sim_nets.BoxSegNet)
CONTEXT = 0.5
DEPTH_UNIT_M = 0.1
REGION = 1.4       # stored region: the tight box plus this x its size on each side
REGION_MAX = 256   # longest side of a stored region (px); larger regions are downscaled
PAD_RANGE = (-0.05, 0.35)
DEPTH_DROPOUT = 0.1


def prepare(scenes: Sequence[sim_data.SceneFrames]) -> list[dict[str, Any]]:
    """Per frame with a visible object: the region around its tight box (rgb, depth, mask,
    downscaled to at most REGION_MAX px), with the region's origin and scale in image pixels."""
    import cv2

    out = []
    for s in scenes:
        H, W = s.rgb.shape[1:3]
        for f in range(len(s.rgb)):
            b = s.box[f]
            if not np.isfinite(b).all() or s.mask[f].sum() < 50:
                continue
            bw, bh = b[2] - b[0], b[3] - b[1]
            rx0, ry0 = int(max(0, b[0] - REGION * bw)), int(max(0, b[1] - REGION * bh))
            rx1, ry1 = int(min(W, b[2] + REGION * bw)), int(min(H, b[3] + REGION * bh))
            scale = min(1.0, REGION_MAX / max(rx1 - rx0, ry1 - ry0))
            size = (max(1, round((rx1 - rx0) * scale)), max(1, round((ry1 - ry0) * scale)))
            sl = (slice(ry0, ry1), slice(rx0, rx1))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            out.append({
                "rgb": cv2.resize(s.rgb[f][sl], size, interpolation=interp),
                "depth": cv2.resize(s.depth[f][sl].astype(np.float32), size, interpolation=cv2.INTER_NEAREST),
                "mask": cv2.resize(s.mask[f][sl].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0,
                "origin": np.array([rx0, ry0], np.float64), "scale": scale, "box": b.astype(np.float64),
                "image_wh": (W, H), "task": s.task})
    return out


def jitter_box(box: np.ndarray, rng: np.random.Generator, W: int, H: int, pad: tuple[float, float] = PAD_RANGE
               ) -> np.ndarray:
    bw, bh = box[2] - box[0], box[3] - box[1]
    d = rng.uniform(*pad, size=4) * np.array([bw, bh, bw, bh])
    b = np.array([box[0] - d[0], box[1] - d[1], box[2] + d[2], box[3] + d[3]])
    b = np.clip(b, 0, [W, H, W, H])
    if b[2] - b[0] < 4 or b[3] - b[1] < 4:
        return box.copy()
    return b


def sample(item: dict[str, Any], box: np.ndarray, use_depth: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(input [5,S,S] float32, target mask [S,S] float32) for one stored region and an image-pixel box,
    cropped exactly as the runtime wrapper crops (``crop_inputs``)."""
    from dream2flow.perception.sim_models import crop_inputs, crop_window

    W, H = item["image_wh"]
    win = crop_window(box, W, H, CONTEXT)
    # the crop in region pixels (the region holds the image downscaled by ``scale`` from ``origin``)
    o, sc = item["origin"], item["scale"]
    reg = lambda img: _crop_region(img, win, o, sc)  # noqa: E731
    rgb, depth, mask = reg(item["rgb"]), reg(item["depth"]), reg(item["mask"].astype(np.uint8))
    x = crop_inputs(rgb, depth if use_depth else None, box, win, SIZE, sim_train.MEAN, sim_train.STD, DEPTH_UNIT_M)
    import cv2

    y = cv2.resize(mask, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    return x, y


def _crop_region(img: np.ndarray, win: tuple[int, int, int, int], origin: np.ndarray, scale: float) -> np.ndarray:
    """The window ``win`` (image px) read from a stored region; parts outside the region are
    edge-replicated (the region spans the box plus REGION x its size, wider than any window
    except where the image itself ends)."""
    x0, y0, x1, y1 = win
    h, w = img.shape[:2]
    a = np.array([(x0 - origin[0]) * scale, (y0 - origin[1]) * scale, (x1 - origin[0]) * scale,
                  (y1 - origin[1]) * scale])
    ia = np.round(a).astype(int)
    ia[2] = max(ia[2], ia[0] + 1)
    ia[3] = max(ia[3], ia[1] + 1)
    xs = np.clip(np.arange(ia[0], ia[2]), 0, w - 1)
    ys = np.clip(np.arange(ia[1], ia[3]), 0, h - 1)
    return img[ys][:, xs]


def batch_of(items: list[dict[str, Any]], idx: np.ndarray, rng: np.random.Generator,
             pad: tuple[float, float] = PAD_RANGE, depth_dropout: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A batch of (inputs, targets); ``depth_dropout``: the fraction of samples shown without D0 (so
    the model degrades gracefully when a caller has no depth)."""
    xs, ys = [], []
    for i in idx:
        it = items[int(i)]
        W, H = it["image_wh"]
        x, y = sample(it, jitter_box(it["box"], rng, W, H, pad), use_depth=bool(rng.random() >= depth_dropout))
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys)


def loss_fn(logits: Any, target: Any) -> Any:
    from torch.nn import functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = logits.sigmoid()
    inter = (p * target).sum((1, 2))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2)) + target.sum((1, 2)) + 1)
    return bce + dice.mean()


def validate(model: Any, items: list[dict[str, Any]], seed: int) -> dict[str, float]:
    """Crop-level IoU (logit > 0 vs the truth) for tight and 20 %-padded boxes."""
    import torch

    model.eval()
    res = {}
    for name, pad in (("tight", (0.0, 0.0)), ("pad20", (0.1, 0.1))):
        rng = np.random.default_rng(seed)
        ious = []
        for s in range(0, len(items), 32):
            idx = np.arange(s, min(len(items), s + 32))
            x, y = batch_of(items, idx, rng, pad)
            with torch.no_grad():
                m = model(torch.from_numpy(x)).numpy() > 0
            t = y > 0.5
            ious += list((m & t).sum((1, 2)) / np.maximum(1, (m | t).sum((1, 2))))
        res[f"crop_iou_{name}"] = float(np.mean(ious))
    return res


def main(argv: list[str] | None = None) -> int:
    import torch

    from export_tools.sim_nets import BoxSegNet, count_params

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = sim_train.parser(__doc__.split("\n\n")[0], steps=1000, batch=16, per_task=40, val_per_task=10)
    args = sim_train.finish_args(ap, ap.parse_args(argv))
    name = args.name or NAME
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    train_scenes = sim_train.load("train", args.per_task, args.cache, task_scenes=args.task_scenes)
    val_scenes = sim_train.load("val", args.val_per_task, args.cache)
    tr, va = prepare(train_scenes), prepare(val_scenes)
    train_seeds = sim_train.seeds_of(train_scenes)
    del train_scenes[:]  # the regions are all training needs
    t_data = time.perf_counter() - t_start
    model = BoxSegNet(WIDTHS)
    print(f"[seg] {count_params(model)} parameters; {len(tr)} training regions, {len(va)} validation")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    log_every = max(1, args.steps // 20)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = sim_train.cosine_lr(step, args.steps, args.lr, warmup=min(100, args.steps // 10 + 1))
        x, y = batch_of(tr, rng.integers(0, len(tr), size=args.batch), rng, depth_dropout=DEPTH_DROPOUT)
        xt = torch.from_numpy(x)
        xt = torch.cat([sim_train.photometric(xt[:, :3], gen), xt[:, 3:]], 1)
        model.train()
        loss = loss_fn(model(xt), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == args.steps - 1:
            print(f"[seg] step {step + 1}/{args.steps} loss {float(loss):.4f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    t_train = time.perf_counter() - t0
    val = validate(model, va, args.seed)
    print(f"[seg] validation: {val}")
    xv, _ = batch_of(va, np.arange(min(3, len(va))), np.random.default_rng(1))
    wall = time.perf_counter() - t_start
    training = {
        "trained_on": "dream2flow.sim renders (robot-camera views and generated-video frames along the tasks' "
                      "object paths; lighting and camera-pose jitter); boxes: tight box, each side moved by "
                      f"{PAD_RANGE[0]:+.0%}..{PAD_RANGE[1]:+.0%} of the box size",
        "tasks": sorted({it["task"] for it in tr}), "train_seeds": train_seeds,
        "val_seeds": sim_train.seeds_of(val_scenes),
        "steps": args.steps, "batch": args.batch, "widths": list(WIDTHS), "seed": args.seed, "quick": bool(args.quick),
        "train_regions": len(tr), "wall_time_s": round(wall, 1), "train_time_s": round(t_train, 1),
        "data_time_s": round(t_data, 1), "machine": "2-core CPU (torch CPU threads: %d)" % args.threads,
        "val_metrics": {k: round(v, 5) for k, v in val.items()},
        "loss": "binary cross-entropy + soft Dice", "depth_dropout": DEPTH_DROPOUT,
    }
    sim_train.ship(model, (torch.from_numpy(xv[:1]),), name=name, role="segmenter", out=args.out,
                   script="train_sim_segmenter.py", argv=argv, input_names=["crop"], output_names=["mask_logits"],
                   dynamic_axes={"crop": {0: "boxes"}, "mask_logits": {0: "boxes"}},
                   preprocess={"wrapper": "sim_segmenter", "size": SIZE, "context": CONTEXT, "min_context_px": 16,
                               "depth_unit_m": DEPTH_UNIT_M, "depth_clip": 3.0, "mean": list(sim_train.MEAN),
                               "std": list(sim_train.STD), "mask_threshold": 0.0,
                               "channels": ["r", "g", "b", "depth_in_crop", "box"]},
                   training=training, parity_inputs=[(xv[1:2],), (xv[2:3],)] if len(xv) >= 3 else [(xv[:1],)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
