"""Train the sim-trained video-depth model (``sim_video_depth``): RGB frame -> relative depth.

A small U-Net (``sim_nets.DepthNet``) at 256x192 (the runtime resizes 640x480 frames with
INTER_AREA and upsamples the output bilinearly; training sees 128x128 crops of such frames, the
net being fully convolutional), trained on ``sim_data`` renders with a
scale-and-shift-invariant loss: per image, the closed-form (relative) least-squares (s, b) maps
the prediction onto the metric depth, and the loss is the mean |s·pred + b − depth| / depth plus
a multi-scale gradient-matching term on the same relative residual (sharp depth edges: the flow stage
rejects points whose depth neighbours jump). Object pixels weigh 4x (the flow lives there).
The output is therefore an unknown affine map of metric depth, larger = farther, exactly the
``VideoDepth`` contract; the flow stage fits the map to D0.

    python export_tools/train_sim_depth.py                 # full run (data cached in /tmp/d2f_simdata)
    python export_tools/train_sim_depth.py --quick --out /tmp/q   # ~1 minute: proves the recipe

Metrics (validation seeds 50000+, after per-image scale/shift alignment): AbsRel, delta<1.25,
object-only AbsRel; the shipped entry records them with the command, seeds and wall time.
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

NAME = "sim_video_depth"
WIDTH, HEIGHT = 256, 192
WIDTHS = (16, 24, 32, 48, 64)  # U-Net channels per level (sim_nets.DepthNet)
CROP = 128  # training crops (px of the model's input): the net is fully convolutional; crops cost 1/3 of a frame
OBJECT_WEIGHT = 4.0
STATIC_FIT_WEIGHT = 1.0  # the object under the static scene's fit (loss_fn)


def prepare(scenes: Sequence[sim_data.SceneFrames]) -> dict[str, np.ndarray]:
    """Frames at the model's input size: rgb [N,H,W,3] uint8 (INTER_AREA, as the runtime),
    depth [N,H,W] float32 m (nearest: no depths mixed across edges), object mask [N,H,W] bool."""
    import cv2

    from dream2flow.perception.onnx_preprocess import resize

    rgb, depth, obj = [], [], []
    for s in scenes:
        for f in range(len(s.rgb)):
            rgb.append(resize(s.rgb[f], WIDTH, HEIGHT))
            depth.append(cv2.resize(s.depth[f].astype(np.float32), (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST))
            obj.append(cv2.resize(s.mask[f].astype(np.uint8), (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST) > 0)
    return {"rgb": np.stack(rgb), "depth": np.stack(depth), "obj": np.stack(obj)}


def crops(data: dict[str, np.ndarray], idx: np.ndarray, rng: np.random.Generator, size: int = CROP
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ``size`` x ``size`` crops of the frames ``idx`` (half of them centred near the object, so the
    object's depth, which the flow needs, is seen often): rgb, depth, object mask."""
    H, W = data["depth"].shape[1:]
    rgb, depth, obj = [], [], []
    for i in idx:
        ys, xs = np.nonzero(data["obj"][i])
        if xs.size and rng.random() < 0.5:
            k = int(rng.integers(xs.size))
            x0 = int(np.clip(xs[k] - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, W - size))
            y0 = int(np.clip(ys[k] - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, H - size))
        else:
            x0, y0 = int(rng.integers(0, W - size + 1)), int(rng.integers(0, H - size + 1))
        sl = (int(i), slice(y0, y0 + size), slice(x0, x0 + size))
        rgb.append(data["rgb"][sl])
        depth.append(data["depth"][sl])
        obj.append(data["obj"][sl])
    return np.stack(rgb), np.stack(depth), np.stack(obj)


def align_ls(pred: Any, gt: Any, w: Any) -> tuple[Any, Any]:
    """Per image weighted least squares (s, b) with s·pred + b ≈ gt (torch, differentiable)."""
    sw = w.sum((1, 2)).clamp_min(1e-6)
    mp = (w * pred).sum((1, 2)) / sw
    mg = (w * gt).sum((1, 2)) / sw
    dp = pred - mp[:, None, None]
    cov = (w * dp * (gt - mg[:, None, None])).sum((1, 2))
    var = (w * dp * dp).sum((1, 2)).clamp_min(1e-9)
    s = cov / var
    return s, mg - s * mp


