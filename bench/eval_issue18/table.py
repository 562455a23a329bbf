"""Markdown tables from the issue-18 eval JSONs in this folder (successes per task and method):
``python bench/eval_issue18/table.py [FOLDER]``."""
import json, sys
from pathlib import Path
R = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
M = ["dream2flow", "dream2flow@off", "rigid_avdc", "rigid_rigvid"]
def rows(names):
    eps, head = [], None
    for n in names:
        p = R / f"{n}.json"
        if p.exists():
            d = json.loads(p.read_text()); eps += d["episodes"]; head = head or d
    return head, eps
for title, names in (("occlusion", ["occl", "occl_door"]), ("morphing", ["morph"]),
                     ("morphing, arm impedance franka", ["morph_franka"]), ("clean", ["clean"])):
    head, eps = rows(names)
    if not eps:
        continue
    seeds = sorted({e["seed"] for e in eps})
    print(f"\n**{title}** (seeds {seeds[0]}-{seeds[-1]}; inputs: {head['run']['inputs']}; "
          f"Dream2Flow articulation: {head['run']['config']['planner']['articulation']}; arm impedance: "
          f"{head['run']['config']['command'].get('impedance', 'stiff')}; files: {', '.join(n + '.json' for n in names)})\n")
    print("| task | " + " | ".join(M) + " |")
    print("|---|" + "---|" * len(M))
    tasks = list(dict.fromkeys(e["task"] for e in eps))
    for t in tasks:
        cells = []
        for m in M:
            rs = [r for e in eps if e["task"] == t for r in e["methods"] if r["method"] == m]
            cells.append(f"{sum(r['success'] for r in rs)}/{len(rs)}")
        print(f"| {t} | " + " | ".join(cells) + " |")
