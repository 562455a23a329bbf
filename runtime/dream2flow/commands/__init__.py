"""One module per ``dream2flow`` sub-command: ``register(subparsers)`` adds the parser and sets
``func``. Keep module top-levels import-light (argparse only): heavy imports go in handlers."""

from __future__ import annotations

import argparse


def not_built_yet(issue: int):
    """Handler for a command whose issue is still open: a clear NotReady, never a fake result."""

    def run(args: argparse.Namespace) -> int:
        from dream2flow.errors import NotReady

        raise NotReady(f"'{args.command}' is not built yet (issue {issue})")

    return run
