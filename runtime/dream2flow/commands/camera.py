"""``dream2flow camera``: camera info|record|calibrate (issue 7)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("camera", help="camera info|record|calibrate [not built yet: issue 7]",
                       description="camera info|record|calibrate.")
    p.set_defaults(func=not_built_yet(7))
