"""Shared test set-up: offscreen MuJoCo, opt-in hardware tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_hil = pytest.mark.skip(reason="hardware-in-the-loop: set D2F_POLYMETIS_HOST / D2F_FR3_IP / D2F_REALSENSE=1 to run")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (set D2F_GPU=1 on a GPU machine)")
    for item in items:
        if "hil" in item.keywords and not (os.environ.get("D2F_POLYMETIS_HOST") or os.environ.get("D2F_REALSENSE")
                                           or os.environ.get("D2F_FR3_IP")):
            item.add_marker(skip_hil)
        if "gpu" in item.keywords and not os.environ.get("D2F_GPU"):
            item.add_marker(skip_gpu)
