"""The operator's documents say which arm each robot backend drives and how to bring each up
(issue 17, acceptance 4), and stay true to the code: every backend the factory builds has a row,
every bring-up section the table points to exists, and every command they show parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dream2flow.cli import build_parser
from dream2flow.control.backends import BACKENDS, backend_moves_real_arm

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
HW_README = (ROOT / "hw" / "README.md").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The body of the markdown section whose heading line starts with ``heading``."""
    m = re.search(rf"^{re.escape(heading)}.*?$(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert m, f"no section {heading!r}"
    return m.group(1)


def _backend_rows() -> dict[str, str]:
    """README robots table: backend name -> its row."""
    rows = {}
    for line in _section(README, "## Robots: which backend drives which arm").splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            for name in re.findall(r"`([a-z]+)`", first):
                rows[name] = line
    return rows


def test_every_backend_says_which_arm_it_drives() -> None:
    rows = _backend_rows()
    assert set(BACKENDS) <= set(rows), f"README robots table lacks {sorted(set(BACKENDS) - set(rows))}"
    assert "Panda" in rows["polymetis"] and "< 0.10" in rows["polymetis"]
    assert "Research 3" in rows["libfranka"] and "≥ 0.10" in rows["libfranka"]
    for name in BACKENDS:                      # a real arm's row points to its bring-up; a simulated one needs none
        cell = rows[name].split("|")[4]
        if backend_moves_real_arm(name):
            sec = re.search(r"§(\w+)", cell)
            assert sec and re.search(rf"^## {sec.group(1)}\. ", HW_README, flags=re.M), (name, cell)
        else:
            assert "nothing" in cell, (name, cell)


def test_hw_readme_names_the_arm_of_each_backend() -> None:
    para = " ".join(HW_README.split())
    assert re.search(r"a \*\*Panda\*\* runs through Polymetis \(§1; libfranka < 0\.10", para)
    assert re.search(r"a \*\*Franka Research 3\*\* through libfranka ≥ 0\.10", para)
    assert re.search(r"^## 1\. .*Polymetis", HW_README, flags=re.M)
    assert re.search(r"^## 1b\. .*Franka Research 3 through libfranka", HW_README, flags=re.M)


def _commands() -> list[str]:
    texts = [_section(README, "## Robots: which backend drives which arm"), _section(HW_README, "## 1b. ")]
    spans = [" ".join(m.split()) for t in texts for m in re.findall(r"`(dream2flow [^`]+)`", t)]
    return list(dict.fromkeys(s.replace("<FCI address>", "172.16.0.2") for s in spans))


@pytest.mark.parametrize("command", _commands())
def test_bring_up_commands_parse(command: str) -> None:
    """Each bring-up command in the documents is one the CLI accepts as written."""
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert callable(args.func)


def test_the_bring_up_covers_the_libfranka_path() -> None:
    cmds = _commands()
    for needed in ("robot state", "robot home-gripper", "--dry-run", "--backend libfranka", "robot recover"):
        assert any(needed in c for c in cmds), needed
    assert all("--yes" in c for c in cmds if "--backend libfranka" in c and "--dry-run" not in c)
