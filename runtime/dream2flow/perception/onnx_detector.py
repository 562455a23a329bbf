"""``Detector`` on an exported Grounding DINO (``export_tools/export_grounding_dino.py``).

Pre-processing: letterbox the image into the model's fixed canvas (``pixel_mask`` marks the real
pixels), ImageNet normalisation, BERT WordPiece of the prompt (``onnx_wordpiece``). Post:
score per query = max over the prompt's word tokens (special tokens and '.' excluded) of
sigmoid(logit), boxes from (cx,cy,w,h) in canvas units back to image pixels, score threshold,
NMS. Returns ``Detections`` sorted best first (possibly empty)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dream2flow.errors import InvalidInput, ModelMismatch
from dream2flow.perception.onnx_preprocess import check_image, letterbox, nms, normalize, sigmoid
from dream2flow.perception.onnx_wordpiece import WordPieceTokenizer, grounding_prompt
from dream2flow.perception.protocols import Detections

if TYPE_CHECKING:
    from dream2flow.perception.engine import InferenceEngine

_SPECIAL = {"[CLS]", "[SEP]", "[PAD]", ".", "?"}


class OnnxGroundingDino:
    """Open-vocabulary detector (``name = "onnx:<manifest name>"``)."""

    def __init__(self, engine: "InferenceEngine", model: str | None = None, *, box_threshold: float | None = None,
                 nms_iou: float = 0.7, max_detections: int = 20) -> None:
        self.session = engine.session_for_role("detector", model)
        spec = self.session.spec
        pre = spec.preprocess
        self.name = f"onnx:{spec.name}"
        self.height, self.width = int(pre["height"]), int(pre["width"])
        self.mean, self.std = pre["mean"], pre["std"]
        self.max_tokens = int(pre.get("max_tokens", 256))
        self.box_threshold = float(box_threshold if box_threshold is not None else pre.get("box_threshold", 0.35))
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)
        vocab = engine.models_dir / str(pre["vocab"])
        want = pre.get("sha256_" + str(pre["vocab"]).replace(".", "_"))
        if want and engine.config.verify_sha256:
            from dream2flow.perception.manifest import sha256_file

            if not vocab.is_file() or sha256_file(vocab) != want:
                raise ModelMismatch(f"model '{spec.name}': tokenizer vocabulary {vocab} is missing or does not match "
                                    f"the manifest's sha256")
        self.tokenizer = WordPieceTokenizer(vocab)

    def encode_text(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids [1,L] int64, word-token mask [L] bool: which positions score the prompt)."""
        prompt = grounding_prompt(text)
        ids = self.tokenizer.encode(prompt)
        if len(ids) > self.max_tokens:
            raise InvalidInput(f"detector prompt is {len(ids)} tokens, the model takes at most {self.max_tokens}")
        inv = {v: k for k, v in self.tokenizer.vocab.items()}
        word = np.array([inv.get(i, "") not in _SPECIAL for i in ids], bool)
        return np.asarray([ids], np.int64), word

    def __call__(self, image: np.ndarray, text: str) -> Detections:
        img = check_image(image)
        H, W = img.shape[:2]
        ids, word = self.encode_text(text)
        canvas, mask, s = letterbox(img, self.width, self.height)
        out = self.session.run({
            "pixel_values": normalize(canvas, self.mean, self.std)[None],
            "pixel_mask": mask[None],
            "input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids),
        })
        logits = out["logits"][0][:, : ids.shape[1]]            # [Q, L]
        prob = sigmoid(logits.astype(np.float64))
        scores = prob[:, word].max(axis=1) if word.any() else np.zeros(prob.shape[0])
        cxcywh = out["pred_boxes"][0].astype(np.float64)        # canvas-normalised
        x0 = (cxcywh[:, 0] - cxcywh[:, 2] / 2) * self.width / s
        y0 = (cxcywh[:, 1] - cxcywh[:, 3] / 2) * self.height / s
        x1 = (cxcywh[:, 0] + cxcywh[:, 2] / 2) * self.width / s
        y1 = (cxcywh[:, 1] + cxcywh[:, 3] / 2) * self.height / s
        boxes = np.stack([np.clip(x0, 0, W), np.clip(y0, 0, H), np.clip(x1, 0, W), np.clip(y1, 0, H)], -1)
        ok = (scores >= self.box_threshold) & (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, self.nms_iou)[: self.max_detections]
        return Detections(boxes[keep].astype(np.float32), scores[keep].astype(np.float32))
