"""``dream2flow task``: operator client: submit|get|list|watch|cancel|estop|reset|fetch (+ state, observe).

Exit codes: 0 ok (watch/submit --watch: the task SUCCEEDED); a failed task exits with the
code of its failure kind (4 perception, 5 planning, 7 execution/cancelled/interrupted, …);
status codes from the server map to 2 (bad request, unknown id, auth), 3 (not ready /
unavailable), 8 (back-pressure), 9 (data loss).
"""

from __future__ import annotations

import argparse
import os

_SUBS = ("submit", "get", "list", "watch", "cancel", "estop", "reset", "fetch", "state", "observe")


def _common() -> argparse.ArgumentParser:
    from dream2flow.commands import float_in

    c = argparse.ArgumentParser(add_help=False)
    g = c.add_argument_group("connection")
    g.add_argument("--server", metavar="HOST:PORT", default=os.environ.get("D2F_SERVER", "127.0.0.1:50051"),
                   help="server address (env D2F_SERVER; default 127.0.0.1:50051)")
    g.add_argument("--token", help="bearer token (prefer env D2F_TOKEN or --token-file: argv is visible to others)")
    g.add_argument("--token-file", metavar="FILE", help="file holding the bearer token")
    g.add_argument("--insecure", action="store_true", help="plaintext (the server runs with --insecure)")
    g.add_argument("--ca-file", metavar="PEM", help="CA certificate that signed the server's (default: system roots)")
    g.add_argument("--cert-file", metavar="PEM", help="client certificate (mutual TLS)")
    g.add_argument("--key-file", metavar="PEM", help="client key (mutual TLS)")
    g.add_argument("--server-name", metavar="NAME", help="name to check the server certificate against")
    g.add_argument("--timeout", type=float_in(0.1, 3600.0, "s"), default=30.0, metavar="S",
                   help="per-call timeout (default 30 s)")
    g.add_argument("--json", action="store_true", help="print JSON instead of text")
    return c


