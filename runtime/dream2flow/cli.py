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
COMMANDS: tuple[str, ...] = ("flow", "plan", "perceive", "execute", "sim", "demo", "eval", "serve", "task", "camera",
                             "models", "rl", "pusht", "robot")


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
    parser.add_argument("--hw-dir", metavar="DIR", help=HW_DIR_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser)
    for name in COMMANDS:
        importlib.import_module(f"dream2flow.commands.{name}").register(sub)
    for leaf in _leaf_parsers(sub):
        if "--hw-dir" not in leaf._option_string_actions:
            leaf.add_argument("--hw-dir", metavar="DIR", default=argparse.SUPPRESS, help=HW_DIR_HELP)
    return parser


HW_DIR_HELP = ("configuration folder (robot/control.toml, robot/polymetis.toml, cameras/...; env D2F_HW_DIR; "
               "default: the defaults shipped with dream2flow)")


def _leaf_parsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Every parser under ``sub`` that takes options (nested actions included), once each."""
    out: list[argparse.ArgumentParser] = []
    seen: set[int] = set()
    stack = list(sub.choices.values())
    while stack:
        p = stack.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        out.append(p)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from dream2flow.log import setup_logging

    setup_logging(args.verbose)
    try:
        if getattr(args, "hw_dir", None):
            from dream2flow.config import set_hw_dir

            set_hw_dir(args.hw_dir)
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
