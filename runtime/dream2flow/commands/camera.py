"""``dream2flow camera``: info | record | calibrate | board (issue 7).

- ``info``: the camera's device, intrinsics and extrinsic (RealSense by default; or
  ``--recorded DIR|BAG``, ``--sim TASK``, ``--mock``, ``--cell FILE``); ``--list`` lists
  connected RealSense devices.
- ``record``: N frames + the camera model into a folder that ``--recorded`` replays.
- ``calibrate``: eye-to-hand ``T_base_cam`` with a ChArUco board in the gripper: on the real
  cell (``--cell``, moves the robot: needs ``--yes``), offline from saved samples
  (``--samples DIR``), or in simulation against ground truth (``--sim``).
- ``board``: the printable ChArUco board PNG.
"""

from __future__ import annotations

import argparse


def _source_args(p: argparse.ArgumentParser) -> None:
    from dream2flow.commands import int_in, seed_type

    g = p.add_argument_group("camera source (default: the first RealSense)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--recorded", metavar="PATH", help="a folder written by `camera record`, or a RealSense .bag")
    x.add_argument("--sim", metavar="TASK", help="the simulator's camera in task TASK")
    x.add_argument("--mock", action="store_true", help="the synthetic test camera (no device; not real data)")
    x.add_argument("--cell", metavar="FILE", help="the [camera] of a cell file (hw/robot/robot.toml)")
    g.add_argument("--seed", type=seed_type(), default=0, help="seed of --sim / --mock (default 0)")
    g.add_argument("--serial", help="RealSense serial number (default: the only/first device)")
    g.add_argument("--width", type=int_in(64, 3840, "px"), default=640, help="RealSense colour width (default 640)")
    g.add_argument("--height", type=int_in(48, 2160, "px"), default=480, help="RealSense colour height (default 480)")
    g.add_argument("--fps", type=int_in(1, 300, "Hz"), default=30, help="RealSense frame rate (default 30)")
    g.add_argument("--filters", default="", metavar="LIST",
                   help="RealSense depth filters, comma separated: spatial,temporal,hole_filling")
    g.add_argument("--calibration", metavar="CAM.toml", help="camera file whose T_base_cam places the camera")


