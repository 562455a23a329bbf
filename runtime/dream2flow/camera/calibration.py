"""Eye-to-hand extrinsic calibration (``T_base_cam``) with a ChArUco board held by the gripper.

The procedure, and why:
1. ``collect_samples``: the control layer moves the robot through a list of joint
   configurations; at each, after it settles, the *measured* joints give
   ``T_base_gripper`` by forward kinematics and the camera gives an image (a fresh one:
   frames queued during the motion are skipped).
2. ``calibrate``: ChArUco corners are detected and the board pose ``T_cam_board`` is
   estimated per image (PnP); images without a usable board are set aside with a reason.
   It refuses (``CalibrationFailed``) when fewer than ``min_poses`` images remain, or when
   the gripper's rotations do not span two axis directions (hand-eye is then
   under-determined), then solves ``A_i Z = X B_i`` in closed form and refines ``X`` and
   ``Z`` on the corners' reprojection error (see ``handeye``). Poses whose error is far
   above the rest (a bad detection, the board slipped) are dropped once and it re-solves.
3. A residual report says per pose how well the loop closes (mm, deg, px); a result worse
   than the configured bounds is refused unless ``accept_poor``.
4. ``write_calibration`` writes the camera TOML (``config.save_camera``) with the new
   ``T_base_cam`` and the report as JSON beside it.

Forward kinematics: a small NumPy Panda FK (modified DH, the team's table) so this module
does not depend on the planner's JAX kinematics; any ``fk(q) -> T_base_gripper`` can be
passed instead. The "gripper" frame is the TCP (any frame rigid with the hand would do:
``Z`` absorbs it).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dream2flow.camera import handeye
from dream2flow.camera.charuco import BoardDetection, BoardSpec, detect_board
from dream2flow.errors import ExecutionFailed, InvalidInput, NotReady, PerceptionFailed
from dream2flow.log import get_logger
from dream2flow.types import CameraModel, Plan

log = get_logger("camera.calibration")


class CalibrationFailed(PerceptionFailed):
    """The calibration images cannot give a trustworthy ``T_base_cam`` (too few board
    views, too little rotation, or residuals over the bounds)."""


# --------------------------------------------------------------------------- kinematics
def panda_fk(q: np.ndarray, frame: str = "tcp") -> np.ndarray:
    """Panda forward kinematics: joints [...,7] rad -> ``T_base_frame`` [...,4,4] for ``frame``
    ``"flange"`` or ``"tcp"`` (the control layer's NumPy FK: one kinematic model for the whole runtime)."""
    from dream2flow.control.kinematics import fk_links

    index = {"flange": 7, "tcp": 8}.get(frame)
    if index is None:
        raise InvalidInput(f"unknown frame {frame!r} (flange or tcp)")
    return fk_links(np.asarray(q, dtype=np.float64))[..., index, :, :]


# --------------------------------------------------------------------------- data
@dataclass
class CalibrationSample:
    """One robot pose: ``T_base_gripper`` [4,4] (from FK of the measured joints), the image
    [H,W,3] uint8 RGB taken there, and the joints ``q`` [7] rad when known."""

    T_base_gripper: np.ndarray
    rgb: np.ndarray
    q: np.ndarray | None = None


@dataclass(frozen=True)
class CalibrationConfig:
    """Acceptance bounds and solver choice.

    ``min_poses``: images with a board pose needed (5 is a floor; use 12–20).
    ``min_corners``: ChArUco corners per image for a pose. ``min_rotation_deg``: the
    largest rotation between two poses. ``min_axis_spread_deg``: how far apart the
    motions' rotation axes are (see ``handeye.rotation_diversity``).
    ``max_reprojection_rms_px`` / ``max_translation_residual_mm``: accept bounds.
    ``method``: ``park_martin`` (NumPy, default), ``opencv_tsai|park|horaud|andreff|
    daniilidis`` (``cv2.calibrateHandEye``) or ``opencv_shah|li``
    (``cv2.calibrateRobotWorldHandEye``). ``refine``: reprojection refinement."""

    min_poses: int = 5
    min_corners: int = 8
    min_rotation_deg: float = 15.0
    min_axis_spread_deg: float = 10.0
    max_reprojection_rms_px: float = 1.5
    max_translation_residual_mm: float = 20.0
    method: str = "park_martin"
    refine: bool = True
    outlier_factor: float = 4.0

    def __post_init__(self) -> None:
        if self.min_poses < 3:
            raise InvalidInput("calibration needs min_poses >= 3 (two independent motions)")
        if self.method not in METHODS:
            raise InvalidInput(f"unknown calibration method {self.method!r}; choose from {', '.join(METHODS)}")


METHODS = ("park_martin", "opencv_tsai", "opencv_park", "opencv_horaud", "opencv_andreff", "opencv_daniilidis",
           "opencv_shah", "opencv_li")


@dataclass
class CalibrationResult:
    """``T_base_cam`` [4,4] (the answer), ``T_gripper_board`` [4,4] (the board's mount, a
    by-product worth checking against the mount's drawing), and the residual report."""

    T_base_cam: np.ndarray
    T_gripper_board: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.report.get("passed"))


