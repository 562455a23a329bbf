"""``dream2flow perceive``: what the configured perception makes of one image (and a video) (issue 13)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Run the configured perception on one image and, optionally, a video, and show what it found.

On the image (--rgb): the object's box (--box given, or the detector's best box for --prompt),
its mask (the segmenter, with D0 when --depth is given) and the thumb tip of a hand (the hand
backend). On a video (--video, frame 0 ~ the image): the thumb tip per frame, and how frame 0
sits on the image (the check `flow` applies). Backends come from --perception (default
hw/perception.toml).

Writes DIR/perception.json (backends role -> name, box [x0,y0,x1,y1] or null, box_score,
mask_pixels, thumb_px [x,y] or null, thumb_px_per_frame for a video, timings_s, errors) and
DIR/overlay.png (mask in green, box in yellow, thumb in red, the video's thumb track in blue).
A backend that runs but finds nothing is recorded (null, and `errors`), not an exit code; a role
that is asked for but has no backend exits 3.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from dream2flow.commands import seed_type
    from dream2flow.commands.flow import _box

    p = sub.add_parser("perceive", help="run the configured perception on an image (and video): box, mask, thumb",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rgb", required=True, metavar="IMG", help="the image (I0): PNG/JPEG")
    p.add_argument("--video", metavar="V", help="a video whose frame 0 is the image: .mp4/.avi or a folder of images")
    p.add_argument("--depth", metavar="D0", help="depth of the image: .npy metres or 16-bit .png millimetres")
    obj = p.add_mutually_exclusive_group()
    obj.add_argument("--prompt", metavar="TEXT", help="the object's name: the detector finds its box")
    obj.add_argument("--box", type=_box, metavar="x0,y0,x1,y1", help="the object's box (pixels)")
    p.add_argument("--perception", metavar="SPEC", default=None,
                   help="classical | models | a perception TOML (default hw/perception.toml)")
    p.add_argument("--fit", choices=("crop", "letterbox"), default=None,
                   help="a video of another aspect ratio than the image: crop or letterbox (see `flow --help`)")
    p.add_argument("--seed", type=seed_type(), default=0, metavar="S", help="seed of the classical segmenter (default 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (perception.json, overlay.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time

    import numpy as np

    from dream2flow.errors import PerceptionFailed
    from dream2flow.flow.perceived import GIVEN_BOX, detect_box
    from dream2flow.io_utils import read_depth, read_rgb, staged_output
    from dream2flow.log import progress
    from dream2flow.perception.factory import load_perception, thumb_in_image
    from dream2flow.perception.protocols import validate_box

    perception = load_perception(args.perception)
    rgb = read_rgb(args.rgb)
    H, W = rgb.shape[:2]
    depth = None
    if args.depth:
        depth = read_depth(args.depth)
        if depth.shape != (H, W):
            from dream2flow.errors import InvalidInput

            raise InvalidInput(f"depth {args.depth} is {depth.shape[1]}x{depth.shape[0]} but the image is {W}x{H}")
    video = fit = None
    if args.video:
        from dream2flow.video.decode import load_video_fit

        video, fit = load_video_fit(args.video, expect_size=(W, H), fit=args.fit)
    if args.prompt is not None:
        perception.ensure("detector")

    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    ran: dict[str, str | None] = {r: None for r in perception.backends()}
    box = score = None
    mask = None
    if args.box is not None:
        box = validate_box(args.box, W, H)
        ran["detector"] = GIVEN_BOX
    elif args.prompt is not None:
        t0 = time.perf_counter()
        try:
            box, score, ran["detector"] = detect_box(perception, rgb, args.prompt)
        except PerceptionFailed as exc:
            errors["detector"] = exc.message
            ran["detector"] = perception.plan("detector").name
        timings["detect"] = time.perf_counter() - t0
    if box is not None:
        seg = perception.segmenter(args.seed)
        ran["segmenter"] = seg.name
        t0 = time.perf_counter()
        try:
            mask = np.asarray(seg(rgb, box, depth_m=depth), bool)
        except PerceptionFailed as exc:
            errors["segmenter"] = exc.message
        timings["segment"] = time.perf_counter() - t0

    thumb = track = None
    if perception.has("hand"):
        hand = perception.hand()
        ran["hand"] = hand.name
        t0 = time.perf_counter()
        thumb = thumb_in_image(hand, rgb)
        timings["hand_image"] = time.perf_counter() - t0
        if video is not None:
            t0 = time.perf_counter()
            track = hand(video)
            timings["hand_video"] = time.perf_counter() - t0
    else:
        errors["hand"] = f"no hand backend ({perception.plan('hand').note})"

    first_frame = None
    if video is not None:
        from dream2flow.video.first_frame import measure_first_frame

        valid = fit.valid_rect() if fit is not None and fit.mode == "letterbox" else None
        first_frame = measure_first_frame(video.frames[0], rgb, valid_rect=valid).to_dict()

    def px(p):  # type: ignore[no-untyped-def]
        return None if p is None or not np.isfinite(p).all() else [round(float(p[0]), 2), round(float(p[1]), 2)]

    report = {
        "image": str(args.rgb), "image_size": [W, H], "prompt": args.prompt,
        "config": perception.config.source, "backends": ran, "configured": perception.backends(),
        "notes": perception.describe()["notes"],
        "box": None if box is None else [round(float(v), 2) for v in box],
        "box_score": None if score is None else round(float(score), 4),
        "mask_pixels": None if mask is None else int(mask.sum()),
        "thumb_px": px(thumb),
        "thumb_px_per_frame": None if video is None else (
            None if track is None else [px(p) for p in np.asarray(track)]),
        "video": None if video is None else {"path": str(args.video), "frames": video.num_frames,
                                             "fit": fit.to_dict() if fit is not None and not fit.identity else None,
                                             "first_frame": first_frame},
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "errors": errors,
    }
    with staged_output(args.out) as tmp:
        (tmp / "perception.json").write_text(json.dumps(report, indent=2) + "\n")
        _write_overlay(tmp / "overlay.png", rgb, box, score, mask, thumb, track, args.prompt)
    found = [f"box ({', '.join(f'{v:.0f}' for v in box)})" if box is not None else "no box",
             f"mask {int(mask.sum())} px" if mask is not None else "no mask",
             f"thumb ({thumb[0]:.0f}, {thumb[1]:.0f})" if thumb is not None else "no thumb"]
    if track is not None:
        found.append(f"thumb in {int(np.isfinite(np.asarray(track)).all(1).sum())}/{len(track)} frames")
    progress(f"perceive: {', '.join(found)} ({', '.join(f'{k}={v}' for k, v in ran.items() if v)}) -> {args.out}")
    return 0


def _write_overlay(path, rgb, box, score, mask, thumb, track, prompt):  # type: ignore[no-untyped-def]
    import cv2
    import numpy as np

    img = rgb.astype(np.float32)
    if mask is not None:
        img[mask] = 0.55 * img[mask] + 0.45 * np.array([0, 255, 0], np.float32)
    img = np.ascontiguousarray(img.clip(0, 255).astype(np.uint8)[:, :, ::-1])
    if box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (0, 220, 255), 2)
        label = (prompt or "box") + (f" {score:.2f}" if score is not None else "")
        cv2.putText(img, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 220, 255), 1, cv2.LINE_AA)
    if track is not None:
        pts = [p for p in np.asarray(track) if np.isfinite(p).all()]
        for a, b in zip(pts[:-1], pts[1:]):
            cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (255, 128, 0), 1, cv2.LINE_AA)
    if thumb is not None:
        c = (int(round(thumb[0])), int(round(thumb[1])))
        cv2.circle(img, c, 7, (0, 0, 255), 2, cv2.LINE_AA)
        cv2.drawMarker(img, c, (0, 0, 255), cv2.MARKER_CROSS, 8, 1)
    if not cv2.imwrite(str(path), img):  # pragma: no cover
        from dream2flow.errors import Dream2FlowError

        raise Dream2FlowError(f"could not write {path}")
