"""``dream2flow execute``: stream a plan to a robot backend through the safe control loop (issue 4)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Execute plan.npz on a robot backend through the deterministic control loop: move-to-start,
time-indexed cubic interpolation, safety checks before every command (joint limits with margin,
velocity/acceleration/jerk, workspace box, measured-vs-commanded deviation), watchdog and e-stop
(Ctrl-C). The whole command stream is checked before the first command: a plan that breaks a
limit sends nothing, and so does a move-to-start beyond [loop] start_max_joint_distance_rad /
start_max_duration_s. Settings: robot/control.toml (loop, safety, watchdog) and robot/polymetis.toml
of the hw folder (--hw-dir / D2F_HW_DIR, default the shipped one); --config FILE overrides them
with [loop] [safety] [watchdog] [polymetis] tables.

A backend that moves a real arm (polymetis, libfranka) needs --yes (or [safety] real_arm_consent =
true). In simulation (mujoco) the plan runs in the scene it was made for (recorded in the plan by
`sim render` inputs, demo and eval); --task/--seed naming another scene are refused.

Arms: polymetis drives a Franka Panda (Polymetis servers on the robot computer); libfranka drives
a Franka Research 3 (libfranka >= 0.10 through pylibfranka, FCI enabled in Desk; settings in
robot/libfranka.toml, a [libfranka] table in --config): it interpolates the loop's targets to
1 kHz, checks that stream as libfranka would before anything moves, and stops smoothly. The limits
checked are the arm's (--robot-model; libfranka: fr3, others: panda or $D2F_ROBOT_MODEL).
A libfranka reflex (e.g. communication_constraints_violation) ends the run with exit 7, naming
libfranka's error and the robot's state, and stays latched: the next run refuses (exit 3) until
an operator runs `dream2flow robot recover --robot IP --yes`.

--policy NAME|FILE.onnx runs a trained RL policy (role 'policy', e.g. door_panda_flow_reward) in
closed loop instead of a plan: the runtime's ONNX engine at 10 Hz, its actions through the
100 Hz command loop with the same safety checks on every command. --backend mujoco: the door
scene, door placed by --seed; kinematic: the arm alone, the door standing still (a check of the
command path); polymetis, libfranka: refused (no door-state estimator on a real cell).

exit codes: 0 done, 2 bad input (no consent, wrong scene), 3 robot not ready (or a fault is
latched), 6 safety violation (motion stopped or never started), 7 execution failed (backend error,
robot reflex, stale state, e-stop)."""


