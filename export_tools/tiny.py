"""Export every tiny model (same scripts and flags as the real ones, plus ``--tiny-random``) and
the CoTracker3 I/O fixture into one folder with one manifest. Used by tests and the benchmark.

    python export_tools/tiny.py --out /tmp/d2f-tiny-models
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export_tools import common  # noqa: E402

_CACHE: dict[str, Path] = {}


def export_tiny_set(out: Path, seed: int = 0, quiet: bool = True) -> Path:
    """Returns the manifest path."""
    import contextlib
    import io

    from export_tools import (export_depth_anything, export_grounding_dino, export_hand_vitpose, export_sam2,
                              io_fixtures)

    common.offline_hub()
    out = Path(out)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        for mod in (export_grounding_dino, export_sam2, export_depth_anything, export_hand_vitpose):
            mod.main(["--tiny-random", "--out", str(out), "--seed", str(seed)])
        io_fixtures.make_tracker_fixture(out)
    return out / "manifest.toml"


def cached_tiny_set(subprocess_export: bool = True) -> Path:
    """One export per process (tests share it; a test that damages files copies them first).
    By default the export runs in a child process, so torch is never imported into the caller
    (the runtime's tests check that the runtime alone never imports it)."""
    if "dir" not in _CACHE:
        import atexit
        import shutil

        out = Path(tempfile.mkdtemp(prefix="d2f-tiny-models-"))
        atexit.register(shutil.rmtree, out, True)
        if subprocess_export:
            import os
            import subprocess

            env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
            r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--out", str(out)], env=env,
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"tiny model export failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        else:
            export_tiny_set(out)
        _CACHE["dir"] = out
    return _CACHE["dir"] / "manifest.toml"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(export_tiny_set(Path(a.out), a.seed, quiet=False))


if __name__ == "__main__":
    main()