def _solve(method: str, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if method == "park_martin":
        return handeye.closed_form(A, B)
    name = method.removeprefix("opencv_")
    if name in ("shah", "li"):
        return handeye.opencv_robot_world(A, B, name)
    return handeye.opencv_hand_eye(A, B, name)


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    return {"mean": float(x.mean()), "max": float(x.max()), "median": float(np.median(x))}


def calibrate(samples: Sequence[CalibrationSample], spec: BoardSpec, K: np.ndarray, *,
              dist: np.ndarray | None = None, config: CalibrationConfig | None = None,
              accept_poor: bool = False) -> CalibrationResult:
    """Eye-to-hand calibration from (``T_base_gripper``, image) pairs; see the module docstring.
    ``K`` [3,3] (and optional OpenCV ``dist``) are the colour camera's intrinsics."""
    cfg = config or CalibrationConfig()
    K = np.asarray(K, dtype=np.float64)
    rejected: list[dict[str, Any]] = []
    used: list[int] = []
    dets: list[BoardDetection] = []
    for i, s in enumerate(samples):
        T = np.asarray(s.T_base_gripper, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise InvalidInput(f"calibration sample {i}: T_base_gripper must be a finite 4x4 matrix")
        det = detect_board(s.rgb, spec, K, dist, min_corners=cfg.min_corners)
        if det.ok:
            used.append(i)
            dets.append(det)
        else:
            rejected.append({"index": i, "reason": det.reason, "corners": int(len(det.ids))})
    n_total = len(samples)
    if len(used) < cfg.min_poses:
        why = "; ".join(f"pose {r['index']}: {r['reason']}" for r in rejected[:6])
        raise CalibrationFailed(
            f"the board was seen in only {len(used)} of {n_total} poses (need at least {cfg.min_poses}): "
            f"{why}{' ...' if len(rejected) > 6 else ''}")

    def solve(idx: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        A = np.stack([np.asarray(samples[i].T_base_gripper, dtype=np.float64) for i in idx])
        B = np.stack([dets[used.index(i)].T_cam_board for i in idx])
        rot_max, spread = handeye.rotation_diversity(A)
        if rot_max < cfg.min_rotation_deg or spread < cfg.min_axis_spread_deg:
            raise CalibrationFailed(
                f"the calibration poses lack rotation diversity: largest rotation between poses "
                f"{rot_max:.1f} deg (need {cfg.min_rotation_deg:g}), rotation-axis spread {spread:.1f} deg "
                f"(need {cfg.min_axis_spread_deg:g}); tilt the wrist about different axes between poses")
        X0, Z0 = _solve(cfg.method, A, B)
        info: dict[str, Any] = {"rotation_max_deg": rot_max, "axis_spread_deg": spread}
        X, Z = X0, Z0
        if cfg.refine:
            d = [dets[used.index(i)] for i in idx]
            X, Z, info["refine"] = handeye.refine(A, X0, Z0, [x.object_points for x in d], [x.corners_px for x in d],
                                                  K, dist)
        info["closed_form_vs_final"] = {
            "translation_mm": float(np.linalg.norm(X[:3, 3] - X0[:3, 3]) * 1000.0),
            "rotation_deg": float(handeye.rotation_angle_deg(X[:3, :3].T @ X0[:3, :3]))}
        return A, B, X, Z, info

    idx = list(used)
    A, B, X, Z, info = solve(idx)
    errs = handeye.reprojection_errors(A, X, Z, [dets[used.index(i)].object_points for i in idx],
                                       [dets[used.index(i)].corners_px for i in idx], K, dist)
    rms = np.array([float(np.sqrt(np.mean(e ** 2))) for e in errs])
    bad = [i for i, r in zip(idx, rms) if r > max(cfg.outlier_factor * float(np.median(rms)), 1.0)]
    if bad and len(idx) - len(bad) >= cfg.min_poses:
        for i in bad:
            rejected.append({"index": i, "reason": f"outlier: reprojection {rms[idx.index(i)]:.2f} px "
                                                   f"(median {float(np.median(rms)):.2f} px)", "corners":
                             int(len(dets[used.index(i)].ids))})
        idx = [i for i in idx if i not in bad]
        A, B, X, Z, info = solve(idx)
        errs = handeye.reprojection_errors(A, X, Z, [dets[used.index(i)].object_points for i in idx],
                                           [dets[used.index(i)].corners_px for i in idx], K, dist)
        rms = np.array([float(np.sqrt(np.mean(e ** 2))) for e in errs])
    dt_mm, dR_deg = handeye.pose_consistency(A, B, X, Z)
    all_err = np.concatenate(errs)
    per_pose = [{"index": i, "corners": int(len(dets[used.index(i)].ids)),
                 "reprojection_rms_px": float(r), "translation_residual_mm": float(t), "rotation_residual_deg": float(a),
                 "pnp_rms_px": float(dets[used.index(i)].reprojection_rms_px)}
                for i, r, t, a in zip(idx, rms, dt_mm, dR_deg)]
    overall_rms = float(np.sqrt(np.mean(all_err ** 2)))
    problems = []
    if overall_rms > cfg.max_reprojection_rms_px:
        problems.append(f"reprojection RMS {overall_rms:.2f} px > {cfg.max_reprojection_rms_px:g} px")
    if dt_mm.max() > cfg.max_translation_residual_mm:
        problems.append(f"worst pose translation residual {dt_mm.max():.1f} mm > {cfg.max_translation_residual_mm:g} mm")
    report = {
        "method": cfg.method, "refined": cfg.refine, "board": spec.to_dict(),
        "num_poses": n_total, "num_used": len(idx), "used": idx,
        "rejected": sorted(rejected, key=lambda r: r["index"]),
        "rotation_max_deg": info["rotation_max_deg"], "axis_spread_deg": info["axis_spread_deg"],
        "reprojection_rms_px": overall_rms, "reprojection_max_px": float(all_err.max()),
        "translation_residual_mm": _stats(dt_mm), "rotation_residual_deg": _stats(dR_deg),
        "closed_form_vs_final": info["closed_form_vs_final"], "refine": info.get("refine"),
        "per_pose": per_pose, "T_base_cam": X.tolist(), "T_gripper_board": Z.tolist(),
        "passed": not problems, "problems": problems,
    }
    if problems and not accept_poor:
        raise CalibrationFailed("calibration residuals too large: " + "; ".join(problems)
                                + " (check the board's square size, that it does not move in the gripper, "
                                  "and the camera intrinsics)")
    return CalibrationResult(T_base_cam=X, T_gripper_board=Z, report=report)


# --------------------------------------------------------------------------- robot side
def min_jerk_path(q0: np.ndarray, q1: np.ndarray, dq_max: np.ndarray, *, speed_fraction: float = 0.2,
                  dt_s: float = 0.01, min_duration_s: float = 1.0) -> np.ndarray:
    """Joint path [H,7] from ``q0`` to ``q1`` along a minimum-jerk profile whose peak joint
    speed (1.875·Δq/T) stays under ``speed_fraction`` of ``dq_max``: slow and smooth, as a
    calibration move should be."""
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    delta = q1 - q0
    T = max(min_duration_s, float(np.max(1.875 * np.abs(delta) / (speed_fraction * np.asarray(dq_max)))))
    n = int(math.ceil(T / dt_s)) + 1
    s = np.linspace(0.0, 1.0, n)
    p = 10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5
    return q0 + p[:, None] * delta


def move_with_control_loop(robot: Any, q_target: np.ndarray, *, speed_fraction: float = 0.2,
                           rate_hz: float | None = None, consent: bool = False) -> None:
    """Move ``robot`` to ``q_target`` through the control layer (``control.loop.execute_plan``:
    its safety checks, watchdog and e-stop apply) along a slow minimum-jerk path. ``consent``: the
    operator's ``--yes`` (a real arm moves only with it).

    The plan's gripper channel is constant 0: the loop acts only on *changes* of that channel
    (0 → 1 grasp, 1 → 0 open, starting from 0), so a constant 0 sends no gripper command at
    all and the board the hand holds stays held."""
    from dream2flow.config import load_robot_limits

    try:
        from dream2flow.control.loop import execute_plan
    except ImportError as exc:
        raise NotReady(f"the control loop (dream2flow.control.loop) is not available: {exc}") from None
    limits = load_robot_limits()
    problems = limits.check_q(np.asarray(q_target, dtype=np.float64))
    if problems:
        raise InvalidInput(f"calibration pose {np.round(q_target, 4).tolist()} is outside the joint limits: "
                           + ", ".join(problems))
    q0 = robot.state().q
    dt = 0.02
    q = min_jerk_path(q0, q_target, limits.dq_max, speed_fraction=speed_fraction, dt_s=dt)
    plan = Plan(q=q, dt_s=dt, gripper=np.zeros(len(q), np.float32),
                predicted_points=np.zeros((len(q), 0, 3), np.float32), meta={"method": "calibration_move"})
    result = execute_plan(plan, robot, rate_hz=rate_hz, consent=consent)
    if not getattr(result, "ok", False):
        raise ExecutionFailed(f"calibration move failed: {getattr(result, 'reason', result)}")


def collect_samples(joint_configs: Sequence[Sequence[float]] | np.ndarray, robot: Any, camera: Any, *,
                    fk: Callable[[np.ndarray], np.ndarray] = panda_fk,
                    move_to: Callable[[np.ndarray], None] | None = None, settle_s: float = 1.0,
                    fresh_frames: int = 3, max_joint_error_rad: float = 0.02,
                    on_pose: Callable[[int, int], None] | None = None,
                    consent: bool = False) -> list[CalibrationSample]:
    """Visit each joint configuration [N,7] and record (``T_base_gripper`` = ``fk(measured q)``,
    image). ``move_to(q)`` moves the robot (default: ``move_with_control_loop``); after it
    the robot settles ``settle_s`` (simulated time via ``robot.step`` for simulated robots,
    wall time otherwise) and ``fresh_frames`` frames are captured, keeping the last, so the
    image is not one queued while the arm was moving. ``consent``: the operator's ``--yes`` for a real
    arm (passed to the control loop)."""
    qs = np.asarray(joint_configs, dtype=np.float64)
    if qs.ndim != 2 or qs.shape[1] != 7:
        raise InvalidInput(f"calibration poses must be [N,7] joint angles, got shape {list(qs.shape)}")
    mover = move_to or (lambda q: move_with_control_loop(robot, q, consent=consent))
    robot.connect()
    samples = []
    for k, q in enumerate(qs):
        if on_pose is not None:
            on_pose(k, len(qs))
        mover(q)
        if getattr(robot, "simulated", False):
            robot.step(settle_s)
        else:
            time.sleep(settle_s)
        q_meas = np.asarray(robot.state().q, dtype=np.float64)
        err = float(np.max(np.abs(q_meas - q)))
        if err > max_joint_error_rad:
            raise ExecutionFailed(f"calibration pose {k}: the robot settled {err:.3f} rad from its target "
                                  f"(> {max_joint_error_rad} rad); is it blocked or in collision?")
        frame = None
        for _ in range(max(1, fresh_frames)):
            frame = camera.capture()
        samples.append(CalibrationSample(T_base_gripper=fk(q_meas), rgb=frame.rgb, q=q_meas))
    return samples


# --------------------------------------------------------------------------- files
def calibrated_camera(model: CameraModel, T_base_cam: np.ndarray) -> CameraModel:
    """``model`` with the calibrated extrinsic (re-orthonormalised against float drift)."""
    T = np.array(T_base_cam, dtype=np.float64)
    T[:3, :3] = handeye.project_to_so3(T[:3, :3])
    T[3] = (0.0, 0.0, 0.0, 1.0)
    return CameraModel(K=model.K, width=model.width, height=model.height, T_base_cam=T,
                       depth_scale_m=model.depth_scale_m, serial=model.serial)


def write_calibration(result: CalibrationResult, model: CameraModel, out_toml: str | Path) -> tuple[Path, Path]:
    """Write the camera TOML (``T_base_cam`` from the calibration, intrinsics from ``model``)
    and ``<name>.report.json`` beside it, each atomically (written aside, then renamed)."""
    from dream2flow.config import camera_to_toml

    out = Path(out_toml)
    out.parent.mkdir(parents=True, exist_ok=True)
    rep = result.report
    cam = calibrated_camera(model, result.T_base_cam)
    comment = (f"eye-to-hand calibration ({rep.get('method')}, {rep.get('num_used')}/{rep.get('num_poses')} poses): "
               f"reprojection RMS {rep.get('reprojection_rms_px', float('nan')):.3f} px, translation residual "
               f"mean {rep.get('translation_residual_mm', {}).get('mean', float('nan')):.2f} mm; "
               f"written {time.strftime('%Y-%m-%d %H:%M:%S')}")
    report_path = out.with_name(out.stem + ".report.json")
    for path, text in ((out, camera_to_toml(cam, comment)), (report_path, json.dumps(rep, indent=1) + "\n")):
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(text)
        tmp.replace(path)
    return out, report_path


def save_samples(out_dir: str | Path, samples: Sequence[CalibrationSample], spec: BoardSpec,
                 model: CameraModel) -> Path:
    """Keep the collected images and poses (``samples.json`` + PNGs + ``camera.toml``), so the
    calibration can be re-run or inspected offline (``dream2flow camera calibrate --samples``)."""
    from dream2flow.config import save_camera
    from dream2flow.io_utils import write_rgb

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_camera(model, out / "camera.toml", comment="camera intrinsics used for the calibration images")
    poses = []
    for i, s in enumerate(samples):
        name = f"pose_{i:03d}.png"
        write_rgb(out / name, s.rgb)
        poses.append({"image": name, "T_base_gripper": np.asarray(s.T_base_gripper).tolist(),
                      "q": None if s.q is None else np.asarray(s.q).tolist()})
    (out / "samples.json").write_text(json.dumps({"board": spec.to_dict(), "poses": poses}, indent=1) + "\n")
    return out


def load_samples(path: str | Path) -> tuple[list[CalibrationSample], BoardSpec, CameraModel]:
    """Read what ``save_samples`` wrote."""
    from dream2flow.config import load_camera
    from dream2flow.io_utils import read_rgb

    p = Path(path)
    index = p / "samples.json"
    if not index.is_file():
        raise InvalidInput(f"{p} has no samples.json (write one with `dream2flow camera calibrate --save-samples`)")
    try:
        d = json.loads(index.read_text())
        spec = BoardSpec.from_dict(d["board"], where=f"{index} board")
        samples = [CalibrationSample(T_base_gripper=np.asarray(e["T_base_gripper"], dtype=np.float64),
                                     rgb=read_rgb(p / e["image"]),
                                     q=None if e.get("q") is None else np.asarray(e["q"], dtype=np.float64))
                   for e in d["poses"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{index} is malformed ({type(exc).__name__}: {exc})") from None
    return samples, spec, load_camera(p / "camera.toml")
