"""Hand keypoints (thumb tip) with ViTPose -> ONNX: ``pixel_values`` [crops,3,256,192] (ImageNet-
normalised RGB crops around the hand/person) -> ``heatmaps`` [crops,K,64,48].

Why ViTPose: its architecture installs offline (transformers ``VitPoseForPoseEstimation``), it is
a plain ViT + a light decoder (exports and builds in TensorRT without custom ops), and it is
trained on COCO-WholeBody (133 keypoints, 21 per hand) by its authors. MediaPipe's hand landmark
model would be the usual choice but ships as TFLite, not ONNX, and has no PyTorch source to export.

Keypoint layouts (``--layout``, recorded in the manifest; the runtime reads the thumb-tip
channels from it): ``coco_wholebody`` (K=133; thumb tips at 95 = left hand, 116 = right hand)
or ``hand21`` (K=21, a hand-only head; thumb tip at 4).

Official weights: the ViTPose authors' whole-body checkpoints (ViTAE-Transformer/ViTPose,
Apache-2.0) are published in their mmpose layout; the transformers-layout checkpoints on the hub
(``usyd-community/vitpose-*``) have body-only (COCO-17) heads, which have no thumb. Point
``--checkpoint`` at a transformers-layout folder with a whole-body or hand head (converted by the
user); that conversion was not done or tested here (see exported_models/README.md).

    python export_tools/export_hand_vitpose.py --checkpoint /models/vitpose-b-wholebody-hf --layout coco_wholebody --out exported_models
    python export_tools/export_hand_vitpose.py --tiny-random --out /tmp/models
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402

SCRIPT = "export_hand_vitpose.py"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
LAYOUTS = {"coco_wholebody": (133, [95, 116]), "hand21": (21, [4])}


def tiny_config(num_keypoints: int) -> Any:
    from transformers import VitPoseBackboneConfig, VitPoseConfig

    backbone = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[8, 8], hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, mlp_ratio=2, out_indices=[2])
    return VitPoseConfig(backbone_config=backbone, num_labels=num_keypoints, scale_factor=4, use_simple_decoder=True)


def build_model(args: Any, num_keypoints: int) -> Any:
    import torch
    from transformers import VitPoseForPoseEstimation

    if args.tiny_random:
        common.seed_all(args.seed)
        model = VitPoseForPoseEstimation(tiny_config(num_keypoints))
        common.randomize_weights(model, args.seed)
    else:
        model = VitPoseForPoseEstimation.from_pretrained(args.checkpoint)
    experts = int(getattr(model.config.backbone_config, "num_experts", 1))
    dataset_index = args.dataset_index

    class Wrapper(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, pixel_values: Any) -> Any:
            kw = {}
            if experts > 1:  # ViTPose+ mixture of experts: one fixed expert (dataset) per export
                kw["dataset_index"] = torch.full((pixel_values.shape[0],), dataset_index, dtype=torch.long)
            return self.m(pixel_values=pixel_values, **kw).heatmaps

    return Wrapper(model).eval()


def main(argv: Sequence[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = common.base_parser(__doc__.split("\n\n")[0], "vitpose_b_wholebody")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="coco_wholebody")
    p.add_argument("--dataset-index", type=int, default=0, help="ViTPose+ (MoE) expert to export")
    p.add_argument("--max-batch", type=int, default=16)
    args = p.parse_args(argv)
    if args.tiny_random:
        common.offline_hub()
    import torch

    K, thumbs = LAYOUTS[args.layout]
    model = build_model(args, K)
    size = model.m.config.backbone_config.image_size
    H, W = int(size[0]), int(size[1])
    out = Path(args.out)
    onnx_path = out / f"{args.name}.onnx"
    g = torch.Generator().manual_seed(args.seed + 1)
    trace = (torch.randn(2, 3, H, W, generator=g),)
    xs = [torch.randn(1, 3, H, W, generator=g), torch.randn(4, 3, H, W, generator=g)]
    refs = [common.torch_outputs(model, (x,), ["heatmaps"]) for x in xs]
    got_k = refs[0]["heatmaps"].shape[1]
    if got_k != K:
        raise SystemExit(f"checkpoint has {got_k} keypoints but layout '{args.layout}' needs {K}")
    common.export_onnx(model, trace, onnx_path, input_names=["pixel_values"], output_names=["heatmaps"],
                       dynamic_axes={"pixel_values": {0: "crops"}, "heatmaps": {0: "crops"}}, opset=args.opset)
    parity = common.check_parity(args.name, [({"pixel_values": x.numpy()}, r) for x, r in zip(xs, refs)],
                                 atol=args.atol if args.atol is not None else 1e-4,
                                 rtol=args.rtol if args.rtol is not None else 1e-3, onnx_path=onnx_path)
    opt = min(8, args.max_batch)
    return common.register(
        common.manifest_path(args), name=args.name, role="hand_keypoints", onnx_path=onnx_path, opset=args.opset,
        source_checkpoint="tiny random VitPoseForPoseEstimation (NOT the official weights)" if args.tiny_random
        else str(args.checkpoint),
        license="test artefact" if args.tiny_random else "Apache-2.0 (ViTPose)",
        export_command=common.command_line(SCRIPT, argv), parity=parity, tiny_random=args.tiny_random,
        preprocess={"height": H, "width": W, "mean": MEAN, "std": STD, "layout": args.layout, "num_keypoints": K,
                    "thumb_tip_channels": thumbs, "min_confidence": 0.3, "box_expand": 1.25, "max_batch": args.max_batch},
        trt_profile={"min": {"pixel_values": [1, 3, H, W]}, "opt": {"pixel_values": [opt, 3, H, W]},
                     "max": {"pixel_values": [args.max_batch, 3, H, W]}},
    )


if __name__ == "__main__":
    main()
