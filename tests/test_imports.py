"""Every runtime module imports (run on Python 3.10 in CI: catches 3.11-only syntax/stdlib)
and the runtime never imports torch."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import dream2flow


def test_every_runtime_module_imports_without_torch() -> None:
    names = [m.name for m in pkgutil.walk_packages(dream2flow.__path__, "dream2flow.")]
    assert len(names) > 5
    for name in names:
        importlib.import_module(name)
    assert "torch" not in sys.modules
