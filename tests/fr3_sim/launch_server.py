"""Start franka-sim's ``FrankaSimServer`` on one loopback address (run with franka-sim's own venv).

Why a launcher: franka-sim's CLI binds 0.0.0.0, and libfranka always dials ports 1337 (robot)
and 1338 (gripper), so parallel servers must each own a distinct 127.0.0.X. The FR3 model is
``$FR3_MJCF`` (default: ``fr3.xml`` beside this file) so nothing is downloaded. Motion-limit
and communication-constraint enforcement are switched ON (franka-sim's default is off): the
server then raises libfranka's own reflexes for a stream the robot would reject.

Prints one line ``READY <host>`` on stdout once both ports accept connections, then serves
until SIGINT/SIGTERM. Exit 2 on a bad argument, 3 when a port is taken.

    /path/to/franka-sim-venv/bin/python tests/fr3_sim/launch_server.py --host 127.0.0.7 \
        [--object-width 0.03]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _wait_listening(host: str, port: int, timeout_s: float) -> bool:
    """True once something is bound to host:port (probed by binding, not connecting: a probe
    connection would be a client session to the server)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _port_free(host, port):
            return True
        time.sleep(0.02)
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True, help="loopback address to bind, e.g. 127.0.0.7")
    ap.add_argument("--object-width", type=float, default=None,
                    help="width (m) of a virtual object between the fingers (default: empty hand)")
    ap.add_argument("--no-enforce", action="store_true", help="do not raise reflexes (franka-sim's default)")
    ap.add_argument("--rt-priority", type=int, default=60,
                    help="SCHED_FIFO priority for the simulator when allowed (0: normal scheduling; default 60)")
    args = ap.parse_args(argv)
    if not args.host.startswith("127."):
        print("launch_server: --host must be a loopback address 127.x.y.z", file=sys.stderr)
        return 2
    if not 0 <= args.rt_priority <= 99:
        print("launch_server: --rt-priority must be in [0, 99]", file=sys.stderr)
        return 2
    if args.object_width is not None and not 0.0 < args.object_width <= 0.08:
        print("launch_server: --object-width must be in (0, 0.08] m", file=sys.stderr)
        return 2
    os.environ.setdefault("FR3_MJCF", str(HERE / "fr3.xml"))
    for port in (1337, 1338):
        if not _port_free(args.host, port):
            print(f"launch_server: {args.host}:{port} is already in use", file=sys.stderr)
            return 3

    if args.rt_priority > 0:
        # The simulated robot is a 1 kHz real-time controller: give it (and the threads it starts,
        # which inherit the policy) real-time scheduling when the OS allows, so that other load on
        # the machine does not make the simulator itself miss cycles.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt_priority))
        except (OSError, AttributeError) as exc:
            print(f"launch_server: real-time scheduling refused ({exc}); running at normal priority", file=sys.stderr)

    from franka_sim.franka_sim_server import FrankaSimServer

    enforce = not args.no_enforce
    server = FrankaSimServer(host=args.host, enable_gripper=True, gripper_object_width=args.object_width,
                             enforce_comm_constraints=enforce, enforce_motion_limits=enforce)
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.start, name="franka-sim", daemon=True)
    thread.start()
    if not (_wait_listening(args.host, 1337, 30.0) and _wait_listening(args.host, 1338, 30.0)):
        print("launch_server: the server did not start listening within 30 s", file=sys.stderr)
        server.stop()
        return 3
    print(f"READY {args.host}", flush=True)
    while not stop.is_set() and thread.is_alive():
        stop.wait(0.2)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
