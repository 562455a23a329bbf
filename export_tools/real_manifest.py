"""Writes the committed ``exported_models/manifest.toml``: one entry per real model with its
official checkpoint, licence, the export command that makes it, and the I/O its export script
produces.

Two kinds of entries:

- the foundation models (detector, segmenter, tracker, video depth, ViTPose hand): NO sha256,
  ``status = "not exported here"``: their weights were never downloaded in this repository, so
  there is no file to hash. The engine refuses such entries (it cannot verify them) and names the
  export command; running that command replaces the entry with the exported file's own
  signature, sha256 and parity figures.
- MediaPipe's hand models: exported here from the pinned ``mediapipe`` wheel by
  ``export_mediapipe_hands.py`` (byte-reproducible); the ONNX files are committed next to the
  manifest, and their sha256 and parity figures are recorded below (``MEDIAPIPE_EXPORT``).

Plus the models trained here, each described by its ``exported_models/<name>.spec.json`` (an
entry with its file's sha256; these files ARE committed): the RL policies (role ``policy``,
written by ``export_tools/ship_policy.py`` from a ``dream2flow rl train`` run) and the
sim-trained perception stand-ins (``sim_video_depth``, ``sim_segmenter``, ``sim_detector``,
written by ``export_tools/train_sim_*.py``; small U-Nets trained on simulator renders only,
used only where a configuration names them: ``hw/perception.sim.toml``).

    python export_tools/real_manifest.py            # rewrite exported_models/manifest.toml
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common, export_mediapipe_hands  # noqa: E402
from dream2flow.perception.manifest import ModelSpec, TensorSpec, write_manifest  # noqa: E402
from dream2flow.rl.policy import load_spec_file  # noqa: E402

OUT = common.REPO / "exported_models"
ABOUT = ("The perception models Dream2Flow Edge serves. Entries without sha256 (status 'not exported here') "
         "list what to export and how: their weights were never downloaded in this repository. Export each with "
         "its export_command on a workstation with torch; that replaces the entry with the file's sha256, I/O "
         "signature and parity figures. Entries with a sha256 (MediaPipe's hand models; the RL policies, role "
         "'policy'; the SIM-TRAINED STAND-INS sim_*, small models trained here on simulator renders only and used "
         "only where a configuration names them, hw/perception.sim.toml) were exported or trained here and their "
         "files are committed in this folder. See exported_models/README.md.")

# What ``export_tools/export_mediapipe_hands.py --out exported_models`` produced (it prints these;
# the conversion is byte-reproducible, so a re-run must give the same sha256).
MEDIAPIPE_EXPORT: dict[str, dict] = {
    "mediapipe_palm_detection_full": {
        "sha256": "717a9023e6ab113eb6453726c24b3eb137c3a661cde4b198c592c0cfcd44d687",
        "parity": {"max_abs": 0.0001392364501953125, "mean_abs": 1.3496817038326243e-05,
                   "bound": 0.0011565065479278566, "ref_max_abs": 128.99046325683594, "atol": 0.001, "rtol": 1e-05,
                   "samples": 3,
                   "per_output_max_abs": {"box_regressors": 0.0001392364501953125,
                                          "score_logits": 3.24249267578125e-05},
                   "reference": "TFLite (ai-edge-litert 2.3.0)"},
    },
    "mediapipe_hand_landmark_full": {
        "sha256": "9041fe4b821234e1488807a3e385d595c2fb9d757bcc75a699c0357df2644679",
        "parity": {"max_abs": 0.00026702880859375, "mean_abs": 5.7455097876733083e-05,
                   "bound": 0.00100023653363809, "ref_max_abs": 175.6060791015625, "atol": 0.001, "rtol": 1e-05,
                   "samples": 3,
                   "per_output_max_abs": {"landmarks": 0.00026702880859375, "hand_presence": 1.5459954738616943e-07,
                                          "handedness": 1.1026859283447266e-06,
                                          "world_landmarks": 4.842877388000488e-07},
                   "reference": "TFLite (ai-edge-litert 2.3.0)"},
    },
}


def mediapipe_specs() -> list[ModelSpec]:
    return [export_mediapipe_hands.manifest_spec(m, MEDIAPIPE_EXPORT[m.name]["sha256"], MEDIAPIPE_EXPORT[m.name]["parity"])
            for m in export_mediapipe_hands.MODELS]


def t(name: str, dtype: str, *shape: int | str) -> TensorSpec:
    return TensorSpec(name, dtype, tuple(shape))


def policy_specs() -> list[ModelSpec]:
    """The entries of the models trained here (policies, sim-trained stand-ins), from their ``.spec.json`` files (sorted by name)."""
    return [load_spec_file(p) for p in sorted(OUT.glob("*.spec.json"))]


def specs() -> list[ModelSpec]:
    return perception_specs() + policy_specs()


def perception_specs() -> list[ModelSpec]:
    f = "float32"
    common_kw = dict(opset=common.DEFAULT_OPSET, status="not exported here")
    gd_in = (t("pixel_values", f, 1, 3, 800, 1066), t("pixel_mask", "int64", 1, 800, 1066), t("input_ids", "int64", 1, "tokens"),
             t("attention_mask", "int64", 1, "tokens"), t("token_type_ids", "int64", 1, "tokens"))
    gd_prof = {lvl: {"pixel_values": [1, 3, 800, 1066], "pixel_mask": [1, 800, 1066], "input_ids": [1, n],
                     "attention_mask": [1, n], "token_type_ids": [1, n]} for lvl, n in (("min", 3), ("opt", 16), ("max", 256))}
    enc_out = (t("image_embed", f, 1, 256, 64, 64), t("high_res_feats_0", f, 1, 32, 256, 256),
               t("high_res_feats_1", f, 1, 64, 128, 128))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    return [
        ModelSpec(name="grounding_dino_tiny", role="detector", file="grounding_dino_tiny.onnx", inputs=gd_in,
                  outputs=(t("logits", f, 1, 900, 256), t("pred_boxes", f, 1, 900, 4)),
                  source_checkpoint="IDEA-Research/grounding-dino-tiny (transformers GroundingDinoForObjectDetection)",
                  license="Apache-2.0",
                  export_command="python export_tools/export_grounding_dino.py --checkpoint IDEA-Research/grounding-dino-tiny --out exported_models",
                  preprocess={"height": 800, "width": 1066, "mean": mean, "std": std, "vocab": "grounding_dino_tiny.vocab.txt",
                              "max_tokens": 256, "box_threshold": 0.35, "text_threshold": 0.25, "warmup_tokens": 16},
                  trt_profile=gd_prof, **common_kw),
        ModelSpec(name="sam2_1_hiera_tiny_image_encoder", role="segmenter_encoder", file="sam2_1_hiera_tiny_image_encoder.onnx",
                  inputs=(t("pixel_values", f, 1, 3, 1024, 1024),), outputs=enc_out,
                  source_checkpoint="facebook/sam2.1-hiera-tiny (transformers Sam2Model)", license="Apache-2.0",
                  export_command="python export_tools/export_sam2.py --checkpoint facebook/sam2.1-hiera-tiny --out exported_models",
                  preprocess={"image_size": 1024, "mean": mean, "std": std, "mask_threshold": 0.0,
                              "decoder": "sam2_1_hiera_tiny_mask_decoder"}, **common_kw),
        ModelSpec(name="sam2_1_hiera_tiny_mask_decoder", role="segmenter_decoder", file="sam2_1_hiera_tiny_mask_decoder.onnx",
                  inputs=enc_out + (t("input_boxes", f, 1, 1, 4),),
                  outputs=(t("masks", f, 1, 1, 256, 256), t("iou_scores", f, 1, 1), t("object_score_logits", f, 1, 1)),
                  source_checkpoint="facebook/sam2.1-hiera-tiny (transformers Sam2Model)", license="Apache-2.0",
                  export_command="python export_tools/export_sam2.py --checkpoint facebook/sam2.1-hiera-tiny --out exported_models",
                  preprocess={"image_size": 1024, "mask_threshold": 0.0}, **common_kw),
        ModelSpec(name="cotracker3_offline", role="point_tracker", file="cotracker3_offline.onnx",
                  inputs=(t("video", f, 1, "frames", 3, 384, 512), t("queries", f, 1, "points", 3)),
                  outputs=(t("tracks", f, 1, "frames", "points", 2), t("visibility", f, 1, "frames", "points"),
                           t("confidence", f, 1, "frames", "points")),
                  source_checkpoint="CoTracker3 scaled_offline.pth (facebookresearch/co-tracker; architecture from that repository, not on PyPI)",
                  license="CC-BY-NC-4.0 (non-commercial)",
                  export_command="python export_tools/export_cotracker3.py --checkpoint /path/to/scaled_offline.pth --out exported_models",
                  notes="Export script not run here: the architecture is not installable offline (see exported_models/README.md).",
                  preprocess={"height": 384, "width": 512, "visibility_threshold": 0.9, "use_confidence": False,
                              "support_grid": 6, "max_frames": 96, "warmup_frames": 8, "warmup_points": 16},
                  trt_profile={lvl: {"video": [1, tt, 3, 384, 512], "queries": [1, n, 3]}
                               for lvl, tt, n in (("min", 2, 1), ("opt", 48, 292), ("max", 96, 512))}, **common_kw),
        ModelSpec(name="depth_anything_v2_small", role="video_depth", file="depth_anything_v2_small.onnx",
                  inputs=(t("pixel_values", f, "frames", 3, 518, 686),), outputs=(t("predicted_depth", f, "frames", 518, 686),),
                  source_checkpoint="depth-anything/Depth-Anything-V2-Small-hf (transformers DepthAnythingForDepthEstimation)",
                  license="Apache-2.0",
                  export_command="python export_tools/export_depth_anything.py --checkpoint depth-anything/Depth-Anything-V2-Small-hf --out exported_models",
                  preprocess={"height": 518, "width": 686, "mean": mean, "std": std, "output_kind": "relative_disparity", "max_batch": 16},
                  trt_profile={"min": {"pixel_values": [1, 3, 518, 686]}, "opt": {"pixel_values": [8, 3, 518, 686]},
                               "max": {"pixel_values": [16, 3, 518, 686]}}, **common_kw),
        ModelSpec(name="vitpose_b_wholebody", role="hand_keypoints", file="vitpose_b_wholebody.onnx",
                  inputs=(t("pixel_values", f, "crops", 3, 256, 192),), outputs=(t("heatmaps", f, "crops", 133, 64, 48),),
                  source_checkpoint="ViTPose-B COCO-WholeBody (ViTAE-Transformer/ViTPose), converted by the user to the transformers VitPose layout",
                  license="Apache-2.0",
                  export_command="python export_tools/export_hand_vitpose.py --checkpoint /path/to/vitpose-b-wholebody-hf --layout coco_wholebody --out exported_models",
                  notes="No transformers-layout whole-body checkpoint is published; the conversion is the user's step and was not tested here.",
                  preprocess={"height": 256, "width": 192, "mean": mean, "std": std, "layout": "coco_wholebody", "num_keypoints": 133,
                              "thumb_tip_channels": [95, 116], "min_confidence": 0.3, "box_expand": 1.25, "max_batch": 16},
                  trt_profile={"min": {"pixel_values": [1, 3, 256, 192]}, "opt": {"pixel_values": [8, 3, 256, 192]},
                               "max": {"pixel_values": [16, 3, 256, 192]}}, **common_kw),
    ] + mediapipe_specs()


def main() -> None:
    print(write_manifest(OUT / "manifest.toml", specs(), ABOUT))


if __name__ == "__main__":
    main()
