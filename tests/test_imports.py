"""Every runtime module imports (run on Python 3.10 in CI: catches 3.11-only syntax/stdlib)
and the runtime never imports torch (checked in a fresh interpreter, whatever else the
test session has imported)."""

from __future__ import annotations

import subprocess
import sys

_CHECK = """
import importlib, pkgutil, sys
import dream2flow
names = [m.name for m in pkgutil.walk_packages(dream2flow.__path__, "dream2flow.")]
assert len(names) > 5, names
for name in names:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not bad, f"runtime imported torch: {bad[:5]}"
print(len(names))
"""


def test_every_runtime_module_imports_without_torch() -> None:
    out = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) > 5
