"""``dream2flow robot``: look at a real arm and recover it after a reflex (libfranka, FR3)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Operator actions on a Franka Research 3 through libfranka (--backend libfranka arms):

  state         the robot's mode, errors and joints, and the fault latched by a previous run (if any)
  recover       explicit error recovery after a reflex: libfranka's automatic_error_recovery(), then
                the latched fault is cleared so that runs may move the arm again (needs --yes)
  home-gripper  Franka Hand homing once after it was powered on: the fingers open and close to
                measure their width (needs --yes; refused while a fault is latched)

A reflex (e.g. communication_constraints_violation, a discontinuity, a collision) stops a run
with exit 7 and is latched: nothing moves again until an operator has checked the cell and run
`recover`. Recovery is never automatic. Settings: hw/robot/libfranka.toml (--config FILE with a
[libfranka] table overrides it).

exit codes: 0 done, 2 bad input (or --yes missing), 3 robot not reachable / not ready,
7 recovery failed (the robot still reports errors)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robot", help="a real arm's state, and explicit recovery after a reflex (libfranka)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("state", "recover", "home-gripper"), help="what to do")
    p.add_argument("--robot", default=None, metavar="IP", help="the robot's FCI address (default: libfranka.toml)")
    p.add_argument("--config", default=None, metavar="FILE.toml", help="overrides for libfranka.toml ([libfranka])")
    p.add_argument("--yes", action="store_true",
                   help="recover / home-gripper: confirm that the arm may be re-enabled / the fingers may move")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from dream2flow.control.backends.libfranka import LibfrankaBackend, _state_line, load_libfranka_config
    from dream2flow.errors import InvalidInput
    from dream2flow.log import progress

    backend = LibfrankaBackend(load_libfranka_config(args.config), robot_ip=args.robot)
    ip = backend.config.robot_ip
    if args.action == "state":
        latched = backend.latched_fault()
        state = backend.read_robot_state()
        out = {"robot": ip, "state": state, "latched_fault": latched}
        progress(f"robot {ip}: {_state_line(state)}")
        progress(f"robot {ip}: " + (f"fault latched: {latched.get('message')}" if latched else "no fault latched"))
    elif args.action == "home-gripper":
        if not args.yes:
            raise InvalidInput("home-gripper moves the Franka Hand's fingers: keep hands and objects clear, then "
                               "confirm with --yes")
        backend.connect()
        try:
            g = backend.home_gripper()
        finally:
            backend.close()
        out = {"robot": ip, "homed": True, "gripper": g}
        progress(f"robot {ip}: gripper homed, max width {g['max_width']:.4f} m")
    else:
        if not args.yes:
            raise InvalidInput("recover re-enables a real arm after a reflex: check the cell (clear workspace, "
                               "e-stop in reach), then confirm with --yes")
        latched = backend.latched_fault()
        state = backend.recover()
        out = {"robot": ip, "recovered": True, "state": state, "cleared_fault": latched}
        progress(f"robot {ip}: recovered ({_state_line(state)})"
                 + (f"; cleared the latched fault: {latched.get('message')}" if latched else ""))
    if args.json:
        print(json.dumps(out, sort_keys=True, default=str), flush=True)
    return 0
