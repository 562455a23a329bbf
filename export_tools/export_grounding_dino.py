"""Grounding DINO (open-vocabulary detector) -> ONNX.

Inputs: ``pixel_values`` [1,3,H,W] (ImageNet-normalised RGB, the image letterboxed into a fixed
HxW canvas), ``pixel_mask`` [1,H,W] int64 (1 = real pixels), ``input_ids``/``attention_mask``/
``token_type_ids`` [1,tokens] int64 (BERT uncased WordPiece of the prompt, ``[CLS] ... [SEP]``).
Outputs: ``logits`` [1,queries,256] (per query and text token; -inf beyond the prompt) and
``pred_boxes`` [1,queries,4] (cx, cy, w, h normalised to the canvas).

Official checkpoint: ``IDEA-Research/grounding-dino-tiny`` (or -base), Apache-2.0, transformers
``GroundingDinoForObjectDetection`` layout. The tokenizer's ``vocab.txt`` is written next to the
model (``<name>.vocab.txt``, its sha256 in the manifest) because the runtime tokenizes with its own
WordPiece (``perception.onnx_wordpiece``), without transformers.

Export-only rewrites (in force while tracing; parity is measured against the *unmodified* eager
model): the text-mask helper uses ``isin``/``cummax``, which the TorchScript exporter cannot
emit, so it is replaced by an equivalent built from comparisons and max/min; ``linspace`` is
rebuilt from ``arange`` (see ``common.onnx_friendly_torch``).

    python export_tools/export_grounding_dino.py --checkpoint IDEA-Research/grounding-dino-tiny --out exported_models
    python export_tools/export_grounding_dino.py --tiny-random --out /tmp/models
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402

SCRIPT = "export_grounding_dino.py"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
# BERT uncased ids that Grounding DINO treats as phrase delimiters: [CLS], [SEP], '.', '?'
SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
TINY_WORDS = ["a", "an", "the", "red", "blue", "bread", "bowl", "cup", "hand", "drawer", "oven", "door", "handle",
              "cloth", "put", "in", "open", "cover", "piece", "of", "toy", "block", "mug", "##s", "##ed", "##ing",
              "##er", "##y", "b", "r", "e", "d", "##b", "##r", "##e", "##a", "##d", ",", "!", "-"]


def tiny_vocab() -> list[str]:
    """A 30522-entry vocabulary with BERT's special-token ids and a few words (the real BERT vocab
    is not shipped in any installable package, and tests never download)."""
    vocab = [f"[unused{i}]" for i in range(30522)]
    for tok, i in SPECIAL_IDS.items():
        vocab[i] = tok
    for k, w in enumerate(TINY_WORDS):
        vocab[2000 + k] = w
    return vocab


def tiny_config() -> Any:
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=7, image_size=224,
                          out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4])
    text = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                      vocab_size=30522, max_position_embeddings=256)
    return GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                               decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2,
                               decoder_attention_heads=2, num_queries=50, max_text_len=256, num_feature_levels=4)


def _masks_for_export(input_ids: Any) -> Any:
    """Same result as transformers' ``generate_masks_with_special_tokens_and_transfer_map``, built
    from ops the TorchScript exporter supports (checked against it in ``self_check``)."""
    import torch
    import transformers.models.grounding_dino.modeling_grounding_dino as gdm

    b, n = input_ids.shape
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for tok in gdm.SPECIAL_TOKENS:
        special = special | (input_ids == tok)
    idx = torch.arange(n, device=input_ids.device)
    jj = idx.view(1, 1, n).expand(b, n, n)
    sp = special.unsqueeze(1)
    before = (idx.unsqueeze(1) >= idx.unsqueeze(0)).unsqueeze(0)  # j <= i
    after = (idx.unsqueeze(1) <= idx.unsqueeze(0)).unsqueeze(0)   # j >= i
    prev = torch.where(before & sp, jj, torch.full_like(jj, -1)).max(dim=2).values
    nxt = torch.where(after & sp, jj, torch.full_like(jj, n)).min(dim=2).values
    valid = (nxt != 0) & (nxt != n - 1) & (nxt != n)
    att = (nxt.unsqueeze(2) == nxt.unsqueeze(1)) & valid.unsqueeze(1)
    att = (idx.unsqueeze(0) == idx.unsqueeze(1)).unsqueeze(0) | att
    pos = idx.unsqueeze(0) - prev - 1
    pos = torch.where(valid, pos, torch.zeros_like(pos)).clamp(min=0).to(torch.long)
    return att, pos


def self_check_masks(ids_list: Sequence[Sequence[int]]) -> None:
    import torch
    import transformers.models.grounding_dino.modeling_grounding_dino as gdm

    for ids in ids_list:
        t = torch.tensor([list(ids)])
        a, p = gdm.generate_masks_with_special_tokens_and_transfer_map(t)
        a2, p2 = _masks_for_export(t)
        if not (torch.equal(a, a2) and torch.equal(p, p2)):
            raise common.ParityError(f"export rewrite of the text masks differs from transformers' for ids {list(ids)}")


@contextlib.contextmanager
def export_rewrites() -> Iterator[None]:
    import transformers.models.grounding_dino.modeling_grounding_dino as gdm

    orig = gdm.generate_masks_with_special_tokens_and_transfer_map
    gdm.generate_masks_with_special_tokens_and_transfer_map = _masks_for_export
    try:
        yield
    finally:
        gdm.generate_masks_with_special_tokens_and_transfer_map = orig


def build_model(args: Any) -> Any:
    import torch
    from transformers import GroundingDinoForObjectDetection

    if args.tiny_random:
        common.seed_all(args.seed)
        model = GroundingDinoForObjectDetection(tiny_config())
        common.randomize_weights(model, args.seed)
    else:
        model = GroundingDinoForObjectDetection.from_pretrained(args.checkpoint)

    class Wrapper(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, pixel_values: Any, pixel_mask: Any, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            o = self.m(pixel_values=pixel_values, pixel_mask=pixel_mask, input_ids=input_ids,
                       attention_mask=attention_mask, token_type_ids=token_type_ids)
            return o.logits, o.pred_boxes

    return Wrapper(model).eval()


def write_vocab(args: Any, out: Path) -> Path:
    dest = out / f"{args.name}.vocab.txt"
    if args.tiny_random:
        dest.write_text("\n".join(tiny_vocab()) + "\n")
    else:
        ck = Path(args.checkpoint)
        if (ck / "vocab.txt").is_file():
            shutil.copyfile(ck / "vocab.txt", dest)
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(args.checkpoint)
            saved = tok.save_vocabulary(str(out))
            shutil.move(saved[0], dest)
    return dest


def bert_tokenizer(vocab_path: Path) -> Any:
    """transformers' BertTokenizer on a vocab file (v5 takes ``vocab=``, v4 ``vocab_file=``)."""
    import inspect

    from transformers import BertTokenizer

    if "vocab" in inspect.signature(BertTokenizer.__init__).parameters:
        return BertTokenizer(vocab=str(vocab_path), do_lower_case=True)
    return BertTokenizer(vocab_file=str(vocab_path), do_lower_case=True)