def register(sub: argparse._SubParsersAction) -> None:
    from dream2flow.commands import float_in, int_in, seed_type

    p = sub.add_parser("camera", help="camera info|record|calibrate|board (RealSense, recordings, hand-eye)",
                       description="RGB-D cameras: inspect, record, and calibrate the camera-to-robot extrinsic "
                                   "(T_base_cam) with a ChArUco board held by the gripper.")
    p.set_defaults(func=lambda args: _usage(p))
    acts = p.add_subparsers(dest="camera_action", metavar="ACTION")

    info = acts.add_parser("info", help="print the camera's device, intrinsics and extrinsic",
                           description="Open the camera and print its device, size, intrinsics (K), depth scale "
                                       "and T_base_cam.")
    _source_args(info)
    info.add_argument("--list", action="store_true", help="only list the connected RealSense devices")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    info.set_defaults(func=run_info)

    rec = acts.add_parser("record", help="record N RGB-D frames + the camera model to a folder",
                          description="Record frames as DIR/camera.toml, DIR/index.json and DIR/frames/ "
                                      "(RGB PNG + depth .npy metres or 16-bit PNG); `--recorded DIR` replays them "
                                      "exactly. A failure leaves no partial folder.")
    _source_args(rec)
    rec.add_argument("--out", required=True, metavar="DIR", help="output folder")
    rec.add_argument("-n", "--frames", type=int_in(1, 100000), default=1, help="number of frames (default 1)")
    rec.add_argument("--depth-format", choices=("npy", "png16"), default="npy",
                     help="npy: float32 metres (default); png16: 16-bit PNG in the camera's depth units")
    rec.set_defaults(func=run_record)

    cal = acts.add_parser("calibrate", help="eye-to-hand calibration of T_base_cam (ChArUco board in the gripper)",
                          description="Calibrate T_base_cam. Real cell (default): read --cell, move the robot "
                                      "through the calibration poses with the control loop (needs --yes), "
                                      "detect the board, solve hand-eye, refine, check residuals and write the "
                                      "camera TOML + <name>.report.json. --samples DIR recomputes from saved "
                                      "images and poses; --sim runs the simulated cell against ground truth.")
    mode = cal.add_mutually_exclusive_group()
    mode.add_argument("--sim", action="store_true", help="simulated cell with a rendered board and known truth")
    mode.add_argument("--samples", metavar="DIR", help="calibrate offline from --save-samples output")
    cal.add_argument("--cell", metavar="FILE", help="cell file (default hw/robot/robot.toml)")
    cal.add_argument("--poses-file", metavar="FILE", help="TOML with poses = [[q1..q7], ...] (rad); overrides the cell's")
    cal.add_argument("--board", metavar="SPEC", help="board NXxNY:SQUARE_M:MARKER_M[:DICT], e.g. 7x5:0.04:0.03:DICT_5X5_100")
    cal.add_argument("--method", default=None,
                     help="park_martin (default) | opencv_tsai|park|horaud|andreff|daniilidis | opencv_shah|li")
    cal.add_argument("--out", metavar="CAM.toml", help="camera file to write (real cell default: the cell's "
                                                       "[calibration] out, else hw/cameras/<serial>_calibrated.toml)")
    cal.add_argument("--save-samples", metavar="DIR", help="also keep the images and robot poses here")
    cal.add_argument("--accept-poor", action="store_true", help="write even if residuals exceed the bounds")
    cal.add_argument("--host", help="Polymetis server host, or the FR3's FCI address for a libfranka cell "
                                     "(overrides the cell's polymetis / libfranka file)")
    cal.add_argument("--yes", action="store_true", help="confirm that the robot may move (real cell)")
    cal.add_argument("--seed", type=seed_type(), default=0, help="--sim: seed of the cell and poses (default 0)")
    cal.add_argument("--num-poses", type=int_in(3, 200), default=12, help="--sim: number of poses (default 12)")
    cal.add_argument("--hidden", type=int_in(0, 200), default=0, help="--sim: how many poses hide the board (default 0)")
    cal.add_argument("--json", action="store_true", help="print the residual report as JSON")
    cal.set_defaults(func=run_calibrate)

    brd = acts.add_parser("board", help="write the printable ChArUco board PNG",
                          description="Write the ChArUco board image at DPI for printing at 100% scale; measure a "
                                      "printed square and use that size in the cell's [calibration.board].")
    brd.add_argument("--out", required=True, metavar="PNG")
    brd.add_argument("--board", metavar="SPEC", default="7x5:0.04:0.03:DICT_5X5_100",
                     help="NXxNY:SQUARE_M:MARKER_M[:DICT] (default 7x5:0.04:0.03:DICT_5X5_100, fits A4)")
    brd.add_argument("--dpi", type=float_in(72.0, 1200.0, "dpi"), default=300.0, help="print resolution (default 300)")
    brd.set_defaults(func=run_board)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


# --------------------------------------------------------------------------- helpers
def _camera_config(args: argparse.Namespace):
    from dream2flow.camera.configs import MockCameraConfig, RealSenseConfig, RecordedConfig, SimCameraConfig

    if args.recorded:
        return RecordedConfig(path=args.recorded, calibration_file=args.calibration)
    if args.sim:
        return SimCameraConfig(task=args.sim, seed=args.seed)
    if args.mock:
        return MockCameraConfig(seed=args.seed)
    if args.cell:
        from dream2flow.camera.cell import load_cell

        return load_cell(args.cell).camera
    filters = tuple(f.strip() for f in args.filters.split(",") if f.strip())
    return RealSenseConfig(serial=args.serial, width=args.width, height=args.height, fps=args.fps,
                           filters=filters, calibration_file=args.calibration)


