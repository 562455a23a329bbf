"""JAX set-up for the planner: the persistent compilation cache on disk.

Why: compiling the solver costs seconds on a small CPU; with the cache a fresh process
loads the compiled executables instead (the shape buckets mean there are only a few).
We keep JAX in float32 (no ``jax_enable_x64``: it is process-wide and would change
other modules' numerics); float32 is accurate to ~1e-6 m on arm-sized FK, far below
the planner's 1 cm tolerance, and XLA on CPU is deterministic run to run.
"""

from __future__ import annotations

import os
from pathlib import Path

_DONE = False


def cache_dir() -> Path:
    """``$D2F_CACHE_DIR/jax`` if set, else ``~/.cache/dream2flow/jax``."""
    base = os.environ.get("D2F_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "dream2flow") / "jax"


def enable_compilation_cache() -> None:
    """Point JAX's persistent cache at :func:`cache_dir` (once; ``D2F_JAX_CACHE=0`` disables;
    a cache directory configured by someone else is left alone)."""
    global _DONE
    if _DONE:
        return
    _DONE = True
    if os.environ.get("D2F_JAX_CACHE", "1") == "0":
        return
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(d))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