def tokenize_eager(vocab_path: Path, text: str) -> list[int]:
    """Reference tokenisation with transformers' BertTokenizer on the same vocab file."""
    ids = list(bert_tokenizer(vocab_path)(text)["input_ids"])
    if ids[0] != 101 or ids[-1] != 102:
        raise SystemExit(f"tokenizer did not load {vocab_path} as BERT uncased ([CLS]=101, [SEP]=102): got {ids}")
    return ids


def main(argv: Sequence[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = common.base_parser(__doc__.split("\n\n")[0], "grounding_dino_tiny")
    p.add_argument("--height", type=int, default=None, help="canvas height (default 800; tiny 224)")
    p.add_argument("--width", type=int, default=None, help="canvas width (default 1066; tiny 288)")
    p.add_argument("--max-tokens", type=int, default=256)
    args = p.parse_args(argv)
    if args.tiny_random:
        common.offline_hub()
    import torch

    H = args.height or (224 if args.tiny_random else 800)
    W = args.width or (288 if args.tiny_random else 1066)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(args)
    vocab = write_vocab(args, out)
    onnx_path = out / f"{args.name}.onnx"
    names_in = ["pixel_values", "pixel_mask", "input_ids", "attention_mask", "token_type_ids"]
    names_out = ["logits", "pred_boxes"]
    g = torch.Generator().manual_seed(args.seed + 1)

    def sample(text: str, pad_cols: int) -> tuple:
        ids = torch.tensor([tokenize_eager(vocab, text)])
        x = torch.randn(1, 3, H, W, generator=g)
        m = torch.ones(1, H, W, dtype=torch.long)
        if pad_cols:
            m[:, :, W - pad_cols:] = 0
            x[:, :, :, W - pad_cols:] = 0
        return (x, m, ids, torch.ones_like(ids), torch.zeros_like(ids))

    trace = sample("the red bread.", 0)
    samples_t = [sample("bread . bowl .", W // 4), sample("open the oven door handle.", 0)]
    self_check_masks([s[2][0].tolist() for s in (trace, *samples_t)])
    refs = [common.torch_outputs(model, s, names_out) for s in samples_t]
    tok_axes = {1: "tokens"}
    with export_rewrites():
        common.export_onnx(model, trace, onnx_path, input_names=names_in, output_names=names_out,
                           dynamic_axes={"input_ids": tok_axes, "attention_mask": tok_axes, "token_type_ids": tok_axes},
                           opset=args.opset)
    samples = [({n: t.numpy() for n, t in zip(names_in, s)}, r) for s, r in zip(samples_t, refs)]
    parity = common.check_parity(args.name, samples, atol=args.atol if args.atol is not None else 1e-3,
                                 rtol=args.rtol if args.rtol is not None else 1e-3, onnx_path=onnx_path)
    L = int(args.max_tokens)
    prof = {lvl: {"pixel_values": [1, 3, H, W], "pixel_mask": [1, H, W], "input_ids": [1, n],
                  "attention_mask": [1, n], "token_type_ids": [1, n]}
            for lvl, n in (("min", 3), ("opt", 16), ("max", L))}
    return common.register(
        common.manifest_path(args), name=args.name, role="detector", onnx_path=onnx_path, opset=args.opset,
        source_checkpoint="tiny random GroundingDinoForObjectDetection + synthetic 30522-entry vocab (NOT the official weights)"
        if args.tiny_random else str(args.checkpoint),
        license="test artefact" if args.tiny_random else "Apache-2.0",
        export_command=common.command_line(SCRIPT, argv), parity=parity, tiny_random=args.tiny_random,
        preprocess={"height": H, "width": W, "mean": MEAN, "std": STD, "vocab": vocab.name, "max_tokens": L,
                    "box_threshold": 0.35, "text_threshold": 0.25, "warmup_tokens": 16},
        trt_profile=prof, extra_files=[vocab],
    )


if __name__ == "__main__":
    main()