def _fmt_T(T) -> str:
    import numpy as np

    from dream2flow.camera.handeye import rotation_angle_deg

    if np.allclose(T, np.eye(4)):
        return "identity (not calibrated)"
    return (f"camera at ({T[0, 3]:.4f}, {T[1, 3]:.4f}, {T[2, 3]:.4f}) m in the base frame, "
            f"rotated {float(rotation_angle_deg(T[:3, :3])):.2f} deg")


# --------------------------------------------------------------------------- info
def run_info(args: argparse.Namespace) -> int:
    import json

    from dream2flow.camera.configs import RealSenseConfig, make_camera
    from dream2flow.camera.protocol import camera_info

    cfg = _camera_config(args)
    devices = None
    if isinstance(cfg, RealSenseConfig) and not cfg.bag_file:
        from dream2flow.camera.realsense import list_devices

        devices = list_devices()
        if args.list:
            if args.json:
                print(json.dumps({"devices": devices}))
            else:
                print(f"{len(devices)} RealSense device(s)")
                for d in devices:
                    print("  " + ", ".join(f"{k}={v}" for k, v in d.items()))
            return 0
    elif args.list:
        from dream2flow.errors import InvalidInput

        raise InvalidInput("--list lists RealSense devices; it cannot be combined with --recorded/--sim/--mock/--cell")
    cam = make_camera(cfg)
    try:
        info = camera_info(cam)
    finally:
        cam.close()
    if devices is not None:
        info["devices"] = devices
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    import numpy as np

    print(f"camera: {info.get('source', info['kind'])}")
    if devices is not None:
        for d in devices:
            print("  device: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    print(f"size: {info['width']}x{info['height']}  fx={info['fx']:.3f} fy={info['fy']:.3f} "
          f"cx={info['cx']:.3f} cy={info['cy']:.3f}")
    extra = [f"depth scale {info['depth_scale_m']} m/unit" if info.get("depth_scale_m") else None,
             f"serial {info['serial']}" if info.get("serial") else None,
             f"{info['frames']} frames" if "frames" in info else None,
             f"distortion {info['distortion_model']} {info['distortion_coeffs']}" if "distortion_model" in info else None]
    if any(extra):
        print("  " + "; ".join(e for e in extra if e))
    print(f"T_base_cam: {_fmt_T(np.asarray(info['T_base_cam']))}")
    return 0


# --------------------------------------------------------------------------- record
def run_record(args: argparse.Namespace) -> int:
    from dream2flow.camera.configs import make_camera
    from dream2flow.camera.recorded import record
    from dream2flow.errors import InvalidInput
    from dream2flow.io_utils import staged_output
    from dream2flow.log import progress

    if args.frames <= 0:
        raise InvalidInput(f"--frames must be positive, got {args.frames}")
    cam = make_camera(_camera_config(args))
    try:
        source = str(getattr(cam, "info", lambda: {})().get("source", type(cam).__name__))
        with staged_output(args.out) as tmp:
            record(cam, tmp, args.frames, depth_format=args.depth_format, source=source,
                   on_frame=(lambda i: progress(f"frame {i + 1}/{args.frames}")) if args.frames > 1 else None)
        m = cam.model()
    finally:
        cam.close()
    print(f"recorded {args.frames} frame(s) {m.width}x{m.height} from {source} to {args.out}")
    return 0


# --------------------------------------------------------------------------- calibrate
def _finish(rep: dict, as_json: bool, summary: str) -> None:
    """The per-pose lines and the one-line summary, or (``--json``) only the report as JSON."""
    import json

    if as_json:
        print(json.dumps(dict(rep, summary=summary)))
        return
    for r in rep.get("rejected", []):
        print(f"  pose {r['index']}: set aside ({r['reason']})")
    for p in rep.get("per_pose", []):
        print(f"  pose {p['index']}: {p['corners']} corners, reprojection {p['reprojection_rms_px']:.3f} px, "
              f"loop {p['translation_residual_mm']:.2f} mm / {p['rotation_residual_deg']:.3f} deg")
    print(summary)


