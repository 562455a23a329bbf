"""Depth Anything V2 (relative) -> ONNX: ``pixel_values`` [frames,3,H,W] (ImageNet-normalised RGB)
-> ``predicted_depth`` [frames,H,W] (relative inverse depth / disparity: larger = nearer).

Official checkpoint: ``depth-anything/Depth-Anything-V2-Small-hf`` (Apache-2.0; Base/Large are
CC-BY-NC-4.0), the transformers ``DepthAnythingForDepthEstimation`` layout. The input size is
fixed at export (default 518x686, i.e. 4:3 like a D435 frame, multiples of the 14-px patch) so
TensorRT gets a static spatial shape; only the frame batch is dynamic. The runtime wrapper
(``perception.onnx_depth``) turns disparity into relative depth.

Why per-frame Depth Anything and not Video Depth Anything: the latter's architecture is not in an
installable package, so it could not be exported or tested here; the flow stage's robust scale/
shift fit per video absorbs part of the per-frame inconsistency (documented in exported_models/README.md).

    python export_tools/export_depth_anything.py --checkpoint depth-anything/Depth-Anything-V2-Small-hf --out exported_models
    python export_tools/export_depth_anything.py --tiny-random --out /tmp/models      # tests / CI
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402

SCRIPT = "export_depth_anything.py"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def tiny_config() -> Any:
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=518, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
                            apply_layernorm=True)
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                               fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative")


def build_model(args: Any) -> Any:
    import torch
    from transformers import DepthAnythingForDepthEstimation

    if args.tiny_random:
        common.seed_all(args.seed)
        model = DepthAnythingForDepthEstimation(tiny_config())
        common.randomize_weights(model, args.seed)
        # the head ends in ReLU: lift its last bias so a random net's disparity is mostly positive
        # (a trained model's is), instead of zero (= invalid) on half the image
        with torch.no_grad():
            model.head.conv3.bias.fill_(1.0)
    else:
        model = DepthAnythingForDepthEstimation.from_pretrained(args.checkpoint)
        if getattr(model.config, "depth_estimation_type", "relative") != "relative":
            raise SystemExit("this exporter is for the relative (disparity) Depth Anything models")

    class Wrapper(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, pixel_values: Any) -> Any:
            return self.m(pixel_values=pixel_values).predicted_depth

    return Wrapper(model).eval()


def main(argv: Sequence[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = common.base_parser(__doc__.split("\n\n")[0], "depth_anything_v2_small")
    p.add_argument("--height", type=int, default=None, help="input height (multiple of 14; default 518, tiny 70)")
    p.add_argument("--width", type=int, default=None, help="input width (multiple of 14; default 686, tiny 98)")
    p.add_argument("--max-batch", type=int, default=16, help="TensorRT profile: most frames per run")
    args = p.parse_args(argv)
    if args.tiny_random:
        common.offline_hub()
    import torch

    H = args.height or (70 if args.tiny_random else 518)
    W = args.width or (98 if args.tiny_random else 686)
    if H % 14 or W % 14:
        raise SystemExit(f"--height/--width must be multiples of 14, got {H}x{W}")
    model = build_model(args)
    out = Path(args.out)
    onnx_path = out / f"{args.name}.onnx"
    g = torch.Generator().manual_seed(args.seed + 1)
    trace = (torch.randn(2, 3, H, W, generator=g),)
    names_in, names_out = ["pixel_values"], ["predicted_depth"]
    # parity on fresh samples, eager outputs computed before (and independently of) the export
    samples_t = [torch.randn(1, 3, H, W, generator=g), torch.randn(3, 3, H, W, generator=g)]
    refs = [common.torch_outputs(model, (x,), names_out) for x in samples_t]
    common.export_onnx(model, trace, onnx_path, input_names=names_in, output_names=names_out,
                       dynamic_axes={"pixel_values": {0: "frames"}, "predicted_depth": {0: "frames"}}, opset=args.opset)
    samples = [({"pixel_values": x.numpy()}, r) for x, r in zip(samples_t, refs)]
    parity = common.check_parity(args.name, samples, atol=args.atol if args.atol is not None else 1e-4,
                                 rtol=args.rtol if args.rtol is not None else 1e-3, onnx_path=onnx_path)
    opt = min(8, args.max_batch)
    return common.register(
        common.manifest_path(args), name=args.name, role="video_depth", onnx_path=onnx_path, opset=args.opset,
        source_checkpoint="tiny random DepthAnythingForDepthEstimation (NOT the official weights)" if args.tiny_random
        else str(args.checkpoint),
        license="test artefact" if args.tiny_random else "Apache-2.0 (Depth-Anything-V2-Small); Base/Large: CC-BY-NC-4.0",
        export_command=common.command_line(SCRIPT, argv), parity=parity, tiny_random=args.tiny_random,
        preprocess={"height": H, "width": W, "mean": MEAN, "std": STD, "output_kind": "relative_disparity",
                    "max_batch": int(args.max_batch)},
        trt_profile={"min": {"pixel_values": [1, 3, H, W]}, "opt": {"pixel_values": [opt, 3, H, W]},
                     "max": {"pixel_values": [args.max_batch, 3, H, W]}},
    )


if __name__ == "__main__":
    main()