def register(sub: argparse._SubParsersAction) -> None:
    from dream2flow.commands import MAX_NUM_POINTS, int_in, seed_type

    p = sub.add_parser("task", help="operator client: submit|get|list|watch|cancel|estop|reset|fetch",
                       description="Talk to a running `dream2flow serve`: submit tasks (uploading the video in "
                                   "chunks), follow them, cancel them, stop the robot.")
    s = p.add_subparsers(dest="task_command", metavar="ACTION", parser_class=type(p))
    common = _common()

    q = s.add_parser("submit", parents=[common], help="upload the video (if a file) and submit a task",
                     description="Submit a task. The video is a local file (uploaded in chunks with its sha256), "
                                 "a URL the server downloads, or --generate (the server asks its video generator).")
    q.add_argument("--instruction", required=True, help="what the robot should do")
    q.add_argument("--object-prompt", default="", help="the object to move, in words (the server's detector "
                                                        "finds it when no --box is given)")
    q.add_argument("--box", default=None, metavar="x0,y0,x1,y1",
                   help="the object's box in I0 pixels (optional when the server has a detector)")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", metavar="FILE", help="video file to upload (.mp4/.avi/.mkv/.webm)")
    src.add_argument("--video-url", metavar="URL", help="http(s) URL the server downloads")
    src.add_argument("--generate", action="store_true", help="ask the server's video-generation endpoint")
    src.add_argument("--video-sha256", metavar="HEX", help="a video the server already has, named by its sha256")
    q.add_argument("--frames", type=int_in(0, 10000), default=0, help="--generate: number of frames (0: server default)")
    dep = q.add_mutually_exclusive_group()
    dep.add_argument("--video-depth", metavar="FILE.npy",
                     help="relative video depth [T,H,W] to upload (optional when the server has a video-depth model)")
    dep.add_argument("--video-depth-url", metavar="URL", help="relative video depth (.npy) URL")
    dep.add_argument("--video-depth-sha256", metavar="HEX", help="video depth the server already has, by its sha256")
    q.add_argument("--dry-run", action="store_true", help="flow and plan, no motion")
    q.add_argument("--backend", default="", help="robot backend (must be allowed by the server)")
    q.add_argument("--seed", type=seed_type(), default=0, help="perception/planning seed (default 0)")
    q.add_argument("--method", default="", help="dream2flow | rigid_avdc | rigid_rigvid")
    q.add_argument("--points", type=int_in(0, MAX_NUM_POINTS), default=0, help="flow query points (0: default)")
    q.add_argument("--idempotency-key", default="", help="resubmitting with the same key never makes a second task")
    q.add_argument("--watch", action="store_true", help="follow the task's events until it ends")
    q.set_defaults(func=run)

    q = s.add_parser("get", parents=[common], help="one task's record", description="Print one task's record.")
    q.add_argument("task_id")
    q.set_defaults(func=run)

    q = s.add_parser("list", parents=[common], help="tasks, newest first", description="List tasks, newest first.")
    q.add_argument("--state", action="append", default=[],
                   help="only this state (repeatable): queued running succeeded failed cancelled interrupted")
    q.add_argument("--limit", type=int_in(1, 1000), default=20, help="at most this many (default 20)")
    q.set_defaults(func=run)

    q = s.add_parser("watch", parents=[common], help="follow a task's events until it ends",
                     description="Print a task's events (resumable with --after) until it ends; exit 0 only "
                                 "if it SUCCEEDED.")
    q.add_argument("task_id")
    q.add_argument("--after", type=int_in(0, None), default=0, metavar="SEQ", help="only events after this sequence number")
    q.set_defaults(func=run)

    q = s.add_parser("cancel", parents=[common], help="cancel a queued or running task",
                     description="Cancel a task: a queued one at once, a running one stops within a control period.")
    q.add_argument("task_id")
    q.add_argument("--reason", default="")
    q.set_defaults(func=run)

    q = s.add_parser("estop", parents=[common], help="emergency stop: stop motion, cancel all tasks",
                     description="Emergency stop: the robot holds position now, the running and queued tasks are "
                                 "cancelled, and no motion starts until `dream2flow task reset`.")
    q.add_argument("--reason", default="")
    q.set_defaults(func=run)

    q = s.add_parser("reset", parents=[common], help="clear the e-stop / restart hold",
                     description="Clear the emergency stop (and the hold after a restart): queued tasks run again.")
    q.set_defaults(func=run)

    q = s.add_parser("fetch", parents=[common], help="download a finished task's artifacts",
                     description="Download a finished task's artifacts (flow, plan, command log, pictures, videos, "
                                 "outcome) over the API into --out, each checked against the server's sha256. An "
                                 "interrupted fetch leaves FILE.part; running it again resumes where it stopped.")
    q.add_argument("task_id")
    q.add_argument("names", nargs="*", metavar="NAME", help="artifact names (default: all), e.g. flow plan video")
    q.add_argument("--out", required=True, metavar="DIR", help="folder to write the files into")
    q.add_argument("--chunk-bytes", type=int_in(0, 8 * 1024 * 1024, "bytes"), default=0, metavar="N",
                   help="bytes per streamed chunk (0: the server's maximum, 1 MiB by default)")
    q.set_defaults(func=run)

    q = s.add_parser("state", parents=[common], help="the robot's state and motion mode",
                     description="Print the robot's joints, motion mode and queue.")
    q.set_defaults(func=run)

    q = s.add_parser("observe", parents=[common], help="save the camera's current I0/D0 and camera model",
                     description="Save GetObservation's I0 (i0.png), D0 (d0.npy) and camera.toml into --out.")
    q.add_argument("--out", required=True, metavar="DIR")
    q.set_defaults(func=run)
    p.set_defaults(func=_no_action(p))


def _no_action(p: argparse.ArgumentParser):  # type: ignore[no-untyped-def]
    def run_help(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    return run_help


def run(args: argparse.Namespace) -> int:
    from dream2flow.service import task_cli

    return task_cli.run(args)