def loss_fn(pred: Any, gt: Any, obj: Any) -> tuple[Any, dict[str, float]]:
    import torch
    from torch.nn import functional as F

    valid = (gt > 0).float()
    inv = valid / gt.clamp_min(0.05)  # relative errors: far pixels (the floor beyond the table) weigh less
    w = valid * (1.0 + (OBJECT_WEIGHT - 1.0) * obj.float())
    s, b = align_ls(pred, gt, w * inv * inv)
    r = (s[:, None, None] * pred + b[:, None, None] - gt) * inv
    l1 = (w * r.abs()).sum() / w.sum().clamp_min(1e-6)
    grad = torch.zeros((), dtype=pred.dtype)
    rr, vv = r[:, None], valid[:, None]
    for k in range(4):
        if k:
            rr = F.avg_pool2d(rr, 2)
            vv = (F.avg_pool2d(vv, 2) > 0.999).float()
            rr = rr * vv
        gx = (rr[..., :, 1:] - rr[..., :, :-1]).abs() * vv[..., :, 1:] * vv[..., :, :-1]
        gy = (rr[..., 1:, :] - rr[..., :-1, :]).abs() * vv[..., 1:, :] * vv[..., :-1, :]
        grad = grad + (gx.sum() + gy.sum()) / vv.sum().clamp_min(1.0)
    # What the flow stage needs (flow.align: the static scene's fit scales the object): the object's
    # depth right under an (s, b) fitted on the rest of the image alone
    bg = valid * (1.0 - obj.float())
    sb, bb = align_ls(pred, gt, bg * inv * inv)
    ro = (sb[:, None, None] * pred + bb[:, None, None] - gt) * inv
    wo = valid * obj.float()
    has = (wo.sum((1, 2)) > 20) & (bg.sum((1, 2)) > 200)
    l_obj = ((wo * ro.abs()).sum((1, 2)) / wo.sum((1, 2)).clamp_min(1.0) * has.float()).sum() / has.sum().clamp_min(1)
    total = l1 + 0.5 * grad + STATIC_FIT_WEIGHT * l_obj
    return total, {"l1_rel": float(l1.detach()), "grad": float(grad.detach()), "obj_static": float(l_obj.detach())}


def metrics(pred: np.ndarray, gt: np.ndarray, obj: np.ndarray) -> dict[str, float]:
    """AbsRel, delta<1.25 after per-image least-squares scale/shift (all valid pixels), the
    object pixels' AbsRel under that same fit and under a fit on the other pixels alone (how the
    flow stage scales the object); means over images."""
    absrel, d125, obj_absrel, obj_static = [], [], [], []
    for p, g, o in zip(pred, gt, obj):
        v = g > 0
        A = np.stack([p[v], np.ones(int(v.sum()))], 1).astype(np.float64)
        s, b = np.linalg.lstsq(A, g[v].astype(np.float64), rcond=None)[0]
        a = s * p + b
        ratio = np.maximum(a[v], 1e-3) / g[v]
        absrel.append(float(np.mean(np.abs(a[v] - g[v]) / g[v])))
        d125.append(float(np.mean(np.maximum(ratio, 1 / ratio) < 1.25)))
        ov = v & o
        if ov.sum() > 10:
            obj_absrel.append(float(np.mean(np.abs(a[ov] - g[ov]) / g[ov])))
            bv = v & ~o
            A = np.stack([p[bv], np.ones(int(bv.sum()))], 1).astype(np.float64)
            sb, bb = np.linalg.lstsq(A, g[bv].astype(np.float64), rcond=None)[0]
            obj_static.append(float(np.mean(np.abs(sb * p[ov] + bb - g[ov]) / g[ov])))
    return {"absrel": float(np.mean(absrel)), "delta125": float(np.mean(d125)),
            "object_absrel": float(np.mean(obj_absrel)) if obj_absrel else float("nan"),
            "object_absrel_static_fit": float(np.mean(obj_static)) if obj_static else float("nan"),
            "images": len(absrel)}


def predict(model: Any, rgb: np.ndarray, batch: int = 16) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rgb), batch):
            out.append(model(torch.from_numpy(sim_train.normalise(rgb[i:i + batch]))).numpy())
    return np.concatenate(out)


def orient(model: Any, data: dict[str, np.ndarray]) -> bool:
    """The scale-and-shift-invariant loss leaves the output's sign free (a negative per-image s fits as
    well), so a run may come out predicting inverse depth. The contract is larger = farther: where most
    validation frames fit with s < 0, the 1x1 output head's weight and bias are negated (the output is
    then exactly negated: everything after the head is linear). Returns whether it flipped."""
    import torch

    pred = predict(model, data["rgb"])
    signs = []
    for p, g in zip(pred, data["depth"]):
        v = g > 0
        A = np.stack([p[v], np.ones(int(v.sum()))], 1).astype(np.float64)
        signs.append(np.sign(np.linalg.lstsq(A, g[v].astype(np.float64), rcond=None)[0][0]))
    if np.mean(signs) >= 0:
        return False
    with torch.no_grad():
        model.net.head.weight.neg_()
        model.net.head.bias.neg_()
    return True


