"""``dream2flow serve``: run the gRPC operator service (issue 5)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the gRPC operator service [not built yet: issue 5]",
                       description="run the gRPC operator service.")
    p.set_defaults(func=not_built_yet(5))
