"""Installed = working: the built wheel, installed (not editable) into a fresh venv in a temporary
folder, runs ``dream2flow execute`` and ``dream2flow flow`` from another directory, with no
source tree, no ``D2F_HW_DIR`` and no ``PYTHONPATH`` in sight.

The fresh venv gets its third-party packages from the running environment through a ``.pth``
line (so the test downloads nothing); a ``.pth`` line adds a folder without processing the
``.pth`` files in it, so the development checkout's editable hook stays out. The test checks
that ``dream2flow`` really is imported from the venv's own site-packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("installed")
    src = base / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("runtime", "hw"):  # runtime/dream2flow/hw is a link to ../../hw: both travel
        shutil.copytree(REPO / name, src / name, symlinks=True, ignore=ignore)
    r = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"),
              str(src)])
    assert r.returncode == 0, r.stdout + r.stderr
    wheel = next((base / "dist").glob("dream2flow-*.whl"))
    venv = base / "venv"
    r = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_d2f_test_dependencies.pth").write_text("".join(f"{p}\n" for p in paths))
    r = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)])
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.rmtree(src)  # nothing of the source tree is left to be found
    work = base / "elsewhere"
    work.mkdir()
    return {"py": py, "exe": venv / "bin" / "dream2flow", "site": site, "work": work, "wheel": wheel}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "D2F_HW_DIR", "PYTHONHOME")}
    env.setdefault("MUJOCO_GL", "egl")
    return env


def test_wheel_ships_the_default_configuration(installed: dict[str, Path]) -> None:
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for f in ("robot/control.toml", "robot/panda_limits.toml", "robot/polymetis.toml", "robot/panda.urdf",
              "cameras/sim_d435.toml", "service.example.toml"):
        assert f"dream2flow/hw/{f}" in names, f
    r = _run([str(installed["py"]), "-c", "import dream2flow, dream2flow.config as c; print(dream2flow.__file__); "
              "print(c.hw_dir()); print(c.load_robot_limits().dq_max[0])"], cwd=installed["work"], env=_env())
    assert r.returncode == 0, r.stderr
    mod, hw, dq = r.stdout.split()
    assert Path(mod).is_relative_to(installed["site"]) and Path(hw).is_relative_to(installed["site"])
    assert float(dq) == 2.175


def test_installed_execute_and_flow_run_from_another_folder(installed: dict[str, Path]) -> None:
    import cv2
    from synthetic_scene import cached_scene

    from dream2flow.config import load_robot_limits, save_camera
    from dream2flow.io_utils import write_rgb
    from dream2flow.types import ObjectFlow, Plan
    from dream2flow.video.encode import write_video

    work = installed["work"]
    lim = load_robot_limits()
    H = 31
    s = np.linspace(0, 1, H)
    q = lim.q_ready + np.sin(np.pi * s)[:, None] ** 2 * np.array([0.2, 0.1, -0.1, 0.15, 0.2, 0.1, 0.2])
    Plan(q=q, dt_s=0.05, gripper=np.zeros(H), predicted_points=np.zeros((H, 1, 3))).save(work / "plan.npz")
    r = _run([str(installed["exe"]), "execute", "--plan", "plan.npz", "--backend", "kinematic", "--json"],
             cwd=work, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"ok": true' in r.stdout.splitlines()[-1]

    sc = cached_scene(width=320, height=240, num_frames=16, seed=0)
    write_video(work / "video.mp4", np.asarray(sc.frames), sc.fps)
    write_rgb(work / "i0.png", np.asarray(sc.frames[0]))
    np.save(work / "d0.npy", np.asarray(sc.depth_m[0]))
    np.save(work / "rel.npy", sc.rel_depth(seed=0))
    save_camera(sc.camera, work / "cam.toml")
    x0, y0, x1, y1 = sc.box()
    r = _run([str(installed["exe"]), "flow", "--video", "video.mp4", "--rgb", "i0.png", "--depth", "d0.npy",
              "--camera", "cam.toml", "--box", f"{x0},{y0},{x1},{y1}", "--video-depth", "rel.npy", "--points", "64",
              "--out", "flow"], cwd=work, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    flow = ObjectFlow.load(work / "flow" / "flow.npz")
    assert flow.points_base.shape == (16, 64, 3) and flow.visible.mean() > 0.5
    assert cv2.VideoCapture(str(work / "flow" / "tracks.mp4")).isOpened()