def main(argv: list[str] | None = None) -> int:
    import torch

    from export_tools.sim_nets import DepthNet, count_params

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = sim_train.parser(__doc__.split("\n\n")[0], steps=3000, batch=8, per_task=25, val_per_task=3)
    args = sim_train.finish_args(ap, ap.parse_args(argv))
    name = args.name or NAME
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    train_scenes = sim_train.load("train", args.per_task, args.cache, task_scenes=args.task_scenes)
    val_scenes = sim_train.load("val", args.val_per_task, args.cache)
    tr, va = prepare(train_scenes), prepare(val_scenes)
    t_data = time.perf_counter() - t_start
    model = DepthNet(WIDTHS)
    print(f"[depth] {count_params(model)} parameters; {len(tr['rgb'])} training frames, {len(va['rgb'])} validation")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    x_all = tr["rgb"]
    t0 = time.perf_counter()
    log_every = max(1, args.steps // 20)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = sim_train.cosine_lr(step, args.steps, args.lr, warmup=min(100, args.steps // 10 + 1))
        idx = rng.integers(0, len(x_all), size=args.batch)
        rgb_b, depth_b, obj_b = crops(tr, idx, rng)
        x = sim_train.photometric(torch.from_numpy(sim_train.normalise(rgb_b)), gen)
        gt = torch.from_numpy(depth_b)
        obj = torch.from_numpy(obj_b)
        model.train()
        loss, parts = loss_fn(model(x), gt, obj)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == args.steps - 1:
            print(f"[depth] step {step + 1}/{args.steps} loss {float(loss.detach()):.4f} rel {100 * parts['l1_rel']:.2f} % "
                  f"object|static {100 * parts['obj_static']:.2f} % "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    t_train = time.perf_counter() - t0
    flipped = orient(model, va)
    if flipped:
        print("[depth] the output came out as inverse depth (negative per-image scale on the validation frames): "
              "head negated (exact), larger = farther")
    val = metrics(predict(model, va["rgb"]), va["depth"], va["obj"])
    print(f"[depth] validation: {val}")
    example = torch.from_numpy(sim_train.normalise(va["rgb"][:1]))
    parity = [(sim_train.normalise(va["rgb"][i:i + 2]),) for i in (1, len(va["rgb"]) - 2)]
    wall = time.perf_counter() - t_start
    training = {
        "trained_on": "dream2flow.sim renders (robot-camera views and generated-video frames along the tasks' "
                      "object paths; lighting and camera-pose jitter)",
        "tasks": sorted({s.task for s in train_scenes}), "train_seeds": sim_train.seeds_of(train_scenes),
        "val_seeds": sim_train.seeds_of(val_scenes), "train_frames": int(len(tr["rgb"])),
        "steps": args.steps, "batch": args.batch, "output_negated": bool(flipped), "crop_px": CROP, "widths": list(WIDTHS), "seed": args.seed, "quick": bool(args.quick),
        "wall_time_s": round(wall, 1), "train_time_s": round(t_train, 1), "data_time_s": round(t_data, 1),
        "machine": "2-core CPU (torch CPU threads: %d)" % args.threads,
        "val_metrics": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in val.items()},
        "loss": "scale-and-shift-invariant relative L1 (per-image least-squares s, b) + 0.5 x multi-scale gradient "
                "matching; "
                f"object pixels x{OBJECT_WEIGHT:g}; + {STATIC_FIT_WEIGHT:g} x the object's relative L1 under an (s, b) "
                "fitted on the other pixels alone (the flow stage scales the object by the static scene)",
    }
    sim_train.ship(model, (example,), name=name, role="video_depth", out=args.out, script="train_sim_depth.py",
                   argv=argv, input_names=["pixel_values"], output_names=["relative_depth"],
                   dynamic_axes={"pixel_values": {0: "frames"}, "relative_depth": {0: "frames"}},
                   preprocess={"wrapper": "sim_depth", "height": HEIGHT, "width": WIDTH, "mean": list(sim_train.MEAN),
                               "std": list(sim_train.STD), "output_kind": "relative_depth", "max_batch": 8,
                               "resize": "INTER_AREA in, bilinear out"},
                   training=training, parity_inputs=parity)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
