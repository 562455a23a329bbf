"""``dream2flow sim``: MuJoCo simulation: render a task's I0, D0, camera, generated video and ground truth (issue 3)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="MuJoCo simulation: render a task's I0, D0, camera, generated video and ground truth [not built yet: issue 3]",
                       description="MuJoCo simulation: render a task's I0, D0, camera, generated video and ground truth.")
    p.set_defaults(func=not_built_yet(3))
