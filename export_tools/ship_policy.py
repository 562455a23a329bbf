"""Ships a trained RL policy: copies ``RUN/policy.onnx`` to ``exported_models/<NAME>.onnx``, writes
its manifest entry as ``exported_models/<NAME>.spec.json`` (sha256, I/O, the environment it was
trained for, the training command, parity figures) and regenerates ``manifest.toml``
(``real_manifest.py``).

    python export_tools/ship_policy.py --run RUN_DIR --name door_panda_flow_reward

The ONNX file is small (an MLP) and committed; ``.gitignore`` un-ignores it by name.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common, real_manifest  # noqa: E402
from dream2flow.perception.manifest import ModelSpec, sha256_file  # noqa: E402
from dream2flow.rl.policy import load_spec_file, spec_path, write_spec  # noqa: E402


def ship(run: Path, name: str, out: Path = real_manifest.OUT) -> ModelSpec:
    src = run / "policy.onnx"
    spec = load_spec_file(spec_path(src))
    if sha256_file(src) != spec.sha256:
        raise SystemExit(f"{src} does not match its {spec_path(src).name} (sha256): re-export the run")
    dst = out / f"{name}.onnx"
    shutil.copyfile(src, dst)
    shipped = ModelSpec(**{**spec.__dict__, "name": name, "file": dst.name, "sha256": sha256_file(dst)})
    write_spec(shipped, spec_path(dst))
    real_manifest.main()
    return shipped


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path, help="a 'dream2flow rl train --out' folder")
    ap.add_argument("--name", required=True, help="manifest name, e.g. door_panda_flow_reward")
    args = ap.parse_args(argv)
    spec = ship(args.run, args.name)
    print(f"shipped {spec.name}: {common.REPO / 'exported_models' / spec.file} ({spec.sha256[:12]})")


if __name__ == "__main__":
    main()
