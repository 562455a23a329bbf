"""The ``dream2flow`` command. Each sub-command lives in ``dream2flow.commands.<name>``
(a ``register(subparsers)`` function, heavy imports only inside its handler) so that
``dream2flow --help`` starts fast and modules stay independent.

Exit codes: 0 ok, 2 bad input (one line on stderr), others per ``errors.EXIT_CODES``;
never a traceback (set ``D2F_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Sequence

from dream2flow import __version__
from dream2flow.errors import EXIT_CODES, Dream2FlowError

# (command, module under dream2flow.commands) in the order --help lists them.
COMMANDS: tuple[str, ...] = ("flow", "plan", "execute", "sim", "demo", "eval", "serve", "task", "camera", "models")


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:>2}  {what}" for what, code in EXIT_CODES.items())
    parser = OneLineArgumentParser(
        prog="dream2flow",
        description="Dream2Flow Edge: turn a generated task video into 3D object flow and robot motion.",
        epilog=f"exit codes:\n{codes}\n\nD2F_DEBUG=1 shows tracebacks; D2F_LOG_LEVEL=INFO|DEBUG sets logging.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dream2flow {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser)
    for name in COMMANDS:
        importlib.import_module(f"dream2flow.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from dream2flow.log import setup_logging

    setup_logging(args.verbose)
    try:
        code = args.func(args)
        return int(code or 0)
    except Dream2FlowError as exc:
        if os.environ.get("D2F_DEBUG"):
            traceback.print_exc()
        where = f" [{exc.stage}]" if exc.stage else ""
        print(f"dream2flow {args.command}: error{where}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"dream2flow {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, never a traceback to an operator
        if os.environ.get("D2F_DEBUG"):
            traceback.print_exc()
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"dream2flow {args.command}: internal error: {type(exc).__name__}: {msg} (D2F_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
