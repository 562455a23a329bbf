"""Markdown success tables from ``dream2flow eval --json`` files:
``python bench/results/issue18/tables.py FILE.json [...]`` (default: this folder's before/after
files). Each table names its seeds, inputs, artefacts, Dream2Flow's articulation and the arm's
impedance, read from the file itself; the default Dream2Flow method's failed episodes are listed below its table."""
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
DEFAULT = ["morph_before", "morph_after", "morph_final", "occl_after", "occl_final",
           "clean_before", "clean_after", "clean_final", "part_final"]


def table(path: Path, reasons: bool = True) -> str:
    d = json.loads(path.read_text())
    cmd = d["run"]["config"]["command"]
    art = d["run"]["config"]["planner"]["articulation"]
    methods = d["methods"] if isinstance(d["methods"], list) else d["methods"].split(",")
    eps = d["episodes"]
    seeds = sorted({e["seed"] for e in eps})
    out = [f"**{path.stem}** (seeds {seeds[0]}-{seeds[-1]}; inputs: {d['run']['inputs']}; artefacts: {cmd['artifacts']}; "
           f"Dream2Flow articulation: {art}; arm impedance: {cmd.get('impedance') or 'stiff'})", "",
           "| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for t in dict.fromkeys(e["task"] for e in eps):
        cells = []
        for m in methods:
            rs = [r for e in eps if e["task"] == t for r in e["methods"] if r["method"] == m]
            cells.append(f"{sum(r['success'] for r in rs)}/{len(rs)}")
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    if reasons:
        fails = [f"{e['task']} {e['seed']} {r['method']}: {r['error']}" for e in eps for r in e["methods"]
                 if not r["success"] and r["method"] == "dream2flow"]
        if fails:
            out += ["", "Dream2Flow failures: " + "; ".join(fails)]
    return "\n".join(out)


if __name__ == "__main__":
    files = [Path(a) for a in sys.argv[1:]] or [HERE / f"{n}.json" for n in DEFAULT if (HERE / f"{n}.json").exists()]
    print("\n\n".join(table(p) for p in files))
