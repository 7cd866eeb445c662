"""The state lock: one run at a time may change a state file (and Marketo through it).

A lock file beside the state (``<state>.lock``) holds JSON naming its holder::

    {"id": "<uuid4>", "holder": "alice@laptop", "host": "laptop", "pid": 4242,
     "created": "2026-01-02T03:04:05.123456+00:00", "operation": "apply"}

It is created with ``O_CREAT | O_EXCL`` so exactly one of two racing runs gets it. A lock left by a
process that is gone (same host, pid no longer running, or the pid now belongs to a process started
after the lock was taken) is taken over, and the takeover is reported as a warning (never printed:
only the CLI prints). ``force_unlock`` removes a lock only when given its id.

No printing, no exiting: errors are :class:`reconcile.errors.LockedError` (exit 7) and
:class:`reconcile.errors.UsageError` (exit 64).
"""

from __future__ import annotations

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

from reconcile.errors import LockedError, UsageError

__all__ = ["LockInfo", "StateLock", "acquire", "force_unlock", "lock_path", "read_lock"]

_READ_RETRIES = 20  # a lock file that exists but is still being written: re-read for up to ~0.5 s
_TAKEOVER_GUARD_STALE = 30.0  # seconds after which a leftover takeover guard is ignored


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
        return (f"{self.holder} (pid {self.pid}, {self.operation}, since {self.created}), "
                f"lock ID {self.id}")


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
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return info


def read_lock(state_path: Path | str, *, retries: int = _READ_RETRIES) -> LockInfo | None:
    """The lock on `state_path`, or None if it is not locked.

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


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def _process_start_time(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), where /proc tells; None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        start_ticks = int(fields[19])  # field 22 of /proc/<pid>/stat
        boot_time = None
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                boot_time = int(line.split()[1])
                break
        if boot_time is None:
            return None
        return boot_time + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def holder_is_dead(info: LockInfo) -> bool:
    """Whether the lock's holder is certainly gone: it ran on this host and its process is not running
    (or its pid was reused by a process started after the lock was taken)."""
    if info.host != _hostname():
        return False
    if info.pid == os.getpid():
        return False  # our own process: never "dead" (a second lock in one process is still a conflict)
    if not _process_alive(info.pid):
        return True
    started = _process_start_time(info.pid)
    try:
        created = datetime.fromisoformat(info.created).timestamp()
    except ValueError:
        return False
    # /proc start times have clock-tick (10 ms) resolution and btime whole seconds: allow a margin.
    return started is not None and started > created + 2.0


class StateLock:
    """A held lock. Use as a context manager; `release()` is idempotent."""

    def __init__(self, state_path: Path, info: LockInfo, takeover_warning: str | None = None):
        self.state_path = Path(state_path)
        self.path = lock_path(state_path)
        self.info = info
        self.takeover_warning = takeover_warning
        self._held = True

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        """Remove the lock file, only if it is still ours (it may have been force-unlocked)."""
        if not self._held:
            return
        self._held = False
        try:
            current = _parse(self.path.read_bytes())
        except FileNotFoundError:
            return
        if current is not None and current.id == self.info.id:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> "StateLock":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"StateLock({self.path}, id={self.info.id})"


def _create(path: Path, info: LockInfo) -> bool:
    """Create the lock file exclusively; False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        data = (json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            path.unlink()
        except OSError:
            pass
        raise
    os.close(fd)
    return True


def _new_info(operation: str) -> LockInfo:
    host = _hostname()
    return LockInfo(id=str(uuid.uuid4()), holder=f"{_username()}@{host}", host=host, pid=os.getpid(),
                    created=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                    operation=operation)


def _locked_error(state_path: Path, info: LockInfo) -> LockedError:
    return LockedError(f"state {state_path} is locked by {info.describe()}; wait for that run to finish, "
                       f"or if it is certainly gone run: reconcile force-unlock {info.id}")


def acquire(state_path: Path | str, operation: str = "apply", *,
            on_warning: Callable[[str], None] | None = None) -> StateLock:
    """Lock `state_path` for `operation` or raise LockedError naming the holder and the lock ID.

    A lock whose holder is dead (same host, process gone) is taken over; the warning is stored on
    the returned lock (`takeover_warning`) and passed to `on_warning` when given.
    """
    state_path = Path(state_path)
    path = lock_path(state_path)
    for _ in range(5):
        info = _new_info(operation)
        if _create(path, info):
            return StateLock(state_path, info)
        existing = read_lock(state_path)
        if existing is None:
            continue  # released between our attempt and the read: try again
        if not holder_is_dead(existing):
            raise _locked_error(state_path, existing)
        taken = _take_over(state_path, existing, info)
        if taken is None:
            continue  # someone else changed the lock meanwhile: look again
        warning = (f"took over a stale lock on {state_path} left by {existing.describe()}: "
                   f"that process is no longer running")
        if on_warning is not None:
            on_warning(warning)
        return StateLock(state_path, taken, takeover_warning=warning)
    current = read_lock(state_path)
    if current is not None:
        raise _locked_error(state_path, current)
    raise LockedError(f"could not lock state {state_path}: the lock file {path} keeps changing")


def _take_over(state_path: Path, stale: LockInfo, info: LockInfo) -> LockInfo | None:
    """Replace the stale lock with ours, guarded so that two runs cannot both take it over."""
    path = lock_path(state_path)
    guard = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            age = time.time() - guard.stat().st_mtime
        except FileNotFoundError:
            return None
        if age > _TAKEOVER_GUARD_STALE:
            try:
                guard.unlink()
            except FileNotFoundError:
                pass
        return None
    os.close(fd)
    try:
        current = read_lock(state_path)
        if current is None or current.id != stale.id:
            return None
        path.unlink()
        if not _create(path, info):
            return None
        return info
    finally:
        try:
            guard.unlink()
        except FileNotFoundError:
            pass


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
