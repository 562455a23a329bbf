"""ONNX graphs with a real model's exact I/O signature and trivial maths, for testing the runtime's
plumbing (engine, manifest check, pre/post-processing) where the real architecture cannot be
installed. Built with ``onnx.helper`` (no torch). Always registered with ``fixture = true`` and a
name ending in ``_io_fixture``: never passed off as the model.

- ``cotracker3_io_fixture``: CoTracker3's signature (``video`` [1,frames,3,H,W], ``queries``
  [1,points,3] -> ``tracks`` [1,frames,points,2], ``visibility``/``confidence`` [1,frames,points]);
  every point stays where it was queried and is visible. It tests the wrapper, not tracking.

    python export_tools/io_fixtures.py --out /tmp/models
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402
from export_tools.export_cotracker3 import MODEL_HW  # noqa: E402


def static_tracker_model(height: int, width: int, opset: int = common.DEFAULT_OPSET) -> Any:
    import onnx
    from onnx import TensorProto, helper

    H, W = height, width
    nodes = [
        helper.make_node("Constant", [], ["i1"], value=helper.make_tensor("i1", TensorProto.INT64, [1], [1])),
        helper.make_node("Constant", [], ["i3"], value=helper.make_tensor("i3", TensorProto.INT64, [1], [3])),
        helper.make_node("Constant", [], ["i2"], value=helper.make_tensor("i2", TensorProto.INT64, [1], [2])),
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", TensorProto.INT64, [1], [2])),
        helper.make_node("Slice", ["queries", "i1", "i3", "i2"], ["xy"]),            # [1,N,2]
        helper.make_node("Unsqueeze", ["xy", "i1"], ["xy1"]),                         # [1,1,N,2]
        helper.make_node("Shape", ["video"], ["vshape"]),
        helper.make_node("Shape", ["queries"], ["qshape"]),
        helper.make_node("Slice", ["vshape", "i1", "i2"], ["T"]),
        helper.make_node("Slice", ["qshape", "i1", "i2"], ["N"]),
        helper.make_node("Concat", ["i1", "T", "N", "two"], ["tshape"], axis=0),
        helper.make_node("Expand", ["xy1", "tshape"], ["tracks"]),
        helper.make_node("Concat", ["i1", "T", "N"], ["vis_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["vis_shape"], ["visibility"],
                         value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("Identity", ["visibility"], ["confidence"]),
    ]
    graph = helper.make_graph(
        nodes, "cotracker3_io_fixture",
        [helper.make_tensor_value_info("video", TensorProto.FLOAT, [1, "frames", 3, H, W]),
         helper.make_tensor_value_info("queries", TensorProto.FLOAT, [1, "points", 3])],
        [helper.make_tensor_value_info("tracks", TensorProto.FLOAT, [1, "frames", "points", 2]),
         helper.make_tensor_value_info("visibility", TensorProto.FLOAT, [1, "frames", "points"]),
         helper.make_tensor_value_info("confidence", TensorProto.FLOAT, [1, "frames", "points"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="dream2flow-io-fixture")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def make_tracker_fixture(out: Path, manifest: Path | None = None, *, height: int = MODEL_HW[0] // 8,
                         width: int = MODEL_HW[1] // 8, name: str = "cotracker3_io_fixture") -> Any:
    """Write the fixture (default at 1/8 of CoTracker3's 384x512 to stay fast) and register it."""
    import numpy as np
    import onnx

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.onnx"
    onnx.save(static_tracker_model(height, width), str(path))
    # "parity" of a fixture: its outputs against the maths it claims (queries held still, all visible)
    rng = np.random.default_rng(0)
    video = rng.uniform(0, 255, (1, 5, 3, height, width)).astype(np.float32)
    q = np.concatenate([np.zeros((1, 7, 1)), rng.uniform(0, width - 1, (1, 7, 2))], -1).astype(np.float32)
    ref = {"tracks": np.broadcast_to(q[:, None, :, 1:], (1, 5, 7, 2)).copy(), "visibility": np.ones((1, 5, 7), np.float32),
           "confidence": np.ones((1, 5, 7), np.float32)}
    parity = common.check_parity(name, [({"video": video, "queries": q}, ref)], atol=0.0, rtol=0.0, onnx_path=path)
    return common.register(
        Path(manifest) if manifest else out / "manifest.toml", name=name, role="point_tracker", onnx_path=path,
        opset=common.DEFAULT_OPSET, source_checkpoint="none: I/O fixture with CoTracker3's signature (NOT CoTracker3)",
        license="test artefact", export_command=f"python export_tools/io_fixtures.py --out {out}", parity=parity,
        fixture=True, notes="Every point stays at its query and is visible; tests the runtime wrapper only.",
        preprocess={"height": height, "width": width, "visibility_threshold": 0.9, "use_confidence": False,
                    "support_grid": 6, "max_frames": 96, "warmup_frames": 4, "warmup_points": 8},
        trt_profile={})


def main(argv: Sequence[str] | None = None) -> Any:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--manifest")
    args = p.parse_args(argv)
    return make_tracker_fixture(Path(args.out), Path(args.manifest) if args.manifest else None)


if __name__ == "__main__":
    main()
