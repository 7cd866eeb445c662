"""The state lock: one run at a time may change a state (and Marketo through it).

The operating system is the source of truth: a run holds an exclusive ``flock`` on the lock file beside
the state (``<state>.lock``) for as long as it runs, and the kernel drops that lock the moment the
process ends, however it ends (kill -9, a crash, a power cut with the file system remounted). The
file's JSON only *describes* the holder, for the message another run shows::

    {"id": "<uuid4>", "holder": "alice@laptop", "host": "laptop", "pid": 4242,
     "created": "2026-01-02T03:04:05.123456+00:00", "operation": "apply"}

Acquiring: open (or create) the file, take the flock without waiting, check that the path still names
the file locked (a releasing run unlinks it first), then write the description. A file whose flock
nobody holds was left by a run that is gone, whatever its pid now belongs to: it is taken over, and
the takeover is reported as a warning (never printed: only the CLI prints). A description naming
another host is never taken over — a file system shared between hosts may not carry locks across —
and needs ``force_unlock``, which removes a lock only when given its id.

No printing, no exiting: errors are :class:`reconcile.errors.LockedError` (exit 7) and
:class:`reconcile.errors.UsageError` (exit 64).
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from reconcile.errors import InputError, Location, LockedError, StateError, UsageError

__all__ = ["LockInfo", "StateLock", "acquire", "force_unlock", "lock_path", "read_lock"]

_READ_RETRIES = 20  # a lock file that exists but is still being written: re-read for up to ~0.5 s
_ATTEMPTS = 20  # the lock file replaced under us (released and re-created) this many times: give up


def lock_path(state_path: Path | str) -> Path:
    state_path = Path(state_path)
    return state_path.with_name(state_path.name + ".lock")


@dataclass(frozen=True)
class LockInfo:
    id: str
    holder: str
    host: str
    pid: int
    created: str
    operation: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "holder": self.holder, "host": self.host, "pid": self.pid,
                "created": self.created, "operation": self.operation}

    def describe(self) -> str:
        # The file is anyone's to write: nothing in it may become a line break or a runner command.
        return (f"{_visible(self.holder)} (pid {self.pid}, {_visible(self.operation)}, since "
                f"{_visible(self.created)}), lock ID {_visible(self.id)}")


def _visible(text: str) -> str:
    """`text` with control characters shown as escapes (`\\n`), cut to a sane length."""
    shown = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return shown if len(shown) <= 200 else shown[:200] + "…"


def _hostname() -> str:
    return socket.gethostname() or "localhost"


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (e.g. a container with an unknown uid)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _parse(raw: bytes) -> LockInfo | None:
    try:
        data = json.loads(raw.decode("utf-8"))
        info = LockInfo(id=str(data["id"]), holder=str(data["holder"]), host=str(data["host"]),
                        pid=int(data["pid"]), created=str(data["created"]),
                        operation=str(data.get("operation", "")))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
        return None
    return info


def read_lock(state_path: Path | str, *, retries: int = _READ_RETRIES) -> LockInfo | None:
    """The description in the lock file of `state_path`, or None if there is no lock file.

    A lock file that cannot be parsed is re-read a few times (its creator may be writing it); if it
    stays unreadable a LockedError says so and how to remove it.
    """
    path = lock_path(state_path)
    for attempt in range(max(1, retries)):
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        info = _parse(raw)
        if info is not None:
            return info
        if attempt + 1 < retries:
            time.sleep(0.025)
    raise LockedError(f"state is locked by an unreadable lock file {path}; if no other run is active, "
                      f"delete that file")


class StateLock:
    """A held lock: the open, flock'd lock file. Use as a context manager; `release()` is idempotent."""

    def __init__(self, state_path: Path, info: LockInfo, fd: int, takeover_warning: str | None = None):
        self.state_path = Path(state_path)
        self.path = lock_path(state_path)
        self.info = info
        self.takeover_warning = takeover_warning
        self._fd: int | None = fd

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlink the lock file if it is still ours (it may have been force-unlocked), then drop the flock:
        in that order, so a run waiting on this file finds it gone and opens a fresh one."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _names_file(self.path, fd):
                current = _parse(self.path.read_bytes())
                if current is not None and current.id == self.info.id:
                    self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> "StateLock":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"StateLock({self.path}, id={self.info.id})"


