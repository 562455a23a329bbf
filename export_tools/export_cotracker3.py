"""CoTracker3 (offline point tracker) -> ONNX: ``video`` [1,frames,3,384,512] float32 RGB 0..255
(resized to the model's resolution), ``queries`` [1,points,3] float32 (t, x, y) in that
resolution's pixels -> ``tracks`` [1,frames,points,2] (x, y, same pixels), ``visibility`` and
``confidence`` [1,frames,points] (probabilities; the runtime thresholds them).

Official checkpoint: ``scaled_offline.pth`` from the CoTracker authors (facebookresearch/co-tracker,
"CoTracker3"), licence CC-BY-NC-4.0 (non-commercial). The architecture is NOT on PyPI: this
script needs the ``cotracker`` package installed by the user from the authors' repository
(``pip install git+https://github.com/facebookresearch/co-tracker``) and a local checkpoint
file; it loads them without torch.hub. This repository does not vendor CoTracker's code.

NOT TESTED HERE: with no installable architecture, neither this script nor a real CoTracker3 ONNX
file could be run in CI. The runtime wrapper (``perception.onnx_tracker``) is tested against an
I/O fixture with CoTracker3's exact signature and trivial maths (``io_fixtures.py``), clearly
named as a fixture, never as CoTracker. See exported_models/README.md.

    python export_tools/export_cotracker3.py --checkpoint /models/scaled_offline.pth --out exported_models
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402

SCRIPT = "export_cotracker3.py"
MODEL_HW = (384, 512)  # CoTracker3's model_resolution


def build_model(checkpoint: str, window_len: int, iters: int) -> Any:
    import torch

    try:
        from cotracker.models.build_cotracker import build_cotracker  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit("CoTracker3's architecture is not installed: pip install "
                         "git+https://github.com/facebookresearch/co-tracker (not on PyPI), then re-run") from None
    if not Path(checkpoint).is_file():
        raise SystemExit(f"checkpoint file not found: {checkpoint} (download scaled_offline.pth from the CoTracker3 release)")
    model = build_cotracker(checkpoint, offline=True, window_len=window_len).eval()

    class Wrapper(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, video: Any, queries: Any) -> Any:
            tracks, vis, conf, _ = self.m(video=video, queries=queries, iters=iters)
            return tracks, vis, conf

    return Wrapper(model).eval()


def main(argv: Sequence[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = common.base_parser(__doc__.split("\n\n")[0], "cotracker3_offline")
    p.add_argument("--frames", type=int, default=48, help="frames in the tracing/parity samples")
    p.add_argument("--max-frames", type=int, default=96, help="TensorRT profile: most frames")
    p.add_argument("--max-points", type=int, default=512, help="TensorRT profile: most query points (incl. support grid)")
    p.add_argument("--window-len", type=int, default=60)
    p.add_argument("--iters", type=int, default=6)
    args = p.parse_args(argv)
    if args.tiny_random:
        raise SystemExit("no --tiny-random for CoTracker3: its architecture is not installable here, and a stand-in "
                         "would not be CoTracker (the runtime is tested with io_fixtures.py instead)")
    import torch

    model = build_model(args.checkpoint, args.window_len, args.iters)
    H, W = MODEL_HW
    out = Path(args.out)
    onnx_path = out / f"{args.name}.onnx"
    g = torch.Generator().manual_seed(args.seed + 1)

    def sample(T: int, N: int) -> tuple:
        video = torch.rand(1, T, 3, H, W, generator=g) * 255
        q = torch.stack([torch.zeros(N), torch.rand(N, generator=g) * (W - 1), torch.rand(N, generator=g) * (H - 1)], -1)
        return video, q[None]

    names_in, names_out = ["video", "queries"], ["tracks", "visibility", "confidence"]
    trace = sample(args.frames, 64)
    samples_t = [sample(args.frames, 100), sample(max(8, args.frames // 2), 37)]
    refs = [common.torch_outputs(model, s, names_out) for s in samples_t]
    common.export_onnx(model, trace, onnx_path, input_names=names_in, output_names=names_out,
                       dynamic_axes={"video": {1: "frames"}, "queries": {1: "points"}, "tracks": {1: "frames", 2: "points"},
                                     "visibility": {1: "frames", 2: "points"}, "confidence": {1: "frames", 2: "points"}},
                       opset=args.opset)
    parity = common.check_parity(args.name, [({n: t.numpy() for n, t in zip(names_in, s)}, r) for s, r in zip(samples_t, refs)],
                                 atol=args.atol if args.atol is not None else 1e-2,
                                 rtol=args.rtol if args.rtol is not None else 1e-3, onnx_path=onnx_path)
    prof = {lvl: {"video": [1, t, 3, H, W], "queries": [1, n, 3]}
            for lvl, t, n in (("min", 2, 1), ("opt", args.frames, 292), ("max", args.max_frames, args.max_points))}
    return common.register(
        common.manifest_path(args), name=args.name, role="point_tracker", onnx_path=onnx_path, opset=args.opset,
        source_checkpoint=str(args.checkpoint), license="CC-BY-NC-4.0 (CoTracker3 weights and code: non-commercial)",
        export_command=common.command_line(SCRIPT, argv), parity=parity,
        preprocess={"height": H, "width": W, "visibility_threshold": 0.9, "use_confidence": False, "support_grid": 6,
                    "max_frames": args.max_frames, "warmup_frames": 8, "warmup_points": 16},
        trt_profile=prof,
    )


if __name__ == "__main__":
    main()
