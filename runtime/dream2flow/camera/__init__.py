"""Cameras (issue 7): the ``Camera`` protocol and its implementations, and the eye-to-hand
calibration of ``T_base_cam``.

- ``protocol``: ``Camera`` (``capture() -> RGBD``, ``model() -> CameraModel``, ``close()``).
- ``configs``: one config dataclass per kind (``RealSenseConfig``, ``RecordedConfig``,
  ``SimCameraConfig``, ``MockCameraConfig``), ``camera_config_from_dict``, ``make_camera``.
- ``realsense`` (pyrealsense2, lazy), ``recorded`` (record/replay folders, ``.bag``),
  ``sim_camera`` (``dream2flow.sim``, lazy), ``mock`` (synthetic test camera).
- ``charuco`` (board, detection, exact renderer), ``handeye`` (AX = ZB math),
  ``calibration`` (collect, calibrate, report, write), ``sim_calibration`` (simulated cell),
  ``cell`` (the real cell's ``hw/robot/robot.toml``).
"""

from dream2flow.camera.configs import (CameraConfig, MockCameraConfig, RealSenseConfig, RecordedConfig,
                                       SimCameraConfig, camera_config_from_dict, make_camera)
from dream2flow.camera.protocol import Camera, camera_info

__all__ = ["Camera", "CameraConfig", "MockCameraConfig", "RealSenseConfig", "RecordedConfig", "SimCameraConfig",
           "camera_config_from_dict", "camera_info", "make_camera"]