def register(sub: argparse._SubParsersAction) -> None:
    from dream2flow.commands import float_in, seed_type

    p = sub.add_parser("execute", help="stream a plan to a robot backend through the safe control loop",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--plan", metavar="PLAN.npz", help="plan file (q [H,7] rad, dt_s, gripper [H])")
    what.add_argument("--policy", metavar="NAME|FILE.onnx",
                      help="a trained door policy (manifest name or .onnx file with its .spec.json), run in closed loop")
    p.add_argument("--backend", choices=("kinematic", "mujoco", "polymetis", "libfranka"), default="kinematic",
                   help="robot backend (default: kinematic); polymetis: a Panda, libfranka: an FR3")
    p.add_argument("--robot", default=None, metavar="IP",
                   help="libfranka: the robot's FCI address (overrides robot_ip in libfranka.toml)")
    p.add_argument("--robot-model", choices=("panda", "fr3"), default=None,
                   help="the arm whose limits are checked (default: the backend's: libfranka fr3; else "
                        "$D2F_ROBOT_MODEL or panda)")
    p.add_argument("--rate", type=float_in(1.0, 1000.0, "Hz"), default=None, metavar="HZ",
                   help="control rate (default: the backend file's rate_hz for polymetis/libfranka, else "
                        "control.toml rate_hz)")
    p.add_argument("--dry-run", action="store_true",
                   help="connect, read the state and check the whole command stream; send nothing")
    p.add_argument("--log", default=None, metavar="FILE.npz",
                   help="save the command log (seq, tick, t_s, q, gripper); also written when the run stops on "
                        "a fault (it is what was sent), and for --dry-run (what would be sent)")
    p.add_argument("--config", default=None, metavar="FILE.toml", help="overrides for control.toml / polymetis.toml")
    p.add_argument("--host", default=None, help="polymetis: server host (overrides polymetis.toml)")
    p.add_argument("--mode", choices=("stream", "trajectory"), default=None,
                   help="polymetis: stream targets per tick, or send the resampled trajectory once")
    p.add_argument("--task", default=None, help="mujoco: simulation task scene (default: the plan's recorded scene)")
    p.add_argument("--seed", type=seed_type(), default=None,
                   help="mujoco: scene seed (default: the plan's recorded seed, else 0); --policy: the door's placement seed (default 0)")
    p.add_argument("--yes", action="store_true",
                   help="consent to move a real arm (polymetis, libfranka): workspace clear, e-stop in reach")
    p.add_argument("--realtime", action="store_true", help="--policy: pace the loop on the wall clock")
    p.add_argument("--q0", default=None, metavar="q1,...,q7",
                   help="kinematic: start joints (default: the plan's first waypoint)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line at the end")
    p.set_defaults(func=run)


def _parse_q0(text: str):
    import numpy as np

    from dream2flow.errors import InvalidInput

    try:
        q = np.array([float(x) for x in text.split(",")], dtype=np.float64)
    except ValueError:
        raise InvalidInput(f"--q0 must be 7 comma-separated numbers, got {text!r}") from None
    if q.shape != (7,) or not np.isfinite(q).all():
        raise InvalidInput(f"--q0 must be 7 comma-separated finite numbers, got {text!r}")
    return q


def _run_policy(args: argparse.Namespace) -> int:
    import json

    from dream2flow.errors import InvalidInput, SafetyViolation
    from dream2flow.log import progress
    from dream2flow.rl.deploy import execute_policy

    if (args.dry_run or args.rate or args.q0 or args.host or args.mode or args.task or args.config or args.yes
            or args.robot or args.robot_model):
        raise InvalidInput("--policy runs with --backend, --seed, --realtime, --log and --json only (its rates and "
                           "start come from the policy's description)")
    seed = 0 if args.seed is None else args.seed
    out = execute_policy(args.policy, args.backend, seed, realtime=args.realtime, log_path=args.log,
                         progress=progress)
    if out.get("violation"):
        raise SafetyViolation(f"policy run stopped: {out['violation']}", stage="execute")
    if "door_angle_deg" in out:
        progress(f"execute: done: {out['commands']} commands; door at {out['door_angle_deg']:.0f} deg "
                 f"({'opened' if out['success'] else 'not opened'})")
    else:
        progress(f"execute: done: {out['commands']} commands passed the safety layer; TCP ended at "
                 f"{[round(v, 3) for v in out['tcp_end_m']]} (handle at {[round(v, 3) for v in out['handle_m']]})")
    if args.json:
        print(json.dumps(out, sort_keys=True, default=str), flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    from dream2flow.config import default_robot_model, load_robot_limits
    from dream2flow.control.backends import make_backend
    from dream2flow.control.loop import check_consent, execute_plan
    from dream2flow.control.settings import load_loop_config
    from dream2flow.errors import InvalidInput
    from dream2flow.log import progress
    from dream2flow.types import Plan

    if args.policy:
        return _run_policy(args)
    plan = Plan.load(args.plan)
    cfg = load_loop_config(args.config)
    if args.backend != "polymetis" and (args.host or args.mode):
        raise InvalidInput("--host/--mode apply to --backend polymetis only")
    if args.backend != "mujoco" and (args.task or args.seed is not None):
        raise InvalidInput("--task/--seed apply to --backend mujoco only")
    if args.backend != "libfranka" and args.robot:
        raise InvalidInput("--robot applies to --backend libfranka only (polymetis: --host)")
    if args.backend != "kinematic" and args.q0:
        raise InvalidInput("--q0 applies to --backend kinematic only (other backends report their joints)")
    if args.backend == "libfranka" and args.robot_model not in (None, "fr3"):
        raise InvalidInput("--backend libfranka drives an FR3 (libfranka >= 0.10); a Panda runs with --backend polymetis")
    if args.backend in ("mujoco", "polymetis") and args.robot_model not in (None, "panda"):
        raise InvalidInput(f"--backend {args.backend} drives a Panda: --robot-model fr3 does not apply")
    model = args.robot_model or ("fr3" if args.backend == "libfranka" else
                                 "panda" if args.backend in ("mujoco", "polymetis") else default_robot_model())
    limits = load_robot_limits(model=model)
    if args.backend == "kinematic":
        backend = make_backend("kinematic", q0=_parse_q0(args.q0) if args.q0 else plan.q[0])
    elif args.backend == "mujoco":
        from dream2flow import sim
        from dream2flow.provenance import scene_for_execution

        if args.task is not None and args.task not in sim.TASKS:
            raise InvalidInput(f"unknown task '{args.task}' (choose from {', '.join(sim.TASKS)})")
        task, seed, checked = scene_for_execution(plan.meta, args.task, args.seed)
        if not checked:
            progress(f"execute: the plan records no simulated scene; running it in {task} seed {seed} unchecked")
        backend = make_backend("mujoco", task=task, seed=seed)
    elif args.backend == "polymetis":
        from dream2flow.control.backends.polymetis import load_polymetis_config

        backend = make_backend("polymetis", config=load_polymetis_config(args.config), host=args.host, mode=args.mode)
    else:
        from dream2flow.control.backends.libfranka import load_libfranka_config

        backend = make_backend("libfranka", config=load_libfranka_config(args.config), robot_ip=args.robot,
                               limits=limits)
    check_consent(backend, cfg, args.yes, args.dry_run)
    rate = args.rate
    if rate is None:
        pcfg = getattr(backend, "config", None)
        rate = float(pcfg.rate_hz) if args.backend in ("polymetis", "libfranka") and pcfg is not None else cfg.rate_hz

    where = f" at {backend.config.robot_ip}" if args.backend == "libfranka" else ""
    progress(f"execute: plan {args.plan}: {plan.horizon} waypoints, {plan.duration_s:.2f} s; backend {args.backend}"
             f"{where} ({model}) at {rate:g} Hz{' (dry run)' if args.dry_run else ''}")
    stop_event = threading.Event()
    shown = [0]                                   # whole seconds of plan time reported so far

    def on_tick(tick: int, t_s: float, _backend) -> None:
        if tick and int(t_s + 1e-9) > shown[0]:     # the first tick at or past each second (a late loop skips ticks)
            shown[0] = int(t_s + 1e-9)
            progress(f"execute: t={t_s:.1f} s")

    def on_sigint(signum, frame) -> None:  # e-stop: the loop holds position within one period
        stop_event.set()

    old = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        result = execute_plan(plan, backend, rate_hz=rate, dry_run=args.dry_run, config=cfg,
                              stop_event=stop_event, on_tick=on_tick, consent=args.yes, limits=limits)
        report = _backend_report(backend)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
        try:
            backend.close()
        except Exception:
            pass
    if args.log:
        log_path = result.save_log(args.log)
        progress(f"execute: command log -> {log_path} ({result.command_log.size} commands)")
    if result.ok and result.dry_run:
        progress(f"execute: dry run ok: {result.command_log.size} commands passed pre-flight (move-to-start "
                 f"{result.start_segment_s:.2f} s, {result.duration_s:.2f} s in all); nothing was sent")
    elif result.ok:
        progress(f"execute: done: {result.commands_sent} commands, {result.missed_periods} missed periods, "
                 f"move-to-start {result.start_segment_s:.2f} s, max tracking error "
                 f"{result.max_tracking_error_rad:.4f} rad, final error {result.final_error_rad:.4f} rad, "
                 f"{result.duration_s:.2f} s of plan time in {result.wall_s:.2f} s")
    for ev in (report or {}).get("gripper", []):
        progress(f"execute: gripper {ev.get('action')}: " + (
            f"{'held' if ev.get('is_grasped') else 'NOT held'} at {ev.get('width_m', float('nan')):.4f} m"
            if ev.get("action") == "grasp" and "error" not in ev else
            f"{'ok' if ev.get('ok') else 'failed'}{(': ' + ev['error']) if 'error' in ev else ''}"))
    if args.json:
        summary = result.summary()
        if report is not None:
            summary["robot"] = report
        print(json.dumps(summary, sort_keys=True, default=str), flush=True)
    result.raise_for_failure()
    return 0


def _backend_report(backend):
    """The backend's own account of the run (robot state, gripper results), when it has one."""
    fn = getattr(backend, "report", None)
    if not callable(fn):
        return None
    try:
        return fn()
    except Exception as exc:  # a report must never hide the run's outcome
        return {"report_error": f"{type(exc).__name__}: {exc}"}
