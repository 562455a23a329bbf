"""``dream2flow demo``: run one full task in simulation on built-in defaults and write a report (issue 8)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run one full task in simulation on built-in defaults and write a report [not built yet: issue 8]",
                       description="run one full task in simulation on built-in defaults and write a report.")
    p.set_defaults(func=not_built_yet(8))
