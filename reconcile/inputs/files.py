"""Lead files on disk: which files are lead files, and reading them without trusting them.

A lead file arrives in a pull request, so its name, its size and even what it is are hostile: a
symlink may point at a secret outside the repository, a FIFO or /dev/zero never ends, a huge file
exhausts memory. Only regular files inside the lead directory are read, and only up to a size cap
checked before reading. No error message shows anything read from a refused file.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Callable, Sequence

from reconcile.errors import InputError, Location, UsageError

LEAD_FILE_SUFFIXES = (".yaml", ".yml")
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
_SIZE = re.compile(r"\s*(\d+)\s*([kmg]?)i?b?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text: str) -> int:
    """`256M`, `1g`, `500kB` or a number of bytes, as bytes (units are powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if match is None or len(match.group(1)) > 15 or int(match.group(1)) == 0:
        raise UsageError(f"--max-file-size: expected a size such as 256M, 1G or 65536, not {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def describe_size(size: int) -> str:
    for unit, factor in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("kB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes" if size != 1 else "1 byte"


def discover(leads_dir: Path) -> list[Path]:
    """Every *.yaml/*.yml under `leads_dir`, recursively, in a deterministic order.

    Symlinked directories are not followed; a symlinked file is refused unless it resolves to a
    file inside `leads_dir`.
    """
    if not leads_dir.exists():
        raise InputError(f"lead directory not found: {leads_dir}", Location(str(leads_dir)))
    if not leads_dir.is_dir():
        return [leads_dir]
    root = leads_dir.resolve()
    found = []
    for directory, dirs, files in os.walk(leads_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.endswith(LEAD_FILE_SUFFIXES) and not name.startswith("."):
                path = Path(directory) / name
                if path.is_symlink() and not _inside(path, root):
                    raise InputError(f"is a symlink to a file outside {leads_dir.as_posix()}; lead files "
                                     "must live in the lead directory", Location(path.as_posix()))
                found.append(path)
    return sorted(found, key=lambda p: p.as_posix())


_LOOKS_LIKE_LEADS = re.compile(r"\.ya?ml|\.json$", re.IGNORECASE)


def skipped_files(leads_dir: Path) -> list[str]:
    """Files under `leads_dir` that look meant as lead files but are not read: `c.YAML`,
    `d.yaml.txt`, `e.json` (only names ending in lower-case .yaml or .yml are lead files)."""
    if not leads_dir.is_dir():
        return []
    skipped = []
    for directory, dirs, files in os.walk(leads_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        skipped += [(Path(directory) / name).as_posix() for name in files
                    if not name.startswith(".") and not name.endswith(LEAD_FILE_SUFFIXES)
                    and _LOOKS_LIKE_LEADS.search(name)]
    return sorted(skipped)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop, or a target we may not look at
        return False


def read_lead_file(file: Path, name: str, max_bytes: int,
                   hash_only_if: Callable[[int], bool] | None = None) -> tuple[bytes | None, bytes]:
    """(bytes, sha256 digest) of a lead file; (None, digest) if `hash_only_if(size)`: hashed as a stream
    (a file found in the cache need not be held in memory).

    Refuses anything but a regular file, and files over `max_bytes`, before reading a byte.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", Location(name)) from exc
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"is {_kind(info.st_mode)}, not a regular file; refusing to read it",
                                 Location(name))
            if info.st_size > max_bytes:
                raise InputError(_too_big(info.st_size, max_bytes), Location(name))
            if hash_only_if is not None and hash_only_if(info.st_size):
                return None, hashlib.file_digest(handle, "sha256").digest()
            raw = handle.read(max_bytes + 1)  # a file still growing stops at the cap as well
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror}", Location(name)) from exc
    if len(raw) > max_bytes:
        raise InputError(_too_big(None, max_bytes), Location(name))
    return raw, hashlib.sha256(raw).digest()


def _too_big(size: int | None, max_bytes: int) -> str:
    shown = f" ({describe_size(size)})" if size is not None else ""
    return (f"file is larger than the {describe_size(max_bytes)} limit for a lead file{shown}; "
            "split it, or raise --max-file-size")


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(f"file is not UTF-8 text (invalid byte 0x{raw[exc.start]:02x})",
                         Location(path, line)) from exc


def files_hash_of(names: Sequence[str], digests: Sequence[bytes]) -> str:
    digest = hashlib.sha256()
    for name, file_digest in zip(names, digests):
        digest.update(name.encode("utf-8") + b"\0" + file_digest)
    return "sha256:" + digest.hexdigest()
