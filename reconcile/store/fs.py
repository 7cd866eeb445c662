"""Durable file writes shared by everything that persists: the state, the journal, plan files, the
emulator's database. With `write_atomic`, readers see the old content or the new, never a mix, and a
crash at any point leaves one of the two on disk; `overwrite_in_place` is the exception, for files
whose new content is already durable elsewhere.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Iterable


def write_atomic(path: Path | str, data: bytes | Iterable[bytes], *, sync_directory: bool = True) -> int:
    """Replace `path` with `data` (bytes, or chunks of them written one by one): write a temporary file
    beside it, fsync it, rename it over `path`, then fsync the directory so the rename itself survives
    a power cut. A caller replacing many files in one directory passes `sync_directory=False` and
    fsyncs the directory once at the end. Returns the bytes written."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open applies the umask to a new file by itself; no process-wide umask juggling, which would
    # race with other threads creating files.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        existing_mode = _existing_mode(path)
        if existing_mode is not None:
            os.fchmod(fd, existing_mode)  # a 0644 state stays 0644 whatever the umask of this run
        written = 0
        with os.fdopen(fd, "wb") as handle:
            for chunk in [data] if isinstance(data, bytes) else data:
                written += handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync_directory:
        fsync_directory(directory)
    return written


def overwrite_in_place(path: Path | str, data: bytes) -> int:
    """Make `data` the content of `path` (created if missing) by writing over the file where it is, then
    fsync it. No new file replaces it, so the old one's blocks are not freed and reallocated, which on
    some file systems (ext4 with online discard) is slow. NOT atomic: a crash leaves a
    mix of old and new bytes, so use it only for a file whose new content is already durable
    elsewhere (the state's commit record). Returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        view, written = memoryview(data), 0
        while written < len(data):
            written += os.pwrite(fd, view[written:], written)
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(data)


def _existing_mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None


def fsync_directory(directory: Path | str) -> None:
    """Make a rename or a new file in `directory` durable. Best effort: some filesystems refuse."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
