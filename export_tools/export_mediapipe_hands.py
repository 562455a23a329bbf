"""MediaPipe's hand models (palm detector + 21-landmark model) -> ONNX, from the ``mediapipe==0.10.21``
wheel used as a file source (mediapipe itself is never imported: it pins numpy<2 and protobuf<5).

Why MediaPipe: they are the one set of real hand-perception weights reachable from this
repository's machines (PyPI only), Apache-2.0, small (~8 MB TFLite), and ONNX Runtime runs them at
~30 ms per frame on a CPU. The wheel carries ``palm_detection_full.tflite`` (192x192 SSD palm
detector with 7 palm keypoints) and ``hand_landmark_full.tflite`` (224x224 crop -> 21 landmarks,
hand presence, handedness); the runtime wrapper is ``dream2flow.perception.mediapipe_hand``.

What this does, in order (every step refuses on a mismatch):
1. fetch the wheel with ``pip download --no-deps`` (or take ``--wheel FILE``) and check its sha256;
2. extract the two ``.tflite`` files and check their sha256;
3. convert each with tf2onnx (opset 17), name the inputs/outputs, check the ONNX graph;
4. parity: TFLite interpreter (``ai_edge_litert`` if installed, else TensorFlow's ``tf.lite``)
   vs ONNX Runtime on three inputs (two uniform-random images, one smooth gradient), printed and
   bounded by ``atol + rtol * max|TFLite|``;
5. register both files in ``OUT/manifest.toml`` (sha256, I/O signature read back from the file,
   parity figures, pre-processing numbers the wrapper reads).

Its own environment: tensorflow-cpu and tf2onnx pin protobuf 3.20 and numpy<2, which conflict
with the runtime's ``protobuf>=7`` (gRPC), so they cannot join the ``export`` extra::

    python3.11 -m venv /work/venvs/tf2onnx
    /work/venvs/tf2onnx/bin/pip install -r export_tools/requirements-tf2onnx.txt
    /work/venvs/tf2onnx/bin/python export_tools/export_mediapipe_hands.py --out exported_models

The committed manifest's entries for these files are rebuilt by ``export_tools/real_manifest.py``
from ``manifest_spec`` below and the figures recorded there (a test checks both agree).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402
from dream2flow.perception.manifest import ModelSpec, TensorSpec, sha256_file, upsert_model  # noqa: E402

SCRIPT = "export_mediapipe_hands.py"
OPSET = 17
MEDIAPIPE_VERSION = "0.10.21"
# One fixed wheel whatever Python runs this script (the .tflite files are the same in every
# cp310-cp312 x86_64 wheel of this release; pinning one wheel pins the bytes).
WHEEL = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
PIP_TARGET = ("--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "--implementation", "cp",
              "--only-binary=:all:")
LICENSE = "Apache-2.0"
ATOL, RTOL = 1e-3, 1e-5
TOOLS = "tensorflow-cpu 2.15.1, tf2onnx 1.16.1, onnx 1.16.2 (export_tools/requirements-tf2onnx.txt)"


@dataclass(frozen=True)
class HandModel:
    """One MediaPipe model: where it lies in the wheel, its pinned bytes, and the ONNX names."""

    name: str
    role: str
    member: str
    tflite_sha256: str
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    preprocess: dict[str, Any]
    notes: str


def _t(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, "float32", tuple(shape))


# Pre-processing numbers: MediaPipe 0.10.21's own graph options for the full models
# (mediapipe/modules/palm_detection/palm_detection_cpu.pbtxt, palm_detection_detection_to_roi.pbtxt,
# hand_landmark/hand_landmark_cpu.pbtxt; the Tasks API defaults for the thresholds). The runtime
# wrapper reads them from the manifest, so they are stated once.
PALM = HandModel(
    name="mediapipe_palm_detection_full", role="hand_palm_detector",
    member="mediapipe/modules/palm_detection/palm_detection_full.tflite",
    tflite_sha256="1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    input=_t("image", 1, 192, 192, 3),
    outputs=(_t("box_regressors", 1, 2016, 18), _t("score_logits", 1, 2016, 1)),
    preprocess={
        "input_size": 192, "input_range": [0.0, 1.0], "layout": "NHWC", "letterbox": True,
        # SsdAnchorsCalculator
        "anchor_num_layers": 4, "anchor_min_scale": 0.1484375, "anchor_max_scale": 0.75,
        "anchor_strides": [8, 16, 16, 16], "anchor_offset": 0.5, "anchor_aspect_ratios": [1.0],
        "anchor_interpolated_scale_aspect_ratio": 1.0, "anchor_fixed_size": True,
        # TensorsToDetectionsCalculator (reverse_output_order: x, y, w, h; 7 keypoints x, y)
        "num_keypoints": 7, "box_scale": 192.0, "score_clipping": 100.0, "score_threshold": 0.5,
        # NonMaxSuppressionCalculator (weighted) and the palm -> hand crop
        "nms_iou_threshold": 0.3, "rotation_keypoints": [0, 2], "rotation_target_deg": 90.0,
        "roi_scale": 2.6, "roi_shift_x": 0.0, "roi_shift_y": -0.5,
    },
    notes="Box regressors: per anchor (x, y, w, h) then 7 palm keypoints (x, y), in 192-px input units relative "
          "to the anchor centre; keypoint 0 = wrist centre, 2 = middle-finger base. Score logits: sigmoid -> palm score.",
)
LANDMARKS = HandModel(
    name="mediapipe_hand_landmark_full", role="hand_landmarks",
    member="mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
    tflite_sha256="11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    input=_t("image", 1, 224, 224, 3),
    outputs=(_t("landmarks", 1, 63), _t("hand_presence", 1, 1), _t("handedness", 1, 1), _t("world_landmarks", 1, 63)),
    preprocess={
        "input_size": 224, "input_range": [0.0, 1.0], "layout": "NHWC", "num_landmarks": 21,
        "presence_threshold": 0.5, "thumb_tip_landmark": 4, "z_scale": 0.4,
    },
    notes="Landmarks: 21 x (x, y, z) in 224-px crop units (MediaPipe order: 0 wrist, 1-4 thumb CMC/MCP/IP/TIP, "
          "5-8 index, ... 17-20 pinky). Hand presence and handedness are probabilities (sigmoid inside the graph).",
)
MODELS = (PALM, LANDMARKS)


def source_of(m: HandModel) -> str:
    return (f"mediapipe=={MEDIAPIPE_VERSION} wheel {WHEEL} (sha256 {WHEEL_SHA256}), file {m.member} "
            f"(sha256 {m.tflite_sha256})")


def export_command(argv: Sequence[str] = ("--out", "exported_models")) -> str:
    return common.command_line(SCRIPT, argv)


def manifest_spec(m: HandModel, sha256: str, parity: dict[str, Any], file: str | None = None) -> ModelSpec:
    """The manifest entry of one exported file (also what ``real_manifest`` commits)."""
    return ModelSpec(
        name=m.name, role=m.role, file=file or f"{m.name}.onnx", opset=OPSET, inputs=(m.input,), outputs=m.outputs,
        sha256=sha256, status="exported", source_checkpoint=source_of(m), license=LICENSE,
        export_command=export_command(), notes=f"{m.notes} Converted from TFLite with {TOOLS}.",
        parity=dict(parity), preprocess=dict(m.preprocess),
    )


# ---- the export (needs tensorflow-cpu + tf2onnx: imported inside the functions) -----------------

def _sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def fetch_wheel(dest: Path, wheel: Path | None) -> Path:
    """The pinned wheel: ``wheel`` if given, else the one already in ``dest``, else ``pip download
    --no-deps`` into ``dest``; its sha256 is checked in every case."""
    if wheel is None and (dest / WHEEL).is_file():
        wheel = dest / WHEEL
    if wheel is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"mediapipe=={MEDIAPIPE_VERSION}",
               *PIP_TARGET, "-d", str(dest)]
        print("fetching", " ".join(cmd[3:]))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"pip download of mediapipe=={MEDIAPIPE_VERSION} failed: "
                             f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
        wheel = dest / WHEEL
    if not wheel.is_file():
        raise SystemExit(f"wheel not found: {wheel}")
    got = sha256_file(wheel)
    if got != WHEEL_SHA256:
        raise SystemExit(f"{wheel.name}: sha256 {got} != pinned {WHEEL_SHA256} (not the wheel this script converts)")
    print(f"wheel {wheel.name}: sha256 ok")
    return wheel


def extract(wheel: Path, m: HandModel, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        data = z.read(m.member)
    got = _sha256_bytes(data)
    if got != m.tflite_sha256:
        raise SystemExit(f"{m.member}: sha256 {got} != pinned {m.tflite_sha256}")
    out = dest / Path(m.member).name
    out.write_bytes(data)
    print(f"{m.member}: sha256 ok ({len(data)} bytes)")
    return out


def default_cache_dir() -> Path:
    """``$D2F_CACHE_DIR/mediapipe`` (default ``~/.cache/dream2flow/mediapipe``): where the wheel is kept
    for the TFLite parity tests."""
    root = os.environ.get("D2F_CACHE_DIR") or str(Path.home() / ".cache" / "dream2flow")
    return Path(root) / "mediapipe"


def tflite_files(cache: Path | None = None) -> dict[str, Path]:
    """{model name: .tflite path}: the two pinned files, extracted (and hash-checked) from the pinned
    wheel, which is downloaded once into ``cache``. For the ONNX-vs-TFLite parity tests."""
    cache = Path(cache) if cache else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for m in MODELS:
        p = cache / Path(m.member).name
        if not (p.is_file() and sha256_file(p) == m.tflite_sha256):
            p = extract(fetch_wheel(cache, None), m, cache)
        out[m.name] = p
    return out


def _rename(model: Any, old: str, new: str) -> None:
    """Rename a graph value everywhere (graph I/O, node inputs/outputs)."""
    for v in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        if v.name == old:
            v.name = new
    for node in model.graph.node:
        for i, n in enumerate(node.input):
            if n == old:
                node.input[i] = new
        for i, n in enumerate(node.output):
            if n == old:
                node.output[i] = new


def canonical_names(model: Any) -> None:
    """Rename every node and internal value by its position (``Conv_12``, ``t34``) and order the
    initializers by first use. Why: tf2onnx draws some generated names from process-wide counters
    and hash order, so two conversions of the same file differ in names only; canonical names make
    the export byte-reproducible, so anyone can re-derive the committed sha256."""
    g = model.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    mapping: dict[str, str] = {}

    def nm(v: str) -> str:
        if v == "" or v in keep:
            return v
        if v not in mapping:
            mapping[v] = f"t{len(mapping)}"
        return mapping[v]

    for i, node in enumerate(g.node):
        node.name = f"{node.op_type}_{i}"
        for k, v in enumerate(node.input):
            node.input[k] = nm(v)
        for k, v in enumerate(node.output):
            node.output[k] = nm(v)
    unused = [t.name for t in g.initializer if t.name not in mapping]
    if unused:
        raise SystemExit(f"unused initializers after conversion: {unused[:5]}")
    inits = sorted(g.initializer, key=lambda t: int(mapping[t.name][1:]))
    for t in inits:
        t.name = mapping[t.name]
    del g.initializer[:]
    g.initializer.extend(inits)
    infos = [v for v in g.value_info if v.name in mapping]
    for v in infos:
        v.name = mapping[v.name]
    infos.sort(key=lambda v: int(v.name[1:]))
    del g.value_info[:]
    g.value_info.extend(infos)


def convert(tflite: Path, m: HandModel, out: Path) -> Path:
    """tf2onnx -> named I/O -> canonical internal names -> ``onnx.checker`` -> the signature must
    equal ``m``'s."""
    import onnx
    import tf2onnx

    proto, _ = tf2onnx.convert.from_tflite(str(tflite), opset=OPSET)
    if len(proto.graph.input) != 1 or len(proto.graph.output) != len(m.outputs):
        raise SystemExit(f"{m.name}: tf2onnx made {len(proto.graph.input)} inputs / {len(proto.graph.output)} outputs, "
                         f"expected 1 / {len(m.outputs)}")
    _rename(proto, proto.graph.input[0].name, m.input.name)
    # tf2onnx keeps the TFLite order (Identity, Identity_1, ...), which is MediaPipe's documented order.
    for v, want in zip(list(proto.graph.output), m.outputs):
        _rename(proto, v.name, want.name)
    canonical_names(proto)
    proto.doc_string = f"{m.name}: {source_of(m)}; converted with {TOOLS}"
    onnx.checker.check_model(proto)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(proto.SerializeToString(deterministic=True))
    ins, outs = common.file_signature(out)
    if ins != (m.input,) or outs != m.outputs:
        raise SystemExit(f"{m.name}: ONNX signature {[t.describe() for t in ins + outs]} != expected "
                         f"{[t.describe() for t in (m.input,) + m.outputs]}")
    return out


