"""``dream2flow task``: operator client: submit|get|list|watch|cancel|estop|reset (issue 5)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("task", help="operator client: submit|get|list|watch|cancel|estop|reset [not built yet: issue 5]",
                       description="operator client: submit|get|list|watch|cancel|estop|reset.")
    p.set_defaults(func=not_built_yet(5))
