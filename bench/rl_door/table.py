"""Prints the paper-style table (reward type x embodiment) from bench/rl_door/*/eval.json."""

from __future__ import annotations

import json
from pathlib import Path

D = Path(__file__).resolve().parent


def main() -> None:
    rows = []
    for rew, label in (("flow", "3D object flow (ours: privileged flow inputs)"), ("object_state", "object state (hinge angle)")):
        cells = []
        for emb in ("panda", "floating"):
            p = D / f"{emb}_{rew}" / "eval.json"
            t = D / f"{emb}_{rew}" / "train.json"
            if not p.is_file():
                cells.append("not run")
                continue
            e = json.loads(p.read_text())
            tr = json.loads(t.read_text()) if t.is_file() else {}
            cells.append(f"{e['successes']}/{len(e['episodes'])} (mean {e['mean_door_angle_deg']:.0f} deg, "
                         f"{e['safety_stops']} safety stops; {tr.get('steps', '?')} steps, {tr.get('wall_s', 0) / 60:.0f} min)")
        rows.append(f"| {label} | {cells[0]} | {cells[1]} |")
    print("| reward | Panda | floating Franka Hand |\n|---|---|---|")
    print("\n".join(rows))
    print("\nSuccess: door >= 35 deg at the end of the 5 s episode and no safety stop; 100 door placements "
          "(seeds 1000-1099) never used in training. Flow inputs: privileged (simulator box + relative depth).")


if __name__ == "__main__":
    main()