def _summary(rep: dict) -> str:
    return (f"{rep['num_used']}/{rep['num_poses']} poses, reprojection RMS {rep['reprojection_rms_px']:.3f} px, "
            f"loop residual mean {rep['translation_residual_mm']['mean']:.2f} mm / "
            f"{rep['rotation_residual_deg']['mean']:.3f} deg")


def run_calibrate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from dream2flow.camera.calibration import CalibrationConfig, calibrate, write_calibration
    from dream2flow.camera.charuco import BoardSpec
    from dream2flow.errors import InvalidInput
    from dream2flow.log import progress

    if args.sim:
        return _calibrate_sim(args)
    if args.samples:
        from dream2flow.camera.calibration import load_samples

        samples, spec, model = load_samples(args.samples)
        if args.board:
            spec = BoardSpec.parse(args.board)
        cfg = CalibrationConfig(method=args.method) if args.method else CalibrationConfig()
        if args.cell:
            from dream2flow.camera.cell import load_cell

            cfg = load_cell(args.cell).calibration if not args.method else replace(load_cell(args.cell).calibration,
                                                                                  method=args.method)
        result = calibrate(samples, spec, model.K, config=cfg, accept_poor=args.accept_poor)
        out = _default_out(args, model, None)
        toml, report = write_calibration(result, model, out)
        _finish(result.report, args.json,
                f"calibrated T_base_cam from saved samples: {_summary(result.report)}; wrote {toml} and {report.name}")
        return 0

    # The real cell.
    from dream2flow.camera.calibration import collect_samples, save_samples
    from dream2flow.camera.cell import load_cell, load_poses
    from dream2flow.camera.configs import make_camera
    from dream2flow.config import hw_dir, load_toml

    cell_path = args.cell or hw_dir() / "robot" / "robot.toml"
    if not args.cell and not cell_path.is_file():
        raise InvalidInput(f"no cell file {cell_path}: copy hw/robot/robot.example.toml there and edit it, or pass "
                           "--cell FILE (or use --sim / --samples DIR)")
    cell = load_cell(cell_path)
    poses = load_poses(load_toml(args.poses_file), args.poses_file) if args.poses_file else cell.poses
    if poses is None or len(poses) == 0:
        raise InvalidInput(f"no calibration poses: add [calibration] poses to {cell.path} or pass --poses-file")
    spec = BoardSpec.parse(args.board) if args.board else cell.board
    cfg = replace(cell.calibration, method=args.method) if args.method else cell.calibration
    if not args.yes:
        raise InvalidInput(f"this moves the robot through {len(poses)} calibration poses: clear the workspace, put the "
                           "board in the gripper, keep the e-stop in reach, then re-run with --yes")
    camera = make_camera(cell.camera)
    try:
        robot = _make_robot(cell, args.host)
        try:
            samples = collect_samples(poses, robot, camera, consent=args.yes,
                                      on_pose=lambda k, n: progress(f"pose {k + 1}/{n}"))
        finally:
            robot.close()
        model = camera.model()
    finally:
        camera.close()
    if args.save_samples:
        save_samples(args.save_samples, samples, spec, model)
        progress(f"kept {len(samples)} samples in {args.save_samples}")
    result = calibrate(samples, spec, model.K, config=cfg, accept_poor=args.accept_poor)
    out = _default_out(args, model, cell.calibration_out)
    toml, report = write_calibration(result, model, out)
    _finish(result.report, args.json, f"calibrated T_base_cam: {_summary(result.report)}; wrote {toml} and {report.name}")
    return 0


