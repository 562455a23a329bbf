"""Train the sim-trained closed-vocabulary detector (``sim_detector``): image + prompt -> boxes.

Classes are the simulated task objects (``sim_data.CLASSES``): ``bread``, ``drawer`` (the drawer's
moving part) and ``hinged_door`` (the oven's / cabinet's door). The prompt is mapped to a class
by the vocabulary written into the manifest entry (``VOCABULARY`` below); the runtime wrapper
(``dream2flow.perception.sim_models.SimDetector``) refuses any other prompt, naming the
vocabulary. The target box is the object's tight box (its visible mask's bounding box).

Model: ``sim_nets.DetNet`` on the image resized to 160x120 (INTER_AREA), CenterNet-style
outputs at stride 4: per-class centre heatmaps (focal loss on Gaussian targets), log box size in
input pixels and the centre's offset within its cell (L1 at the centre cell).

    python export_tools/train_sim_detector.py
    python export_tools/train_sim_detector.py --quick --out /tmp/q
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

NAME = "sim_detector"
WIDTH, HEIGHT, STRIDE = 160, 120, 4
WIDTHS = (16, 24, 32, 48, 64)  # U-Net channels per level (sim_nets.DetNet)
# prompt phrase -> class (the runtime also accepts the class names themselves)
VOCABULARY = {
    "bread": "bread", "piece of bread": "bread", "bread slice": "bread", "slice of bread": "bread", "loaf": "bread",
    "loaf of bread": "bread", "toast": "bread",
    "drawer": "drawer", "drawer front": "drawer", "cabinet drawer": "drawer",
    "oven door": "hinged_door", "oven": "hinged_door", "microwave door": "hinged_door", "microwave": "hinged_door",
    "door": "hinged_door", "cabinet door": "hinged_door", "hinged door": "hinged_door",
}
BOX_THRESHOLD = 0.3


def prepare(scenes: Sequence[sim_data.SceneFrames]) -> dict[str, np.ndarray]:
    """rgb [N,H,W,3] at the model's input size, box [N,4] in input pixels (NaN: not visible), class [N]."""
    from dream2flow.perception.onnx_preprocess import resize

    rgb, box, cls = [], [], []
    for s in scenes:
        H, W = s.rgb.shape[1:3]
        scale = np.array([WIDTH / W, HEIGHT / H, WIDTH / W, HEIGHT / H], np.float32)
        for f in range(len(s.rgb)):
            rgb.append(resize(s.rgb[f], WIDTH, HEIGHT))
            box.append(s.box[f] * scale)
            cls.append(s.cls)
    return {"rgb": np.stack(rgb), "box": np.stack(box), "cls": np.asarray(cls, np.int64)}


