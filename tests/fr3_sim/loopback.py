"""A loopback address for one franka-sim instance (test and bench helper).

libfranka always dials ports 1337 (TCP) and 1338 (UDP), so each simulator needs its own 127.0.0.X;
a random order keeps parallel runs (tests, the bench) from racing for the same address."""

from __future__ import annotations

import os
import random
import socket
import time


def free_loopback() -> str:
    """A 127.0.0.X on which ports 1337 and 1338 are free now."""
    rng = random.Random(os.getpid() ^ int(time.time() * 1000))
    for x in rng.sample(range(2, 255), 253):
        host = f"127.0.0.{x}"
        ok = True
        for port in (1337, 1338):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError:
                    ok = False
        if ok:
            return host
    raise RuntimeError("no free 127.0.0.X for franka-sim")