def _default_out(args: argparse.Namespace, model, cell_out):
    from pathlib import Path

    from dream2flow.config import hw_dir

    if args.out:
        return Path(args.out)
    if cell_out is not None:
        return Path(cell_out)
    return hw_dir() / "cameras" / f"{model.serial or 'camera'}_calibrated.toml"


def _make_robot(cell, host: str | None):
    if cell.backend == "polymetis":
        from dream2flow.control.backends.polymetis import PolymetisBackend, polymetis_config_from_dict
        from dream2flow.config import load_toml

        cfg = None
        if cell.polymetis_file is not None:
            cfg = polymetis_config_from_dict(load_toml(cell.polymetis_file), str(cell.polymetis_file))
        return PolymetisBackend(config=cfg, host=host)
    if cell.backend == "libfranka":
        from dream2flow.config import load_toml, set_default_robot_model
        from dream2flow.control.backends.libfranka import LibfrankaBackend, libfranka_config_from_dict, load_libfranka_config

        set_default_robot_model("fr3")  # the calibration poses are checked against the FR3's limits
        cfg = (libfranka_config_from_dict(load_toml(cell.libfranka_file), str(cell.libfranka_file))
               if cell.libfranka_file is not None else load_libfranka_config())
        return LibfrankaBackend(config=cfg, robot_ip=host)
    from dream2flow.control.backends import make_backend

    return make_backend(cell.backend)


def _calibrate_sim(args: argparse.Namespace) -> int:
    from dream2flow.camera.calibration import CalibrationConfig, write_calibration
    from dream2flow.camera.sim_calibration import run_simulated_calibration
    from dream2flow.errors import InvalidInput

    if args.num_poses <= 0 or not 0 <= args.hidden <= args.num_poses:
        raise InvalidInput(f"--num-poses must be positive and --hidden in [0, num-poses], got {args.num_poses}, "
                           f"{args.hidden}")
    cfg = CalibrationConfig(method=args.method) if args.method else CalibrationConfig()
    outcome = run_simulated_calibration(seed=args.seed, num_poses=args.num_poses, num_hidden=args.hidden,
                                        config=cfg, accept_poor=args.accept_poor)
    rep = dict(outcome.result.report)
    rep["truth"] = {"T_base_cam": outcome.cell.camera.T_base_cam.tolist(),
                    "translation_error_mm": outcome.translation_error_mm,
                    "rotation_error_deg": outcome.rotation_error_deg}
    outcome.result.report = rep
    wrote = ""
    if args.out:
        toml, report = write_calibration(outcome.result, outcome.cell.camera, args.out)
        wrote = f"; wrote {toml} and {report.name}"
    _finish(rep, args.json, f"simulated calibration (seed {args.seed}): error {outcome.translation_error_mm:.2f} mm / "
                            f"{outcome.rotation_error_deg:.3f} deg against the truth; {_summary(rep)}{wrote}")
    return 0


# --------------------------------------------------------------------------- board
def run_board(args: argparse.Namespace) -> int:
    import cv2

    from dream2flow.camera.charuco import BoardSpec, board_png
    from dream2flow.errors import InvalidInput

    if not args.dpi > 0:
        raise InvalidInput(f"--dpi must be positive, got {args.dpi}")
    spec = BoardSpec.parse(args.board)
    img = board_png(spec, dpi=args.dpi)
    if not cv2.imwrite(args.out, img):
        raise InvalidInput(f"could not write {args.out} (folder missing, or not a .png name?)")
    w, h = spec.size_m
    square_px = int(round(spec.square_m * args.dpi / 0.0254))
    print(f"wrote {args.out}: {spec} board, {w * 100:.1f} x {h * 100:.1f} cm at {args.dpi:g} dpi "
          f"({img.shape[1]}x{img.shape[0]} px, squares of {square_px} px = {square_px * 25.4 / args.dpi:.2f} mm); "
          "print at 100% scale and measure a square")
    return 0