def tflite_interpreter(path: Path) -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
        from importlib.metadata import version

        return Interpreter(model_path=str(path)), f"ai-edge-litert {version('ai-edge-litert')}"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter(model_path=str(path)), f"tensorflow {tf.__version__} tf.lite"


def tflite_run(interp: Any, x: Any) -> list[Any]:
    """Outputs in the model's order (the order ONNX names were given in)."""
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def parity_inputs(size: int) -> list[Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    grad = np.stack([xx, yy, 0.5 * (xx + yy)], -1)[None]
    return [rng.random((1, size, size, 3), dtype=np.float32), rng.random((1, size, size, 3), dtype=np.float32), grad]


def parity(tflite: Path, onnx_path: Path, m: HandModel) -> dict[str, Any]:
    interp, ref_name = tflite_interpreter(tflite)
    samples = []
    for x in parity_inputs(int(m.input.shape[1])):
        ref = tflite_run(interp, x)
        samples.append(({m.input.name: x}, {t.name: r for t, r in zip(m.outputs, ref)}))
    fig = common.check_parity(m.name, samples, atol=ATOL, rtol=RTOL, onnx_path=onnx_path)
    fig["reference"] = f"TFLite ({ref_name})"
    return fig


def main(argv: Sequence[str] | None = None) -> list[ModelSpec]:
    p = argparse.ArgumentParser(description="Convert MediaPipe's hand models (from the pinned mediapipe wheel) to "
                                            "ONNX and register them in the manifest.")
    p.add_argument("--out", required=True, help="folder for the .onnx files")
    p.add_argument("--manifest", help="manifest to register in (default OUT/manifest.toml)")
    p.add_argument("--wheel", type=Path, help=f"a local {WHEEL} (default: pip download it)")
    args = p.parse_args(argv)
    import importlib.util

    missing = [m for m in ("tf2onnx", "tensorflow", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not installed in this Python ({sys.executable}): run this script in its "
                         f"own environment, made with: pip install -r export_tools/requirements-tf2onnx.txt "
                         f"(see the docstring of export_tools/{SCRIPT})")
    out = Path(args.out)
    man = Path(args.manifest) if args.manifest else out / "manifest.toml"
    specs = []
    with tempfile.TemporaryDirectory(prefix="d2f-mediapipe-") as tmp:
        wheel = fetch_wheel(Path(tmp), args.wheel)
        for m in MODELS:
            tfl = extract(wheel, m, Path(tmp))
            onnx_path = convert(tfl, m, out / f"{m.name}.onnx")
            fig = parity(tfl, onnx_path, m)
            rel = onnx_path.resolve().relative_to(man.resolve().parent) if onnx_path.resolve().is_relative_to(
                man.resolve().parent) else onnx_path.resolve()
            spec = manifest_spec(m, sha256_file(onnx_path), fig, file=str(rel))
            upsert_model(man, spec, "" if man.is_file() else common.MANIFEST_ABOUT)  # keep an existing header
            specs.append(spec)
            print(f"{m.name}: {onnx_path} sha256 {spec.sha256} -> {man}")
    from export_tools.real_manifest import MEDIAPIPE_EXPORT

    same = all(MEDIAPIPE_EXPORT.get(s.name, {}).get("sha256") == s.sha256 for s in specs)
    print("the files are byte-identical to the committed ones (export_tools/real_manifest.py MEDIAPIPE_EXPORT)" if same
          else "these files differ from the committed ones: record their sha256 and parity figures in "
               "export_tools/real_manifest.py (MEDIAPIPE_EXPORT) if they are to replace them")
    return specs


if __name__ == "__main__":
    main()