def _names_file(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd` (not unlinked or replaced since it was opened)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _new_info(operation: str) -> LockInfo:
    host = _hostname()
    return LockInfo(id=str(uuid.uuid4()), holder=f"{_username()}@{host}", host=host, pid=os.getpid(),
                    created=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                    operation=operation)


def _locked_error(state_path: Path, info: LockInfo) -> LockedError:
    return LockedError(f"state {state_path} is locked by {info.describe()}; wait for that run to finish, "
                       f"or if it is certainly gone run: reconcile force-unlock {info.id}")


def _try_flock(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise StateError(f"cannot lock the state: {exc.strerror} (the file system of {path} must support "
                         "file locks)") from exc
    return True


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _lock_opened_file(fd: int, state_path: Path, operation: str) -> tuple[LockInfo, bytes] | None:
    """Flock the open lock file and describe ourselves in it: (our description, what it held before).
    None: try again with a fresh open. LockedError: another run holds it."""
    path = lock_path(state_path)
    if not _try_flock(fd, path):
        existing = read_lock(state_path)
        if existing is None:
            return None  # released between our open and our read
        raise _locked_error(state_path, existing)
    if not _names_file(path, fd):
        return None  # we locked a file its holder unlinked on release: open the new one
    left = _read_fd(fd)
    stale = _parse(left)
    if stale is not None and stale.host != _hostname():
        raise _locked_error(state_path, stale)
    info = _new_info(operation)
    data = (json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    return info, left


def acquire(state_path: Path | str, operation: str = "apply", *,
            on_warning: Callable[[str], None] | None = None) -> StateLock:
    """Lock `state_path` for `operation` or raise LockedError naming the holder and the lock ID.

    A lock file nobody holds a flock on, left by a run on this host, is taken over; the warning is
    stored on the returned lock (`takeover_warning`) and passed to `on_warning` when given.
    """
    state_path = Path(state_path)
    path = lock_path(state_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        fd = _open_lock_file(path)
        try:
            taken = _lock_opened_file(fd, state_path, operation)
        except BaseException:
            os.close(fd)
            raise
        if taken is None:
            os.close(fd)
            continue
        info, left = taken
        held = StateLock(state_path, info, fd)
        if left.strip():
            stale = _parse(left)
            held.takeover_warning = (
                f"took over a stale lock on {state_path} left by "
                + (stale.describe() if stale is not None else "a run whose lock file is unreadable")
                + ": that run is no longer running")
            if on_warning is not None:
                on_warning(held.takeover_warning)
        return held
    raise LockedError(f"could not lock state {state_path}: the lock file {path} keeps changing")


def _open_lock_file(path: Path) -> int:
    """Open (or create) the lock file itself: a symbolic link in its place is refused, never followed."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise InputError("a symbolic link; reconcile never follows one for its own files",
                             Location(str(path))) from None
        raise exc


def force_unlock(state_path: Path | str, lock_id: str) -> LockInfo:
    """Remove the lock on `state_path` if its id is `lock_id`; returns what was removed.

    UsageError when the state is not locked or the id does not match (nothing is removed then).
    """
    state_path = Path(state_path)
    current = read_lock(state_path)
    if current is None:
        raise UsageError(f"state {state_path} is not locked")
    if current.id != lock_id.strip():
        raise UsageError(f"lock ID {lock_id!r} does not match the lock on {state_path} "
                         f"(held by {current.describe()}); nothing was unlocked")
    try:
        lock_path(state_path).unlink()
    except FileNotFoundError:
        pass
    return current
