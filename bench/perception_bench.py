"""Perception model latency: per model on the execution provider the engine really got (TensorRT /
CUDA / CPU), and ONNX Runtime vs PyTorch eager on the *same* tiny randomly initialised model, same
input, same process (a ratio). Prints one JSON line per measurement.

    python bench/perception_bench.py                     # tiny models, exported into a temp folder
    python bench/perception_bench.py --quick             # fewer repeats (the test suite runs this)
    python bench/perception_bench.py --manifest exported_models/manifest.toml --no-torch   # real models, on the device

Tiny-model numbers measure framework overhead more than model cost; on the robot, run it on the
real exported models (``--manifest``) to get the numbers that matter.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
if str(REPO / "runtime") not in sys.path:
    sys.path.insert(0, str(REPO / "runtime"))

from bench_timing import timeit  # noqa: E402  (bench/ is on the path: run as a script or from tests)


def torch_twin(spec: Any) -> Any:
    """The PyTorch eager module of a tiny model (rebuilt from its export script with the same seed),
    or None for roles without one (fixtures, real models)."""
    if not spec.tiny_random:
        return None
    from export_tools import export_depth_anything, export_grounding_dino, export_hand_vitpose, export_sam2

    args = SimpleNamespace(tiny_random=True, seed=0, checkpoint=None, dataset_index=0)
    if spec.role == "video_depth":
        return export_depth_anything.build_model(args)
    if spec.role == "hand_keypoints":
        return export_hand_vitpose.build_model(args, int(spec.preprocess["num_keypoints"]))
    if spec.role == "segmenter_encoder":
        return export_sam2.build_models(args)[0]
    if spec.role == "segmenter_decoder":
        return export_sam2.build_models(args)[1]
    if spec.role == "detector":
        return export_grounding_dino.build_model(args)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", help="manifest to benchmark (default: export the tiny set into a temp folder)")
    p.add_argument("--quick", action="store_true", help="3 repeats instead of 20")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--providers", default="tensorrt,cuda,cpu")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager comparison")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (torch gets the same)")
    a = p.parse_args(argv)
    repeats = a.repeats or (3 if a.quick else 20)
    from dream2flow.perception.engine import EngineConfig, InferenceEngine

    if a.manifest:
        manifest = Path(a.manifest)
    else:
        from export_tools.tiny import cached_tiny_set

        manifest = cached_tiny_set()
    cfg = EngineConfig(providers=tuple(s.strip() for s in a.providers.split(",")), intra_op_threads=a.threads,
                       warmup=True)
    engine = InferenceEngine(manifest, config=cfg)
    torch = None
    if not a.no_torch:
        try:
            import torch  # noqa: F811
            if a.threads:
                torch.set_num_threads(a.threads)
        except ImportError:
            torch = None
    for spec in engine.manifest.models:
        sess = engine.session(spec.name)
        feeds = sess.dummy_feeds("opt")
        # random rather than zero inputs for float tensors (zeros can hit fast paths)
        rng = np.random.default_rng(0)
        for k, v in feeds.items():
            if v.dtype == np.float32:
                feeds[k] = rng.standard_normal(v.shape).astype(np.float32)
        if spec.role == "detector":
            feeds["input_ids"] = np.full_like(feeds["input_ids"], 2005)
            feeds["input_ids"][:, 0], feeds["input_ids"][:, -1] = 101, 102
        if spec.role == "point_tracker":
            feeds["queries"][..., 0] = 0
        r = timeit(lambda: sess.session.run(None, feeds), repeats)
        line = {"bench": "perception", "model": spec.name, "role": spec.role, "provider": sess.provider,
                "tiny_random": spec.tiny_random, "fixture": spec.fixture,
                "input_shapes": {k: list(v.shape) for k, v in feeds.items()}, "ort_median_ms": round(r["median_ms"], 3),
                "ort_min_ms": round(r["min_ms"], 3), "repeats": repeats}
        twin = torch_twin(spec) if torch is not None else None
        if twin is not None:
            targs = tuple(torch.from_numpy(feeds[t.name]) for t in spec.inputs)
            with torch.no_grad():
                rt = timeit(lambda: twin(*targs), repeats)
            line.update({"torch_eager_median_ms": round(rt["median_ms"], 3),
                         "ratio_ort_over_torch": round(r["median_ms"] / rt["median_ms"], 3)})
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
