"""``dream2flow flow``: video + I0/D0 + camera + box -> 3D object flow (flow.npz + pictures) (issue 2)."""

from __future__ import annotations

import argparse

from dream2flow.commands import not_built_yet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="video + I0/D0 + camera + box -> 3D object flow (flow.npz + pictures) [not built yet: issue 2]",
                       description="video + I0/D0 + camera + box -> 3D object flow (flow.npz + pictures).")
    p.set_defaults(func=not_built_yet(2))
