"""``dream2flow plan``: flow + I0/D0 -> grasp and joint trajectory (plan.npz + pictures) (issue 9)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="flow + I0/D0 -> grasp and joint trajectory (plan.npz + pictures) [not built yet: issue 9]",
                       description="flow + I0/D0 -> grasp and joint trajectory (plan.npz + pictures).")
    p.set_defaults(func=not_built_yet(9))
