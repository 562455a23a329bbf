"""``dream2flow execute``: stream a plan to a robot backend through the safe control loop (issue 4)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("execute", help="stream a plan to a robot backend through the safe control loop [not built yet: issue 4]",
                       description="stream a plan to a robot backend through the safe control loop.")
    p.set_defaults(func=not_built_yet(4))
