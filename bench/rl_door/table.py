"""Prints the paper-style tables (reward type x embodiment) from bench/rl_door/<round>/*/eval.json.

    .venv/bin/python bench/rl_door/table.py            # every round folder
"""

from __future__ import annotations

import json
from pathlib import Path

D = Path(__file__).resolve().parent
LABELS = {"flow": "3D object flow (privileged flow inputs)", "object_state": "object state (hinge angle)"}


def cell(run: Path) -> str:
    p = run / "eval.json"
    if not p.is_file():
        log = run.with_name(run.name + ".train.log")
        if log.is_file():
            last = [ln for ln in log.read_text().splitlines() if "step " in ln][-1:]
            return f"not evaluated (training stopped; last: {last[0].strip() if last else '?'})"
        return "not run"
    e = json.loads(p.read_text())
    tr = json.loads((run / "train.json").read_text()) if (run / "train.json").is_file() else {}
    demos = (tr.get("demonstrations") or {}).get("episodes", 0)
    return (f"**{e['successes']}/{len(e['episodes'])}** (mean {e['mean_door_angle_deg']:.0f} deg, {e['safety_stops']} safety "
            f"stops; {tr.get('steps', '?')} steps{f' + {demos} demos' if demos else ''}, {tr.get('wall_s', 0) / 60:.0f} min)")


def table(folder: Path) -> str:
    lines = [f"### {folder.name}", "", "| reward | Panda | floating Franka Hand |", "|---|---|---|"]
    for rew in ("flow", "object_state"):
        lines.append(f"| {LABELS[rew]} | {cell(folder / f'panda_{rew}')} | {cell(folder / f'floating_{rew}')} |")
    return "\n".join(lines)


def main() -> None:
    for folder in sorted(p for p in D.iterdir() if p.is_dir() and p.name not in ("flow", "shipped")):
        print(table(folder) + "\n")
    print("Success: door >= 35 deg at the end of the 5 s episode and no safety stop during it; 100 door placements "
          "(seeds 1000-1099, never used in training). Flow inputs: privileged (simulator box + relative depth).")


if __name__ == "__main__":
    main()
