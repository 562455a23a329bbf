"""MediaPipe hands latency per 640x480 frame: palm detection alone, the whole pipeline (palm ->
crop -> landmarks, with and without the second landmark pass), and the two models through ONNX
Runtime vs the original TFLite files through ai-edge-litert (XNNPACK) on the same inputs in the
same process (a ratio; skipped when ai-edge-litert or the pinned wheel is not available). One JSON
line per measurement.

    python bench/hand_bench.py                 # 8 drawn-hand frames, 20 repeats
    python bench/hand_bench.py --quick         # fewer repeats (the test suite runs this)
    python bench/hand_bench.py --providers tensorrt,cuda,cpu    # on the robot

The frames are drawn hands (tests/hand_images.py) so that every stage really runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "runtime", REPO / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_timing import timeit  # noqa: E402  (bench/ is on the path: run as a script or from tests)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default=str(REPO / "exported_models" / "manifest.toml"))
    p.add_argument("--providers", default="cpu", help="execution providers in order (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--frames", type=int, default=8, help="drawn-hand frames (default 8)")
    p.add_argument("--repeats", type=int, default=None, help="passes over the frames (default 20, --quick 2)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-tflite", action="store_true", help="skip the TFLite comparison")
    a = p.parse_args(argv)
    if a.frames < 1 or (a.repeats is not None and a.repeats < 1):
        p.error("--frames and --repeats must be at least 1")
    repeats = a.repeats or (2 if a.quick else 20)

    import hand_images as hi

    from dream2flow.perception.engine import EngineConfig, InferenceEngine
    from dream2flow.perception.mediapipe_hand import MediaPipeHand

    engine = InferenceEngine(a.manifest, config=EngineConfig(
        providers=tuple(s.strip() for s in a.providers.split(",")), intra_op_threads=a.threads))
    hand = MediaPipeHand(engine)
    rng = np.random.default_rng(0)
    frames = [hi.draw_hand(rng, scale_px=float(rng.uniform(50, 105)), angle_rad=float(rng.uniform(0, 2 * math.pi))).image
              for _ in range(a.frames)]
    found = sum(hand.thumb_in_image(f) is not None for f in frames)
    base = {"bench": "mediapipe_hands", "provider": hand.palm_session.provider, "frame": [640, 480],
            "frames": a.frames, "hands_found": found, "repeats": repeats, "threads": a.threads}

    def per_frame(fn: Callable[[np.ndarray], Any]) -> dict[str, float]:
        r = timeit(lambda: [fn(f) for f in frames], repeats)
        return {"median_ms": round(r["median_ms"] / len(frames), 3), "min_ms": round(r["min_ms"] / len(frames), 3)}

    single = MediaPipeHand(engine, refine=False)
    for stage, fn in (("palm_detection", hand.detect_palms), ("pipeline_single_pass", single.thumb_in_image),
                      ("pipeline", hand.thumb_in_image)):
        print(json.dumps({**base, "stage": stage, **per_frame(fn)}), flush=True)

    if a.no_tflite:
        return 0
    try:
        from ai_edge_litert.interpreter import Interpreter

        from export_tools.export_mediapipe_hands import tflite_files

        files = tflite_files()
    except (ImportError, SystemExit) as exc:
        print(json.dumps({**base, "stage": "tflite_comparison", "skipped": str(exc).splitlines()[0]}), flush=True)
        return 0
    x_rng = np.random.default_rng(1)
    for sess in (hand.palm_session, hand.landmark_session):
        spec = sess.spec
        interp = Interpreter(model_path=str(files[spec.name]), num_threads=a.threads or os.cpu_count())
        interp.allocate_tensors()
        idx = interp.get_input_details()[0]["index"]
        x = x_rng.random(tuple(spec.inputs[0].shape), dtype=np.float32)

        def run_tflite() -> None:
            interp.set_tensor(idx, x)
            interp.invoke()

        r_ort = timeit(lambda: sess.session.run(None, {spec.inputs[0].name: x}), repeats * len(frames))
        r_tfl = timeit(run_tflite, repeats * len(frames))
        print(json.dumps({**base, "stage": "model", "model": spec.name, "ort_median_ms": round(r_ort["median_ms"], 3),
                          "tflite_xnnpack_median_ms": round(r_tfl["median_ms"], 3),
                          "ratio_ort_over_tflite": round(r_ort["median_ms"] / r_tfl["median_ms"], 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
