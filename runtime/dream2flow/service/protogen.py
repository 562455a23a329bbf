"""Regenerate the gRPC stubs in ``dream2flow/v1/`` from ``protos/dream2flow/v1/*.proto``.

Why a module: the stubs are committed (the robot computer needs no protoc), so a test
regenerates them into a temporary folder and fails on any difference. Run after editing a
``.proto``::

    .venv/bin/python -m dream2flow.service.protogen

``grpcio-tools`` must be the version of ``grpcio`` (the generated ``*_pb2_grpc.py`` refuse an
older ``grpcio`` at import time); it is a development dependency only.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_FILES = ("dream2flow/v1/task.proto", "dream2flow/v1/robot.proto")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def generated_names() -> list[str]:
    """File names the generator writes into ``dream2flow/v1/``."""
    return [Path(p).stem + s for p in PROTO_FILES for s in GENERATED_SUFFIXES]


def generate(out_root: str | Path, proto_root: str | Path | None = None) -> list[Path]:
    """Run protoc (from grpcio-tools) writing ``<out_root>/dream2flow/v1/*``; returns the files."""
    from grpc_tools import protoc  # development dependency: imported only here

    proto_root = Path(proto_root) if proto_root else repo_root() / "protos"
    out_root = Path(out_root)
    (out_root / "dream2flow" / "v1").mkdir(parents=True, exist_ok=True)
    args = ["grpc_tools.protoc", f"-I{proto_root}", f"--python_out={out_root}", f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}", *[str(proto_root / p) for p in PROTO_FILES]]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with code {rc}: {' '.join(args)}")
    return [out_root / "dream2flow" / "v1" / n for n in generated_names()]


def main() -> int:
    files = generate(repo_root() / "runtime")
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
