"""One module per ``dream2flow`` sub-command: ``register(subparsers)`` adds the parser and sets
``func``. Keep module top-levels import-light (argparse only): heavy imports go in handlers."""

from __future__ import annotations

import argparse

from dream2flow.flow import MAX_NUM_POINTS  # noqa: F401  (the --points bound of flow/demo/eval/sim/task)


def not_built_yet(issue: int):
    """Handler for a command whose issue is still open: a clear NotReady, never a fake result."""

    def run(args: argparse.Namespace) -> int:
        from dream2flow.errors import NotReady

        raise NotReady(f"'{args.command}' is not built yet (issue {issue})")

    return run


SEED_MAX = 2**31 - 1


class _Ranged:
    """An argparse ``type=`` that parses a number and checks its range, so a unit mistake or a
    typo is refused with a sentence (exit 2) instead of crashing (or allocating terabytes) later.
    ``tests/test_cli_ranges.py`` checks that every numeric option of every command uses one."""

    def __init__(self, kind: type, lo: float | None, hi: float | None, unit: str = "") -> None:
        self.kind, self.lo, self.hi, self.unit = kind, lo, hi, unit
        self.__name__ = f"{kind.__name__} in {self.describe()}"  # argparse names the type in errors

    def _num(self, x: float) -> str:
        return str(int(x)) if self.kind is int else f"{x:g}"

    def describe(self) -> str:
        u = f" {self.unit}" if self.unit else ""
        if self.lo is not None and self.hi is not None:
            return f"[{self._num(self.lo)}, {self._num(self.hi)}]{u}"
        if self.lo is not None:
            return f">= {self._num(self.lo)}{u}"
        return f"<= {self._num(self.hi)}{u}"

    def __call__(self, text: str) -> float | int:
        import math

        what = "an integer" if self.kind is int else "a number"
        try:
            v = self.kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what} in {self.describe()}, got {text!r}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number in {self.describe()}, got {text!r}")
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            raise argparse.ArgumentTypeError(f"expected {what} in {self.describe()}, got {text}")
        return v


def int_in(lo: int | None, hi: int | None, unit: str = "") -> _Ranged:
    """argparse type: an integer in [lo, hi] (None: unbounded on that side)."""
    return _Ranged(int, lo, hi, unit)


def float_in(lo: float | None, hi: float | None, unit: str = "") -> _Ranged:
    """argparse type: a finite number in [lo, hi] (None: unbounded on that side)."""
    return _Ranged(float, lo, hi, unit)


def seed_type() -> _Ranged:
    """argparse type of every ``--seed``: an integer in [0, 2^31 - 1]."""
    return _Ranged(int, 0, SEED_MAX)
