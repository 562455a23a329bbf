"""Receive a client-streamed upload (UploadVideo): metadata first, then chunks, written to disk
as they arrive under a running byte cap, sha256 checked at the end, content probed, then kept
under an upload id until a task links it or it expires.

Uploads are content-addressed (sha256 + purpose): a file the server already has is answered at
once (``deduplicated``) and tasks may name it by its hash. They are resumable: the bytes of a
stream that breaks, ends early or goes silent for ``upload_idle_timeout_s`` stay in
``uploads/part-<sha256>-<purpose>.part`` (row in ``upload_parts``); ``GetUpload`` tells the
received offset and a new stream with ``offset_bytes`` sends only the rest (the server re-hashes
the kept prefix, so the final check covers every byte). One stream writes a file at a time; a
second stream of the same file waits for the first, then is answered ``deduplicated`` (or goes
on where the first stopped, if it broke off).

Status codes: INVALID_ARGUMENT (bad metadata, chunk size, more bytes than declared, a file that
is not what its container says), RESOURCE_EXHAUSTED (declared size over the cap, too many
uploads at once, upload storage full), FAILED_PRECONDITION (a resume offset that is not the
received one), ABORTED (a stream idle too long; deleting a file being uploaded), DATA_LOSS (fewer bytes than declared: resumable; sha256 mismatch: the bytes are dropped).
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

from dream2flow.errors import DataLoss, Dream2FlowError, InvalidInput, NotReady, ResourceExhausted
from dream2flow.service.config import LimitsSection
from dream2flow.service.probe import ProbePool, probe_depth_file
from dream2flow.service.store import NotFound, Store, new_id

VIDEO_CONTAINERS = {"MP4": ".mp4", "AVI": ".avi", "MKV": ".mkv", "WEBM": ".webm"}
DEPTH_CONTAINERS = {"NPY": ".npy"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class UploadAborted(Dream2FlowError):
    """The stream must be retried or resumed (another stream has the file; idle too long)."""

    exit_code = 3
    grpc_code = "ABORTED"


@dataclass
class UploadMeta:
    size_bytes: int
    sha256_hex: str
    container: str  # "MP4", … (enum name without prefix)
    purpose: str  # "VIDEO" | "VIDEO_DEPTH"
    filename: str = ""
    offset_bytes: int = 0


def suffix_for(container: str) -> str:
    return {**VIDEO_CONTAINERS, **DEPTH_CONTAINERS}[container]


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, reason="INVALID_FIELD", field=f"metadata.{field}")


def check_metadata(meta: UploadMeta, limits: LimitsSection) -> None:
    if meta.purpose == "VIDEO":
        if meta.container not in VIDEO_CONTAINERS:
            raise _bad("container", f"a VIDEO upload needs container {', '.join(VIDEO_CONTAINERS)}, got {meta.container}")
        cap = limits.max_video_bytes
    elif meta.purpose == "VIDEO_DEPTH":
        if meta.container not in DEPTH_CONTAINERS:
            raise _bad("container", f"a VIDEO_DEPTH upload needs container NPY, got {meta.container}")
        cap = limits.max_depth_bytes
    else:
        raise _bad("purpose", "upload metadata needs purpose VIDEO or VIDEO_DEPTH")
    if meta.size_bytes <= 0:
        raise _bad("size_bytes", "upload metadata needs size_bytes > 0")
    if meta.size_bytes > cap:
        raise ResourceExhausted(f"upload of {meta.size_bytes} bytes is over the {meta.purpose} cap of {cap} bytes",
                                reason="UPLOAD_TOO_LARGE", quota=(f"{meta.purpose} upload size", f"at most {cap} bytes"))
    if not _HEX64.match(meta.sha256_hex or ""):
        raise _bad("sha256_hex", "upload metadata needs sha256_hex: 64 lower-case hex characters")
    if len(meta.filename) > 255:
        raise _bad("filename", "upload filename must be at most 255 characters")
    if not 0 <= meta.offset_bytes < meta.size_bytes:
        raise _bad("offset_bytes", f"offset_bytes must be 0..{meta.size_bytes - 1}")


def upload_record(rec: dict[str, Any], ttl_s: float) -> dict[str, Any]:
    """A finished upload's row → the fields of the API's Upload message."""
    info = rec.get("info", {})
    return {"upload_id": rec["upload_id"], "state": "COMPLETE", "sha256_hex": rec["sha256"],
            "purpose": rec["purpose"], "container": rec["container"], "size_bytes": int(rec["size_bytes"]),
            "received_bytes": int(rec["size_bytes"]), "filename": rec.get("filename", ""), "owner": rec["owner"],
            "created_unix_s": float(rec["created_s"]), "last_used_unix_s": float(rec["last_used_s"]),
            "expires_unix_s": float(rec["last_used_s"]) + ttl_s, "info": info}


def part_record(p: dict[str, Any], ttl_s: float) -> dict[str, Any]:
    return {"upload_id": "", "state": "PARTIAL", "sha256_hex": p["sha256"], "purpose": p["purpose"],
            "container": p["container"], "size_bytes": int(p["size_bytes"]), "received_bytes": int(p["received_bytes"]),
            "filename": p.get("filename", ""), "owner": p["owner"], "created_unix_s": float(p["created_s"]),
            "last_used_unix_s": float(p["updated_s"]), "expires_unix_s": float(p["updated_s"]) + ttl_s, "info": {}}


class UploadManager:
    """Bounded uploads (count and total stored bytes); probing off the event loop; one stream per
    file at a time."""

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
        self._sessions: dict[tuple[str, str], asyncio.Event] = {}  # (sha256, purpose) being received → set when done
        self._lock = asyncio.Lock()

    async def _reserve(self, size: int) -> None:
        async with self._lock:
            if self._active >= self.limits.max_concurrent_uploads:
                raise ResourceExhausted(f"{self._active} uploads are in progress (limit "
                                        f"{self.limits.max_concurrent_uploads}); retry later", reason="TOO_MANY_UPLOADS",
                                        quota=("concurrent uploads",
                                               f"at most {self.limits.max_concurrent_uploads} at once"))
            stored = await self.db(self.store.uploads_total_bytes)
            if stored + self._reserved + size > self.limits.max_upload_store_bytes:
                await self.db(self.store.delete_expired_uploads, self.limits.upload_ttl_s)
                stored = await self.db(self.store.uploads_total_bytes)
                if stored + self._reserved + size > self.limits.max_upload_store_bytes:
                    raise ResourceExhausted(f"upload storage is full ({stored + self._reserved} of "
                                            f"{self.limits.max_upload_store_bytes} bytes in use); retry later",
                                            reason="UPLOAD_STORE_FULL",
                                            quota=("upload storage", f"{self.limits.max_upload_store_bytes} bytes"))
            self._active += 1
            self._reserved += size

    async def _release(self, size: int) -> None:
        async with self._lock:
            self._active -= 1
            self._reserved -= size

    async def lookup(self, *, upload_id: str = "", sha256_hex: str = "", purpose: str = "") -> dict[str, Any]:
        """GetUpload: a finished upload by id, or by sha256 + purpose a finished or partial one."""
        ttl = self.limits.upload_ttl_s
        if upload_id:
            return upload_record(await self.db(self.store.get_upload, upload_id), ttl)
        if not _HEX64.match(sha256_hex or "") or purpose not in ("VIDEO", "VIDEO_DEPTH"):
            raise InvalidInput("give upload_id, or sha256_hex (64 lower-case hex) and purpose VIDEO or VIDEO_DEPTH",
                               reason="INVALID_FIELD", field="sha256_hex" if upload_id == "" else "upload_id")
        rec = await self.db(self.store.find_upload, sha256_hex, purpose)
        if rec is not None:
            return upload_record(rec, ttl)
        part = await self.db(self.store.get_part, sha256_hex, purpose)
        if part is not None:
            return part_record(part, ttl)
        raise NotFound(f"no upload with sha256 {sha256_hex} ({purpose}) here", reason="UPLOAD_NOT_FOUND")

    async def delete(self, *, upload_id: str = "", sha256_hex: str = "", purpose: str = "") -> dict[str, Any]:
        rec = await self.lookup(upload_id=upload_id, sha256_hex=sha256_hex, purpose=purpose)
        key = (rec["sha256_hex"], rec["purpose"])
        if rec["state"] == "PARTIAL":
            if key in self._sessions:
                raise UploadAborted("this file is being uploaded right now; delete it when the stream ends",
                                    reason="UPLOAD_IN_PROGRESS", retry_after_s=1.0)
            await self.db(self.store.drop_part, *key)
        else:
            await self.db(self.store.delete_upload, rec["upload_id"])
        return rec

    async def receive(self, meta: UploadMeta, chunks: AsyncIterator[bytes], owner: str) -> dict[str, Any]:
        """Consume ``chunks`` after ``meta`` → the stored upload record (``upload_record`` fields,
        plus "deduplicated", "received_bytes", "resumed_from_bytes")."""
        check_metadata(meta, self.limits)
        key = (meta.sha256_hex, meta.purpose)
        while key in self._sessions:  # another stream has this file: wait for it (then dedup, or go on)
            await self._sessions[key].wait()
        done = self._sessions[key] = asyncio.Event()  # claimed with no await since the check
        try:
            return await self._receive(meta, key, chunks, owner)
        finally:
            self._sessions.pop(key, None)
            done.set()

    async def _receive(self, meta: UploadMeta, key: tuple[str, str], chunks: AsyncIterator[bytes],
                       owner: str) -> dict[str, Any]:
        existing = await self.db(self.store.find_upload, *key)
        if existing is not None:  # the server has this file: nothing to read
            return {**upload_record(existing, self.limits.upload_ttl_s), "deduplicated": True, "received_bytes": 0,
                    "resumed_from_bytes": 0}
        part_info = await self.db(self.store.get_part, *key)
        offset = int(meta.offset_bytes)
        if offset:
            have = 0 if part_info is None or int(part_info["size_bytes"]) != meta.size_bytes \
                else int(part_info["received_bytes"])
            if have != offset:
                raise NotReady(f"the server holds {have} bytes of this file, not {offset}: resume from {have}",
                               reason="UPLOAD_OFFSET_MISMATCH", field="metadata.offset_bytes",
                               metadata={"received_bytes": str(have)})
        elif part_info is not None:
            await self.db(self.store.drop_part, *key)  # offset 0: start over
            part_info = None
        new_bytes = meta.size_bytes if part_info is None else 0  # a kept part is already counted
        await self._reserve(new_bytes)
        part = self.store.part_path(*key)
        fd = None
        n = offset
        try:
            if part_info is None:
                await self.db(self.store.put_part, sha256=meta.sha256_hex, purpose=meta.purpose,
                              size_bytes=meta.size_bytes, container=meta.container, owner=owner,
                              filename=meta.filename)
                fd = os.open(str(part), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                h = hashlib.sha256()
            else:
                h = await self.io(_hash_prefix, part, offset)
                fd = os.open(str(part), os.O_WRONLY)
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
            last_touch = time.monotonic()
            it = chunks.__aiter__()
            while True:
                try:
                    chunk = await asyncio.wait_for(it.__anext__(), timeout=self.limits.upload_idle_timeout_s)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise UploadAborted(f"the upload stream sent nothing for {self.limits.upload_idle_timeout_s:.0f} s; "
                                        f"{n} of {meta.size_bytes} bytes are kept: resume from there",
                                        reason="UPLOAD_IDLE_TIMEOUT", retry_after_s=0.0,
                                        metadata={"received_bytes": str(n)}) from None
                if not chunk:
                    raise InvalidInput("empty chunk (each chunk carries 1.. max_chunk_bytes bytes)",
                                       reason="INVALID_FIELD", field="chunk")
                if len(chunk) > self.limits.max_chunk_bytes:
                    raise InvalidInput(f"chunk of {len(chunk)} bytes is over max_chunk_bytes="
                                       f"{self.limits.max_chunk_bytes}", reason="INVALID_FIELD", field="chunk")
                if n + len(chunk) > meta.size_bytes:
                    raise InvalidInput(f"the stream sent more than the declared {meta.size_bytes} bytes",
                                       reason="INVALID_FIELD", field="metadata.size_bytes")
                h.update(chunk)
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                n += len(chunk)
                if time.monotonic() - last_touch > 5.0:  # a long upload is not "idle" for the janitor
                    last_touch = time.monotonic()
                    await self.db(self.store.touch_part, *key)
            if n < meta.size_bytes:
                raise DataLoss(f"the upload stream ended after {n} of {meta.size_bytes} bytes (truncated); the bytes "
                               f"are kept: resume with offset_bytes={n}", reason="UPLOAD_INCOMPLETE",
                               metadata={"received_bytes": str(n)})
            if h.hexdigest() != meta.sha256_hex:
                raise DataLoss(f"sha256 mismatch: received data hashes to {h.hexdigest()}, "
                               f"metadata says {meta.sha256_hex}", reason="CHECKSUM_MISMATCH")
            await self.io(os.fsync, fd)
            os.close(fd)
            fd = None
            info = await self.io(self._probe, part, meta)
            upload_id = new_id("u_")
            final = self.store.upload_path(upload_id)
            os.replace(part, final)
            try:
                await self.db(self.store.add_upload, upload_id=upload_id, owner=owner, purpose=meta.purpose,
                              container=meta.container, size_bytes=n, sha256=meta.sha256_hex,
                              filename=meta.filename, info=info)
            except BaseException:
                final.unlink(missing_ok=True)
                raise
            await self.db(self.store.drop_part, *key)
        except BaseException as exc:
            if fd is not None:
                os.close(fd)
            # Kept for a resume: a stream that broke off, went idle or ended early. Dropped: bad
            # chunks, too many bytes, a checksum or content refusal (and a part with no byte).
            keep = n > 0 and (isinstance(exc, (asyncio.CancelledError, UploadAborted, ConnectionError)) or
                              getattr(exc, "reason", "") == "UPLOAD_INCOMPLETE")
            if not keep:
                await asyncio.shield(self.db(self.store.drop_part, *key))
            raise
        finally:
            await self._release(new_bytes)
        rec = await self.db(self.store.get_upload, upload_id)
        return {**upload_record(rec, self.limits.upload_ttl_s), "deduplicated": False,
                "received_bytes": n - offset, "resumed_from_bytes": offset}

    def _probe(self, path: Path, meta: UploadMeta) -> dict[str, Any]:
        lim = self.limits
        if meta.purpose == "VIDEO_DEPTH":
            out = probe_depth_file(str(path), lim.max_video_frames, lim.max_video_width_px, lim.max_video_height_px)
            if "error" in out:
                raise InvalidInput(f"video depth upload refused: {out['error']}", reason="INVALID_CONTENT")
            return out
        try:
            return self.probe_pool.probe_video(str(path), lim.max_video_frames, lim.max_video_width_px,
                                               lim.max_video_height_px)
        except InvalidInput as exc:
            raise InvalidInput(f"video upload refused: {exc.message}", reason="INVALID_CONTENT") from None


def _hash_prefix(path: Path, n: int) -> Any:
    """sha256 state after the first ``n`` bytes of ``path`` (a resumed upload's kept prefix)."""
    h = hashlib.sha256()
    left = n
    with open(path, "rb") as f:
        while left > 0:
            block = f.read(min(1 << 20, left))
            if not block:
                raise DataLoss(f"the kept part of this upload is shorter than {n} bytes; start over",
                               reason="UPLOAD_OFFSET_MISMATCH")
            h.update(block)
            left -= len(block)
    return h


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
