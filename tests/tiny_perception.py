"""Test helper: perception configurations over the project's tiny random ONNX exports
(``export_tools/tiny.py``), for plumbing tests of the factory, ``flow``, ``perceive`` and the
service. The tiny models' outputs are random: tests check what runs and where it goes, never
accuracy."""

from __future__ import annotations

from pathlib import Path

TINY_ROLES = {"detector": "model", "segmenter": "model", "tracker": "model", "video_depth": "model", "hand": "model"}


def tiny_models_dir() -> Path:
    """The tiny exports (one export per test process; needs torch, in a child process)."""
    from export_tools.tiny import cached_tiny_set

    return cached_tiny_set().parent


def write_perception_toml(path: Path, models_dir: Path | None = None, roles: dict[str, str] | None = None,
                          extra: str = "") -> Path:
    """A perception TOML: ``roles`` maps role -> ``use`` value (default: every role "model");
    ``extra`` is appended verbatim (role options)."""
    lines = ["schema = 1"]
    if models_dir is not None:
        lines.append(f'models_dir = "{models_dir}"')
    lines += ["[engine]", 'providers = ["cpu"]']
    for role, use in (roles or TINY_ROLES).items():
        lines += [f"[{role}]", f'use = "{use}"']
    path = Path(path)
    path.write_text("\n".join(lines) + "\n" + extra)
    return path
