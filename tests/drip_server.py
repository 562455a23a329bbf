"""Test and bench helper: a loopback HTTP server with a video URL that never finishes downloading."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback_http import LoopbackHTTP


class DripServer(LoopbackHTTP):
    """/drip.mp4 promises 50 MB and trickles 1 KB every 50 ms (a fetch that stays in progress);
    /missing.mp4 is a 404. Counts requests for /drip.mp4. A task fetching it stays in its fetch stage
    until it is stopped (or ``max_seconds`` pass)."""

    def __init__(self, max_seconds: float = 100.0) -> None:
        self.drip_requests = 0
        chunks = int(max_seconds / 0.05)
        self.stop = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/drip.mp4":
                    outer.drip_requests += 1
                    self.send_response(200)
                    self.send_header("Content-Length", str(50_000_000))
                    self.end_headers()
                    for _ in range(chunks):  # bounded: max_seconds at most
                        if outer.stop.is_set():
                            return
                        try:
                            self.wfile.write(b"\0" * 1024)
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.05)
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(H)

    def close(self) -> None:
        self.stop.set()
        super().close()
