"""A finished task's artifacts as the API serves them: name → file inside the task's folder,
size, sha256 (computed once per file and cached), media type, and chunked reads from an offset.

Why a module: ``ListArtifacts`` / ``GetArtifact`` must only ever read files of that task (a
record that points elsewhere is refused, never followed), and the checksum of a 60 MB video
must not be recomputed for every resumed download.
"""

from __future__ import annotations

import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dream2flow.errors import InvalidInput, NotReady
from dream2flow.service.store import TERMINAL, NotFound, Store

_MEDIA = {".npz": "application/x-npz", ".npy": "application/x-npy", ".json": "application/json",
          ".toml": "application/toml", ".mp4": "video/mp4", ".png": "image/png", ".avi": "video/x-msvideo",
          ".mkv": "video/x-matroska", ".webm": "video/webm"}


@dataclass(frozen=True)
class ArtifactFile:
    name: str
    path: Path
    file_name: str  # relative to the task folder (what a client writes)
    size_bytes: int
    sha256_hex: str
    media_type: str


class ArtifactIndex:
    """sha256 cache keyed by (path, size, mtime): finished tasks' files do not change."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def _sha256(self, path: Path) -> tuple[int, str]:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return st.st_size, hit
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = h.hexdigest()
        return st.st_size, h.hexdigest()

    def files(self, task_id: str) -> list[ArtifactFile]:
        """Every artifact of a finished task that exists as a file in its folder."""
        task = self.store.get_task(task_id)
        if task["state"] not in TERMINAL:
            raise NotReady(f"task {task_id} is {task['state']}: its artifacts are listed when it ends",
                           reason="TASK_NOT_FINISHED")
        tdir = self.store.task_dir(task_id).resolve()
        data = self.store.data_dir.resolve()
        out = []
        for name, rel in sorted(task["artifacts"].items()):
            p = Path(rel)
            p = (p if p.is_absolute() else data / p).resolve()
            try:
                file_name = p.relative_to(tdir).as_posix()
            except ValueError:  # a record pointing outside the task's folder is never served
                continue
            if not p.is_file():
                continue
            size, sha = self._sha256(p)
            media = _MEDIA.get(p.suffix.lower()) or mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            out.append(ArtifactFile(name, p, file_name, size, sha, media))
        return out

    def get(self, task_id: str, name: str) -> ArtifactFile:
        for a in self.files(task_id):
            if a.name == name:
                return a
        raise NotFound(f"task {task_id} has no artifact named {name[:100]!r}", reason="ARTIFACT_NOT_FOUND",
                       field="name")


def read_chunks(path: Path, offset: int, chunk_bytes: int, size: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) from ``offset`` to ``size`` (the size the listing promised)."""
    if not 0 <= offset <= size:
        raise InvalidInput(f"offset_bytes {offset} is outside the file (0..{size})", field="offset_bytes",
                           reason="INVALID_FIELD")
    with open(path, "rb") as f:
        f.seek(offset)
        pos = offset
        while pos < size:
            data = f.read(min(chunk_bytes, size - pos))
            if not data:
                break
            yield pos, data
            pos += len(data)


class OutOfRange(InvalidInput):
    """An offset past the end of a file."""

    grpc_code = "OUT_OF_RANGE"

    def __init__(self, message: str, **kw: object) -> None:
        kw.setdefault("reason", "INVALID_FIELD")
        kw.setdefault("field", "offset_bytes")
        super().__init__(message, **kw)  # type: ignore[arg-type]
