"""Receive a client-streamed upload (UploadVideo): metadata first, then chunks, written to disk
as they arrive under a running byte cap, sha256 checked at the end, content probed, then kept
under an upload id until a task links it or it expires.

Status codes: INVALID_ARGUMENT (bad metadata, chunk size, more bytes than declared, a file
that is not what its container says), RESOURCE_EXHAUSTED (declared size over the cap, too
many uploads at once, upload storage full), DATA_LOSS (fewer bytes than declared: a
truncated stream; sha256 mismatch).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from dream2flow.errors import DataLoss, InvalidInput, ResourceExhausted
from dream2flow.service.config import LimitsSection
from dream2flow.service.probe import ProbePool, probe_depth_file
from dream2flow.service.store import Store, new_id

VIDEO_CONTAINERS = {"MP4": ".mp4", "AVI": ".avi", "MKV": ".mkv", "WEBM": ".webm"}
DEPTH_CONTAINERS = {"NPY": ".npy"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class UploadMeta:
    size_bytes: int
    sha256_hex: str
    container: str  # "MP4", … (enum name without prefix)
    purpose: str  # "VIDEO" | "VIDEO_DEPTH"
    filename: str = ""


def suffix_for(container: str) -> str:
    return {**VIDEO_CONTAINERS, **DEPTH_CONTAINERS}[container]


def check_metadata(meta: UploadMeta, limits: LimitsSection) -> None:
    if meta.purpose == "VIDEO":
        if meta.container not in VIDEO_CONTAINERS:
            raise InvalidInput(f"a VIDEO upload needs container {', '.join(VIDEO_CONTAINERS)}, got {meta.container}")
        cap = limits.max_video_bytes
    elif meta.purpose == "VIDEO_DEPTH":
        if meta.container not in DEPTH_CONTAINERS:
            raise InvalidInput(f"a VIDEO_DEPTH upload needs container NPY, got {meta.container}")
        cap = limits.max_depth_bytes
    else:
        raise InvalidInput("upload metadata needs purpose VIDEO or VIDEO_DEPTH")
    if meta.size_bytes <= 0:
        raise InvalidInput("upload metadata needs size_bytes > 0")
    if meta.size_bytes > cap:
        raise ResourceExhausted(f"upload of {meta.size_bytes} bytes is over the {meta.purpose} cap of {cap} bytes")
    if not _HEX64.match(meta.sha256_hex or ""):
        raise InvalidInput("upload metadata needs sha256_hex: 64 lower-case hex characters")
    if len(meta.filename) > 255:
        raise InvalidInput("upload filename must be at most 255 characters")


class UploadManager:
    """Bounded uploads (count and total stored bytes); probing off the event loop."""

    def __init__(self, store: Store, limits: LimitsSection, probe_pool: ProbePool,
                 db: Callable[..., Awaitable[Any]] | None = None,
                 io: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.store = store
        self.db = db or asyncio.to_thread  # store calls (fsync) off the event loop
        self.io = io or asyncio.to_thread  # probes and fsync of the upload
        self.limits = limits
        self.probe_pool = probe_pool
        self._active = 0
        self._reserved = 0  # bytes promised to in-flight uploads
        self._lock = asyncio.Lock()

    async def _reserve(self, size: int) -> None:
        async with self._lock:
            if self._active >= self.limits.max_concurrent_uploads:
                raise ResourceExhausted(f"{self._active} uploads are in progress (limit "
                                        f"{self.limits.max_concurrent_uploads}); retry later")
            stored = await self.db(self.store.uploads_total_bytes)
            if stored + self._reserved + size > self.limits.max_upload_store_bytes:
                await self.db(self.store.delete_expired_uploads, self.limits.upload_ttl_s)
                stored = await self.db(self.store.uploads_total_bytes)
                if stored + self._reserved + size > self.limits.max_upload_store_bytes:
                    raise ResourceExhausted(f"upload storage is full ({stored + self._reserved} of "
                                            f"{self.limits.max_upload_store_bytes} bytes in use); retry later")
            self._active += 1
            self._reserved += size

    async def _release(self, size: int) -> None:
        async with self._lock:
            self._active -= 1
            self._reserved -= size

    async def receive(self, meta: UploadMeta, chunks: AsyncIterator[bytes], owner: str) -> dict[str, Any]:
        """Consume ``chunks`` after ``meta`` → the stored upload record (with "info" from the probe)."""
        check_metadata(meta, self.limits)
        await self._reserve(meta.size_bytes)
        upload_id = new_id("u_")
        final = self.store.upload_path(upload_id)
        part = final.with_suffix(".part")
        fd = None
        try:
            fd = os.open(str(part), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            h = hashlib.sha256()
            n = 0
            async for chunk in chunks:
                if not chunk:
                    raise InvalidInput("empty chunk (each chunk carries 1.. max_chunk_bytes bytes)")
                if len(chunk) > self.limits.max_chunk_bytes:
                    raise InvalidInput(f"chunk of {len(chunk)} bytes is over max_chunk_bytes="
                                       f"{self.limits.max_chunk_bytes}")
                n += len(chunk)
                if n > meta.size_bytes:
                    raise InvalidInput(f"the stream sent more than the declared {meta.size_bytes} bytes")
                h.update(chunk)
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            if n < meta.size_bytes:
                raise DataLoss(f"the upload stream ended after {n} of {meta.size_bytes} bytes (truncated)")
            if h.hexdigest() != meta.sha256_hex:
                raise DataLoss(f"sha256 mismatch: received data hashes to {h.hexdigest()}, "
                               f"metadata says {meta.sha256_hex}")
            await self.io(os.fsync, fd)
            os.close(fd)
            fd = None
            info = await self.io(self._probe, part, meta)
            os.replace(part, final)
            await self.db(self.store.add_upload, upload_id=upload_id, owner=owner, purpose=meta.purpose,
                                    container=meta.container, size_bytes=n, sha256=meta.sha256_hex,
                                    filename=meta.filename, info=info)
        except BaseException:
            if fd is not None:
                os.close(fd)
            part.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            raise
        finally:
            await self._release(meta.size_bytes)
        return {"upload_id": upload_id, "size_bytes": n, "sha256_hex": meta.sha256_hex, "info": info,
                "expires_unix_s": time.time() + self.limits.upload_ttl_s}

    def _probe(self, path: Path, meta: UploadMeta) -> dict[str, Any]:
        lim = self.limits
        if meta.purpose == "VIDEO_DEPTH":
            out = probe_depth_file(str(path), lim.max_video_frames, lim.max_video_width_px, lim.max_video_height_px)
            if "error" in out:
                raise InvalidInput(f"video depth upload refused: {out['error']}")
            return out
        try:
            return self.probe_pool.probe_video(str(path), lim.max_video_frames, lim.max_video_width_px,
                                               lim.max_video_height_px)
        except InvalidInput as exc:
            raise InvalidInput(f"video upload refused: {exc.message}") from None


def link_into(src: Path, dest: Path) -> Path:
    """Hard-link ``src`` to ``dest`` (a task keeps its inputs when the upload expires); copy
    when the file system refuses links."""
    import shutil

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
    return dest
