"""Every numeric option of every command is range-checked with a sentence (exit 2, one line),
never a crash later: a unit mistake (mm for m) or a typo is refused where it is typed."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from dream2flow.cli import _leaf_parsers, build_parser
from dream2flow.commands import _Ranged


def _options() -> list[tuple[str, argparse.Action]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for p in _leaf_parsers(sub):
        for a in p._actions:
            if a.option_strings:
                out.append((p.prog, a))
    return out


def test_every_numeric_option_is_range_checked() -> None:
    unchecked = [f"{prog} {a.option_strings[-1]}" for prog, a in _options() if a.type in (int, float)]
    assert not unchecked, f"use dream2flow.commands.int_in/float_in/seed_type for: {unchecked}"
    ranged = [a for _, a in _options() if isinstance(a.type, _Ranged)]
    assert len(ranged) >= 25
    for a in ranged:  # every default is inside its own range
        if isinstance(a.default, (int, float)) and not isinstance(a.default, bool):
            assert a.type(str(a.default)) == a.default, a.option_strings


@pytest.mark.parametrize("argv, fragment", [
    (["flow", "--video", "v", "--rgb", "i", "--depth", "d", "--camera", "c", "--box", "1,2,3,4", "--video-depth", "r",
      "--out", "o", "--points", "100000"], "--points: expected an integer in [1, 8192], got 100000"),
    (["demo", "--seed", "-1"], "--seed: expected an integer in [0, 2147483647], got -1"),
    (["eval", "--episodes", "0"], "--episodes: expected an integer in [1, 100000], got 0"),
    (["sim", "render", "--task", "open_drawer", "--out", "x", "--fps", "0"], "--fps: expected a number in [1, 120] fps"),
    (["camera", "board", "--out", "b.png", "--dpi", "1e9"], "--dpi: expected a number in [72, 1200] dpi"),
    (["task", "list", "--timeout", "inf"], "--timeout: expected a finite number"),
    (["execute", "--plan", "p.npz", "--rate", "abc"], "--rate: expected a number in [1, 1000] Hz, got 'abc'"),
    # the mm-for-m board (it tried to allocate 7.8 TB)
    (["camera", "board", "--out", "b.png", "--board", "7x5:40:30"],
     "board square size 40.0 m is outside 0.002..0.5 m; sizes are in metres: did you mean 0.04 (40 mm)?"),
    (["camera", "board", "--out", "b.png", "--board", "7x5:0.4:0.3"], "px wide (max 20000)"),
])
def test_out_of_range_is_one_line_exit_2(argv: list[str], fragment: str, tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "dream2flow.cli", *argv], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and fragment in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())   # nothing written
