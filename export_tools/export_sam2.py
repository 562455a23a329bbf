"""SAM 2 (box-prompted segmentation) -> two ONNX files, split as usual so the heavy image encoder
runs once per image and the light decoder once per prompt:

- ``<name>_image_encoder.onnx``: ``pixel_values`` [1,3,S,S] (ImageNet-normalised RGB, the image
  resized to SxS) -> ``image_embed`` [1,C,S/16,S/16], ``high_res_feats_0`` [1,C/8,S/4,S/4],
  ``high_res_feats_1`` [1,C/4,S/8,S/8] (the decoder's skip features, already projected).
- ``<name>_mask_decoder.onnx``: those three + ``input_boxes`` [1,1,4] (x0,y0,x1,y1 in the SxS
  frame) -> ``masks`` [1,1,S/4,S/4] (low-res mask logits), ``iou_scores`` [1,1],
  ``object_score_logits`` [1,1]. Single-mask output (``multimask_output=False``), as SAM 2
  recommends for box prompts.

Official checkpoint: ``facebook/sam2.1-hiera-tiny`` (or -small/-base-plus/-large), Apache-2.0,
transformers ``Sam2Model`` layout (the PyPI ``sam2`` package needs a CUDA extension build and
Hydra configs; transformers' implementation is the same architecture and installs offline).

    python export_tools/export_sam2.py --checkpoint facebook/sam2.1-hiera-tiny --out exported_models
    python export_tools/export_sam2.py --tiny-random --out /tmp/models
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402

SCRIPT = "export_sam2.py"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
TINY_SIZE = 128


def tiny_config(S: int = TINY_SIZE) -> Any:
    from transformers import Sam2Config

    return Sam2Config(
        vision_config=dict(
            backbone_config=dict(hidden_size=8, num_attention_heads=1, image_size=[S, S], blocks_per_stage=[1, 1, 2, 1],
                                 embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 2, 2],
                                 window_size_per_stage=[8, 4, 4, 2], global_attention_blocks=[3],
                                 window_positional_embedding_background_size=[4, 4]),
            backbone_channel_list=[64, 32, 16, 8], backbone_feature_sizes=[[S // 4, S // 4], [S // 8, S // 8], [S // 16, S // 16]],
            fpn_hidden_size=32),
        prompt_encoder_config=dict(hidden_size=32, image_size=S, patch_size=16),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32))


def build_models(args: Any) -> tuple[Any, Any, int]:
    import torch
    from transformers import Sam2Model

    if args.tiny_random:
        common.seed_all(args.seed)
        model = Sam2Model(tiny_config())
        common.randomize_weights(model, args.seed)
    else:
        model = Sam2Model.from_pretrained(args.checkpoint)
    model.eval()
    S = int(model.config.prompt_encoder_config.image_size)

    class Encoder(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, pixel_values: Any) -> Any:
            e = self.m.get_image_embeddings(pixel_values)
            return e[2], e[0], e[1]

    class Decoder(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, image_embed: Any, high_res_feats_0: Any, high_res_feats_1: Any, input_boxes: Any) -> Any:
            o = self.m(image_embeddings=[high_res_feats_0, high_res_feats_1, image_embed], input_boxes=input_boxes,
                       multimask_output=False)
            return o.pred_masks[:, 0], o.iou_scores[:, 0], o.object_score_logits[:, 0]

    return Encoder(model).eval(), Decoder(model).eval(), S


def main(argv: Sequence[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = common.base_parser(__doc__.split("\n\n")[0], "sam2_1_hiera_tiny")
    args = p.parse_args(argv)
    if args.tiny_random:
        common.offline_hub()
    import torch

    enc, dec, S = build_models(args)
    out = Path(args.out)
    g = torch.Generator().manual_seed(args.seed + 1)
    enc_in, enc_out = ["pixel_values"], ["image_embed", "high_res_feats_0", "high_res_feats_1"]
    dec_in, dec_out = enc_out + ["input_boxes"], ["masks", "iou_scores", "object_score_logits"]

    def box(x0: float, y0: float, x1: float, y1: float) -> Any:
        return torch.tensor([[[x0 * S, y0 * S, x1 * S, y1 * S]]], dtype=torch.float32)

    x_trace = torch.randn(1, 3, S, S, generator=g)
    xs = [torch.randn(1, 3, S, S, generator=g) for _ in range(2)]
    boxes = [box(0.1, 0.2, 0.7, 0.8), box(0.4, 0.05, 0.95, 0.5)]
    enc_refs = [common.torch_outputs(enc, (x,), enc_out) for x in xs]
    dec_args = [tuple(torch.from_numpy(r[n]) for n in enc_out) + (b,) for r, b in zip(enc_refs, boxes)]
    dec_refs = [common.torch_outputs(dec, a, dec_out) for a in dec_args]
    trace_emb = common.torch_outputs(enc, (x_trace,), enc_out)
    enc_path = out / f"{args.name}_image_encoder.onnx"
    dec_path = out / f"{args.name}_mask_decoder.onnx"
    common.export_onnx(enc, (x_trace,), enc_path, input_names=enc_in, output_names=enc_out, opset=args.opset)
    common.export_onnx(dec, tuple(torch.from_numpy(trace_emb[n]) for n in enc_out) + (box(0.2, 0.3, 0.6, 0.9),),
                       dec_path, input_names=dec_in, output_names=dec_out, opset=args.opset)
    atol = args.atol if args.atol is not None else 1e-4
    rtol = args.rtol if args.rtol is not None else 1e-3
    p_enc = common.check_parity(f"{args.name}_image_encoder", [({"pixel_values": x.numpy()}, r) for x, r in zip(xs, enc_refs)],
                                atol=atol, rtol=rtol, onnx_path=enc_path)
    p_dec = common.check_parity(f"{args.name}_mask_decoder",
                                [({n: t.numpy() for n, t in zip(dec_in, a)}, r) for a, r in zip(dec_args, dec_refs)],
                                atol=atol, rtol=rtol, onnx_path=dec_path)
    src = ("tiny random Sam2Model (NOT the official weights)" if args.tiny_random else str(args.checkpoint))
    lic = "test artefact" if args.tiny_random else "Apache-2.0"
    cmd = common.command_line(SCRIPT, argv)
    pre = {"image_size": S, "mean": MEAN, "std": STD, "mask_threshold": 0.0, "decoder": f"{args.name}_mask_decoder"}
    e = common.register(common.manifest_path(args), name=f"{args.name}_image_encoder", role="segmenter_encoder",
                        onnx_path=enc_path, opset=args.opset, source_checkpoint=src, license=lic, export_command=cmd,
                        parity=p_enc, tiny_random=args.tiny_random, preprocess=pre)
    d = common.register(common.manifest_path(args), name=f"{args.name}_mask_decoder", role="segmenter_decoder",
                        onnx_path=dec_path, opset=args.opset, source_checkpoint=src, license=lic, export_command=cmd,
                        parity=p_dec, tiny_random=args.tiny_random, preprocess={"image_size": S, "mask_threshold": 0.0})
    return e, d


if __name__ == "__main__":
    main()
