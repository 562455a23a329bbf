"""``dream2flow eval``: run seeded episodes per task and method; print the success table (issue 8)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="run seeded episodes per task and method; print the success table [not built yet: issue 8]",
                       description="run seeded episodes per task and method; print the success table.")
    p.set_defaults(func=not_built_yet(8))
