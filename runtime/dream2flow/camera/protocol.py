"""The ``Camera`` protocol every RGB-D source implements (RealSense, a recording, the simulator).

Why a protocol: the pipeline needs I0/D0 and the camera model, and must not care whether
they come from a RealSense on the robot, a folder recorded on a laptop, or MuJoCo.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from dream2flow.types import RGBD, CameraModel


@runtime_checkable
class Camera(Protocol):
    """An RGB-D camera.

    - ``capture()`` the next frame: ``RGBD`` with ``rgb`` [H,W,3] uint8 RGB and ``depth_m``
      [H,W] float32 metres (0 = invalid), depth registered to the colour image (same
      pixel grid, the colour camera's ``K``). Raises ``NotReady`` when no frame can be had.
    - ``model()`` the ``CameraModel`` of the colour image (``K``, size, ``T_base_cam``).
    - ``close()`` release the device or files (idempotent).
    """

    def capture(self) -> RGBD: ...

    def model(self) -> CameraModel: ...

    def close(self) -> None: ...


def camera_info(camera: Camera) -> dict[str, Any]:
    """What ``dream2flow camera info`` prints: the implementation's ``info()`` when it has
    one, plus the camera model's size and intrinsics."""
    model = camera.model()
    out: dict[str, Any] = {"kind": type(camera).__name__}
    extra = getattr(camera, "info", None)
    if callable(extra):
        out.update(extra())
    out.update({
        "width": model.width,
        "height": model.height,
        "fx": float(model.K[0, 0]), "fy": float(model.K[1, 1]),
        "cx": float(model.K[0, 2]), "cy": float(model.K[1, 2]),
        "K": model.K.tolist(),
        "T_base_cam": model.T_base_cam.tolist(),
        "depth_scale_m": model.depth_scale_m,
        "serial": model.serial,
    })
    return out
