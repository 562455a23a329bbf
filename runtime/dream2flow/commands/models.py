"""``dream2flow models``: exported perception models: list|check (issue 6)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="exported perception models: list|check [not built yet: issue 6]",
                       description="exported perception models: list|check.")
    p.set_defaults(func=not_built_yet(6))
