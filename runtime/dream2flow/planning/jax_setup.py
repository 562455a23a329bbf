"""JAX set-up for the planner: the persistent compilation cache and traced programs on disk.

Why: compiling the solver costs seconds on a small CPU; with the cache a fresh process
loads the compiled executables instead (the shape buckets mean there are only a few). The
cache is keyed by the lowered program, so a fresh process would still trace every solver
in Python first (~0.5 s each); ``compiled`` keeps the traced program itself on disk too
(``jax.export``, StableHLO), so a fresh process goes from file to cached executable
without tracing. Both are keyed by the JAX version and the solver's source, and both are
optional: an unwritable folder or ``D2F_JAX_CACHE=0`` falls back to plain ``jax.jit``.
We keep JAX in float32 (no ``jax_enable_x64``: it is process-wide and would change
other modules' numerics); float32 is accurate to ~1e-6 m on arm-sized FK, far below
the planner's 1 cm tolerance, and XLA on CPU is deterministic run to run.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Callable

from dream2flow.log import get_logger

_log = get_logger("planning.jax_setup")
_DONE = False
_LOADED: dict[tuple, Callable] = {}


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


# The on-disk traced programs need a JAX whose export round trip we have verified: JAX 0.6.2 (the
# last for Python 3.10) segfaults calling a deserialized solver program, so older JAX traces as usual.
MIN_JAX_FOR_EXPORT = (0, 10)


def _export_dir() -> Path | None:
    if os.environ.get("D2F_JAX_CACHE", "1") == "0":
        return None
    import jax

    if tuple(jax.__version_info__[:2]) < MIN_JAX_FOR_EXPORT:
        return None
    d = cache_dir().parent / "export"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return d


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """What a traced program depends on: JAX's version and the planner's JAX sources."""
    import jax
    import jaxlib

    from dream2flow.planning import kinematics, solver

    h = hashlib.sha256(f"{jax.__version__}|{jaxlib.__version__}|{jax.default_backend()}".encode())
    for mod in (solver, kinematics):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()


def compiled(name: str, fn: Callable, args: tuple, **static: Any) -> Callable:
    """``jax.jit(fn)`` with ``static`` keyword arguments, for arguments shaped like ``args``: once per
    process, and across processes from a traced program on disk (module doc). The result is
    the same executable as ``jax.jit`` compiles (same program); call it with arrays of ``args``'
    shapes and dtypes."""
    shapes = tuple((tuple(a.shape), str(a.dtype)) for a in args)
    key = (name, shapes, tuple(sorted(static.items())))
    f = _LOADED.get(key)
    if f is None:
        f = _LOADED[key] = _load_or_export(name, fn, args, static, shapes)
    return f


def _load_or_export(name: str, fn: Callable, args: tuple, static: dict, shapes: tuple) -> Callable:
    import jax
    from jax import export

    enable_compilation_cache()
    plain = jax.jit(functools.partial(fn, **static))
    d = _export_dir()
    if d is None:
        return plain
    digest = hashlib.sha256(repr((_code_digest(), name, shapes, sorted(static.items()))).encode()).hexdigest()[:24]
    path = d / f"{name}-{digest}.jaxexp"
    try:
        if path.is_file():
            exp = export.deserialize(bytearray(path.read_bytes()))
        else:
            exp = export.export(plain)(*(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in args))
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(exp.serialize())
            os.replace(tmp, path)  # atomic: concurrent processes write the same bytes
        return jax.jit(exp.call)
    except Exception as exc:  # a damaged or foreign file: trace as usual (and replace it next time)
        _log.warning("traced-program cache unusable for %s (%s: %s); tracing instead", name, type(exc).__name__, exc)
        try:
            path.unlink()
        except OSError:
            pass
        return plain


def loaded_programs() -> int:
    """How many (function, shape) programs this process has made ready (tests: warm-up coverage)."""
    return len(_LOADED)
