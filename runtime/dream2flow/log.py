"""Logging set-up shared by the CLI and the service: one format, level from flag or env."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger on stderr. ``verbosity`` 0=WARNING(+progress on stdout), 1=INFO, 2=DEBUG.
    ``D2F_LOG_LEVEL`` overrides it."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    env = os.environ.get("D2F_LOG_LEVEL")
    if env:
        level = getattr(logging, env.upper(), level)
    logging.basicConfig(level=level, format=_FORMAT, stream=sys.stderr, force=True)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("dream2flow") else f"dream2flow.{name}")


def progress(message: str) -> None:
    """A line of progress for a person watching a long command (stdout, flushed)."""
    print(message, flush=True)
