"""Regenerate the vendored Panda meshes in this folder from the ``dm-robotics-panda`` package.

Why: the package's OBJ meshes are 13 MB of text with a 6-colour palette texture. We keep only
what the simulation needs: per link, one binary STL per palette colour (the colour becomes a
plain material, so no texture coordinates are needed), decimated by vertex clustering to a
1.5 mm grid (sub-pixel at the sim camera's distance), about 1/10 of the size and faster to
render on a CPU. Run once by hand (not at run time): ``python vendor_meshes.py [SRC_DIR]``.
Source: dm-robotics-panda 0.4.8, ``dm_robotics/panda/assets/panda/`` (Apache-2.0, see NOTICE).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

MESHES = ("link0", "link1", "link2", "link3", "link4", "link5", "link6", "link7", "hand", "finger")
# texture palette colour (RGB) -> name used in the STL file names / materials
PALETTE = {(64, 64, 64): "dark", (204, 204, 204): "grey", (255, 255, 255): "white",
           (205, 138, 39): "orange", (0, 0, 255): "blue", (0, 255, 0): "green"}
GRID_M = 0.0015


def parse_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> vertices [V,3], texcoords [T,2], faces [F,3,2] (vertex index, texcoord index), 0-based."""
    V, VT, F = [], [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            V.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("vt "):
            VT.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("f "):
            idx = [(int(p.split("/")[0]) - 1, int(p.split("/")[1]) - 1) for p in line.split()[1:]]
            for k in range(1, len(idx) - 1):
                F.append([idx[0], idx[k], idx[k + 1]])
    return np.asarray(V), np.asarray(VT), np.asarray(F, dtype=np.int64)


def cluster(V: np.ndarray, F: np.ndarray, grid: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex-clustering decimation: merge vertices in the same grid cell, drop degenerate faces."""
    keys = np.floor(V / grid).astype(np.int64)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    n = inv.max() + 1
    newV = np.zeros((n, 3))
    np.add.at(newV, inv, V)
    newV /= np.bincount(inv, minlength=n)[:, None]
    newF = inv[F]
    ok = (newF[:, 0] != newF[:, 1]) & (newF[:, 1] != newF[:, 2]) & (newF[:, 0] != newF[:, 2])
    newF = np.unique(newF[ok], axis=0)
    return newV, newF


def write_stl(path: Path, V: np.ndarray, F: np.ndarray) -> None:
    tri = V[F].astype(np.float32)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    rec = np.zeros(len(F), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["n"], rec["v"] = n, tri
    with path.open("wb") as f:
        f.write(b"dream2flow vendored panda mesh".ljust(80, b" "))
        f.write(struct.pack("<I", len(F)))
        f.write(rec.tobytes())


def main(src: Path, dst: Path) -> None:
    import cv2

    tex = cv2.imread(str(src / "panda.png"), cv2.IMREAD_UNCHANGED)[:, :, 2::-1]  # BGRA -> RGB
    h, w = tex.shape[:2]
    for name in MESHES:
        V, VT, F = parse_obj(src / f"{name}.obj")
        uv = VT[F[:, :, 1]].mean(axis=1)
        px = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
        py = np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1)
        cols = tex[py, px]
        for rgb, cname in PALETTE.items():
            sel = (cols == np.array(rgb)).all(axis=1)
            if sel.sum() < 4:
                continue
            cv, cf = cluster(V, F[sel, :, 0], GRID_M)
            if len(cf):
                write_stl(dst / f"{name}_{cname}.stl", cv, cf)
                print(f"{name}_{cname}: {sel.sum()} -> {len(cf)} faces")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        src_dir = Path(sys.argv[1])
    else:
        import dm_robotics.panda as _p  # type: ignore[import-not-found]

        src_dir = Path(_p.__file__).parent / "assets" / "panda"
    main(src_dir, Path(__file__).parent)