def targets(boxes: np.ndarray, classes: np.ndarray, C: int) -> tuple[np.ndarray, ...]:
    """Heatmaps [B,C,h,w] (Gaussian at each centre), size/offset targets [B,2,h,w] and their mask [B,h,w]."""
    B = len(boxes)
    h, w = HEIGHT // STRIDE, WIDTH // STRIDE
    heat = np.zeros((B, C, h, w), np.float32)
    size = np.zeros((B, 2, h, w), np.float32)
    off = np.zeros((B, 2, h, w), np.float32)
    reg = np.zeros((B, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i, (b, c) in enumerate(zip(boxes, classes)):
        if not np.isfinite(b).all():
            continue
        cx, cy = (b[0] + b[2]) / 2 / STRIDE, (b[1] + b[3]) / 2 / STRIDE
        ix, iy = int(np.clip(np.floor(cx), 0, w - 1)), int(np.clip(np.floor(cy), 0, h - 1))
        bw, bh = max(1.0, b[2] - b[0]), max(1.0, b[3] - b[1])
        sig_x, sig_y = max(0.6, bw / STRIDE / 6), max(0.6, bh / STRIDE / 6)
        g = np.exp(-0.5 * (((xx - ix) / sig_x) ** 2 + ((yy - iy) / sig_y) ** 2))
        heat[i, c] = np.maximum(heat[i, c], g)
        heat[i, c, iy, ix] = 1.0
        size[i, :, iy, ix] = np.log([bw, bh])
        off[i, :, iy, ix] = [cx - ix, cy - iy]
        reg[i, iy, ix] = 1.0
    return heat, size, off, reg


def focal_loss(logits: Any, heat: Any) -> Any:
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects."""
    import torch

    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * neg
    n = pos.sum().clamp_min(1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / n


def augment(rgb: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random scale (0.85-1.15) and shift (+-12 % of the image) of one image and its box (the camera's
    placement varies on a real cell); uncovered borders are replicated."""
    import cv2

    s = float(rng.uniform(0.85, 1.15))
    tx, ty = rng.uniform(-0.12, 0.12) * WIDTH, rng.uniform(-0.12, 0.12) * HEIGHT
    M = np.array([[s, 0, (1 - s) * WIDTH / 2 + tx], [0, s, (1 - s) * HEIGHT / 2 + ty]], np.float64)
    out = cv2.warpAffine(rgb, M, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if not np.isfinite(box).all():
        return out, box
    b = np.array([box[0] * s + M[0, 2], box[1] * s + M[1, 2], box[2] * s + M[0, 2], box[3] * s + M[1, 2]])
    area = (b[2] - b[0]) * (b[3] - b[1])
    bc = np.clip(b, 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
    if (bc[2] - bc[0]) * (bc[3] - bc[1]) < 0.6 * area:  # mostly pushed out of view: no positive
        return out, np.full(4, np.nan, np.float32)
    return out, bc.astype(np.float32)


def decode_top(heat_logits: np.ndarray, size: np.ndarray, off: np.ndarray, cls: int) -> tuple[np.ndarray, float]:
    """The best-scoring box of class ``cls`` in input pixels, and its score."""
    h = 1 / (1 + np.exp(-heat_logits[cls]))
    iy, ix = np.unravel_index(int(np.argmax(h)), h.shape)
    cx, cy = (ix + off[0, iy, ix]) * STRIDE, (iy + off[1, iy, ix]) * STRIDE
    bw, bh = np.exp(size[0, iy, ix]), np.exp(size[1, iy, ix])
    return np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]), float(h[iy, ix])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return float(inter / max(1e-9, (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def validate(model: Any, va: dict[str, np.ndarray], C: int) -> dict[str, float]:
    """Per image and class: the top box above threshold (or none). Precision = correct / reported
    (correct: the scene's class with IoU >= 0.5), recall over the scenes' objects, mean IoU of the
    right class's top box."""
    import torch

    model.eval()
    tp = fp = fn = 0
    ious = []
    for s in range(0, len(va["rgb"]), 32):
        x = torch.from_numpy(sim_train.normalise(va["rgb"][s:s + 32]))
        with torch.no_grad():
            hl, sz, of = (t.numpy() for t in model(x))
        for k in range(len(x)):
            i = s + k
            gt = va["box"][i]
            for c in range(C):
                b, score = decode_top(hl[k], sz[k], of[k], c)
                truth = c == va["cls"][i] and np.isfinite(gt).all()
                if truth:
                    ious.append(box_iou(b, gt))
                if score >= BOX_THRESHOLD:
                    if truth and box_iou(b, gt) >= 0.5:
                        tp += 1
                    else:
                        fp += 1
                        fn += int(truth)
                elif truth:
                    fn += 1
    return {"precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn), "mean_iou": float(np.mean(ious)),
            "images": int(len(va["rgb"]))}


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.nn import functional as F

    from export_tools.sim_nets import DetNet, count_params

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = sim_train.parser(__doc__.split("\n\n")[0], steps=800, batch=16, per_task=40, val_per_task=10)
    args = sim_train.finish_args(ap, ap.parse_args(argv))
    name = args.name or NAME
    C = len(sim_data.CLASSES)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    train_scenes = sim_train.load("train", args.per_task, args.cache, task_scenes=args.task_scenes)
    val_scenes = sim_train.load("val", args.val_per_task, args.cache)
    tr, va = prepare(train_scenes), prepare(val_scenes)
    t_data = time.perf_counter() - t_start
    model = DetNet(C, WIDTHS)
    with torch.no_grad():  # start with a low prior on every cell (CenterNet's -2.19 bias)
        model.net.head.bias[:C].fill_(-2.19)
    print(f"[det] {count_params(model)} parameters; {len(tr['rgb'])} training images, {len(va['rgb'])} validation")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    t0 = time.perf_counter()
    log_every = max(1, args.steps // 20)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = sim_train.cosine_lr(step, args.steps, args.lr, warmup=min(100, args.steps // 10 + 1))
        idx = rng.integers(0, len(tr["rgb"]), size=args.batch)
        pairs = [augment(tr["rgb"][i], tr["box"][i], rng) for i in idx]
        imgs = np.stack([p[0] for p in pairs])
        boxes = np.stack([p[1] for p in pairs])
        heat, size, off, reg = (torch.from_numpy(a) for a in targets(boxes, tr["cls"][idx], C))
        x = sim_train.photometric(torch.from_numpy(sim_train.normalise(imgs)), gen)
        model.train()
        hl, sz, of = model(x)
        n = reg.sum().clamp_min(1.0)
        l_heat = focal_loss(hl, heat)
        l_size = (F.l1_loss(sz, size, reduction="none").sum(1) * reg).sum() / n
        l_off = (F.l1_loss(of, off, reduction="none").sum(1) * reg).sum() / n
        loss = l_heat + l_size + l_off
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == args.steps - 1:
            print(f"[det] step {step + 1}/{args.steps} loss {float(loss):.4f} (heat {float(l_heat):.3f} size "
                  f"{float(l_size):.3f} off {float(l_off):.3f}; {time.perf_counter() - t0:.0f} s)", flush=True)
    t_train = time.perf_counter() - t0
    val = validate(model, va, C)
    print(f"[det] validation: {val}")
    wall = time.perf_counter() - t_start
    training = {
        "trained_on": "dream2flow.sim renders (robot-camera views and generated-video frames along the tasks' "
                      "object paths; lighting and camera-pose jitter; random scale/shift)",
        "tasks": sorted({s.task for s in train_scenes}), "train_seeds": sim_train.seeds_of(train_scenes),
        "val_seeds": sim_train.seeds_of(val_scenes), "train_images": int(len(tr["rgb"])),
        "steps": args.steps, "batch": args.batch, "widths": list(WIDTHS), "seed": args.seed, "quick": bool(args.quick),
        "wall_time_s": round(wall, 1), "train_time_s": round(t_train, 1), "data_time_s": round(t_data, 1),
        "machine": "2-core CPU (torch CPU threads: %d)" % args.threads,
        "val_metrics": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in val.items()},
        "loss": "CenterNet focal loss on centre heatmaps + L1 on log box size and centre offset",
    }
    x = sim_train.normalise(va["rgb"][:3])
    sim_train.ship(model, (torch.from_numpy(x[:1]),), name=name, role="detector", out=args.out,
                   script="train_sim_detector.py", argv=argv, input_names=["pixel_values"],
                   output_names=["heatmap_logits", "box_size_log", "center_offset"],
                   dynamic_axes={}, training=training, parity_inputs=[(x[1:2],), (x[2:3],)],
                   preprocess={"wrapper": "sim_detector", "height": HEIGHT, "width": WIDTH, "stride": STRIDE,
                               "mean": list(sim_train.MEAN), "std": list(sim_train.STD),
                               "classes": list(sim_data.CLASSES), "vocabulary": dict(VOCABULARY),
                               "box_threshold": BOX_THRESHOLD})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
