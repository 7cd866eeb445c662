"""The state: what reconcile last applied to Marketo, committed to git beside the lead files.

`reconcile.state.json` is the state's top file. Format 2 (written by this version) keeps the leads in
`reconcile.state.d/`, one line each, so a million leads stay small in git and a change is a small diff
(layout and commit protocol: :mod:`reconcile.store.statefiles`). Format 1 (one JSON document) is still
read; the first write after an upgrade migrates it, and the write's report says so.

Reading is strict (a corrupt, ambiguous or unknown state is an error with a location, never silently
replaced); writing is atomic across all of the state's files.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path
from typing import Iterable, Mapping

from reconcile.core.model import State, StateLead
from reconcile.errors import Location, StateError, UsageError
from reconcile.store.statecodec import (check_lineage, check_serial, lead_to_json, parse_v1, serialize_v1,
                                       strict_json)
from reconcile.store.statefiles import (FORMAT_VERSION, PENDING_NAME, StateWriter, Top, WriteReport,
                                        READ_ATTEMPTS, fingerprint_parts, read_v2, write_marker,
                                        shard_dir_for)

__all__ = ["FORMAT_VERSION", "StateWriter", "WriteReport", "new_state", "load_state", "open_state",
           "write_state", "writer_for", "finish_interrupted_write", "lineage_and_serial", "pending_write", "with_leads", "with_instance", "rebind", "check_instance", "lead_to_json", "state_hash",
           "content_hash", "content_hash_of", "check_state_path", "fingerprint", "format_on_disk", "shard_dir_for", "serialize_v1"]


def new_state() -> State:
    return State(lineage=str(uuid.uuid4()), serial=0, leads={}, format_version=FORMAT_VERSION)


def load_state(path: Path | str) -> State:
    """The state at `path`; a missing file is an empty state with a fresh lineage."""
    return open_state(path)[0]


def parse_state(data: bytes, name: str) -> State:
    """A whole state held in one format-1 document (a v1 file, or `serialize_v1` of any state)."""
    where = Location(name)
    return parse_v1(strict_json(data, where), where)


def open_state(path: Path | str) -> tuple[State, StateWriter]:
    """The state at `path` and a writer that continues from it (see StateWriter). Read without the
    lock while a writer works (`plan` takes none), a state can look torn: it is read again."""
    path = Path(path)
    for attempt in range(1, READ_ATTEMPTS + 1):
        before = write_marker(path)
        try:
            opened = _open_state_once(path)
        except StateError:
            if attempt == READ_ATTEMPTS or write_marker(path) == before:
                raise
        else:
            if write_marker(path) == before:
                return opened
        time.sleep(0.05 * attempt)  # a writer at work: let it get on
    raise StateError("the state kept changing while it was read: another run is writing it; run again "
                     "when it is done", Location(str(path)))


def _open_state_once(path: Path) -> tuple[State, StateWriter]:
    where = Location(str(path))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return new_state(), StateWriter(path, None)
    except IsADirectoryError as exc:
        raise StateError("the state path is a directory, not a state file", where) from exc
    except NotADirectoryError as exc:
        raise StateError("the state path runs through a file, not a directory", where) from exc
    except OSError as exc:
        raise StateError(f"cannot read state file: {exc.strerror}", where) from exc
    data = strict_json(raw, where)
    if not isinstance(data, dict):
        raise StateError("state file must hold a JSON object", where)
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateError("state file has no integer format_version", where)
    if version > FORMAT_VERSION:
        raise StateError(f"state format_version {version} is newer than this reconcile understands "
                         f"({FORMAT_VERSION}); upgrade reconcile", where)
    if version == 1:
        state = parse_v1(data, where)
        return state, StateWriter(path, state)
    if version != FORMAT_VERSION:
        raise StateError(f"unknown state format_version {version}", where)
    state, top = read_v2(path, data)
    return state, StateWriter(path, state, top)


def writer_for(path: Path | str, on_disk: State) -> StateWriter:
    """A writer continuing from `on_disk`, the state as loaded from `path` and still there (the caller
    holds the lock). Reads only the top file, so an apply's checkpoints cost what changed."""
    path = Path(path)
    where = Location(str(path))
    try:
        data = strict_json(path.read_bytes(), where)
    except FileNotFoundError:
        return StateWriter(path, None)
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION or pending_write(path):
        return open_state(path)[1]  # format 1 (migrated by the first write), or an unfinished write
    return StateWriter(path, on_disk, Top.from_json(data, where))


def write_state(path: Path | str, state: State, changed: Iterable[str] | None = None) -> WriteReport:
    """Write `state` at `path` (format 2), touching only what differs from the state on disk.

    One-off writers use this; an apply that writes many versions keeps one StateWriter instead of
    reading the state back before every write.
    """
    writer = open_state(path)[1] if Path(path).exists() else StateWriter(path, None)
    return writer.write(state, changed)


def finish_interrupted_write(path: Path | str) -> bool:
    """Complete a state write that a crash interrupted (call under the state lock); True if there was one.
    Only a write that left its commit record behind can be unfinished: without one, nothing is read."""
    if not Path(path).exists() or not pending_write(path):
        return False
    return open_state(path)[1].finish()


def pending_write(path: Path | str) -> bool:
    """Whether a state write left its commit record: the state is then what the record says, not the
    top file alone (a crash came before the write finished, or a writer is at work)."""
    return (shard_dir_for(path) / PENDING_NAME).exists()


def lineage_and_serial(path: Path | str) -> tuple[str, int] | None:
    """Which state is at `path`, read from its top file alone (the leads are not read); None when there
    is no state file. StateError (exit 3) for a top file that is not a state's. Only when no write is
    pending (see pending_write): an unfinished write's state is its commit record's."""
    where = Location(str(path))
    try:
        data = strict_json(Path(path).read_bytes(), where)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read state file: {exc.strerror}", where) from exc
    if not isinstance(data, dict):
        raise StateError("state file must hold a JSON object", where)
    return check_lineage(data.get("lineage"), where), check_serial(data.get("serial"), where)


def with_leads(state: State, leads: Mapping[str, StateLead]) -> State:
    """The next state: same lineage and instance, serial + 1."""
    return State(lineage=state.lineage, serial=state.serial + 1, leads=dict(leads), format_version=FORMAT_VERSION,
                 instance=state.instance)


def with_instance(state: State, instance: str) -> State:
    """The state bound to `instance` (recorded by the next write); serial + 1 when it was bound elsewhere."""
    if state.instance == instance:
        return state
    return State(lineage=state.lineage, serial=state.serial + (state.instance is not None), leads=state.leads,
                 format_version=state.format_version, instance=instance)


def rebind(state: State, instance: str) -> State:
    """The next state, bound to `instance` (`reconcile state rebind`)."""
    following = with_leads(state, state.leads)
    return State(lineage=following.lineage, serial=following.serial, leads=following.leads,
                 format_version=following.format_version, instance=instance)


def check_instance(state: State, instance: str, path: Path | str) -> State:
    """`state`, bound to `instance` if it was bound to none; StateError (exit 3) naming both when the
    state belongs to another Marketo instance."""
    if state.instance is None:
        return with_instance(state, instance)
    if state.instance != instance:
        raise StateError(f"this state belongs to Marketo instance {state.instance!r}, but the endpoint is "
                         f"instance {instance!r}; if the leads really moved there, run `reconcile state rebind` "
                         "with the new endpoint", Location(str(path)))
    return state


def other_instance_warning(path: Path | str, endpoint: str, variable: str) -> str | None:
    """What `plan` says when the state at `path` is bound to another instance than `endpoint` (read from
    `variable`): apply would refuse it. None when they agree, or either is unknown."""
    from reconcile.store.instance import instance_of

    try:
        data = strict_json(Path(path).read_bytes(), Location(str(path)))
    except (OSError, StateError):
        return None
    bound = data.get("instance") if isinstance(data, dict) else None
    there = instance_of(endpoint)
    if not isinstance(bound, str) or not endpoint.strip() or bound == there:
        return None
    return (f"this state belongs to Marketo instance {bound!r}, but {variable} is instance {there!r}: apply "
            "there would refuse it (exit 3); if the leads really moved, run `reconcile state rebind`")


def format_on_disk(path: Path | str) -> int | None:
    """The format_version of the state file at `path` (None when there is none or it is unreadable)."""
    try:
        data = strict_json(Path(path).read_bytes(), Location(str(path)))
    except (OSError, StateError):
        return None
    version = data.get("format_version") if isinstance(data, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fingerprint(path: Path | str) -> tuple[bytes, int] | None:
    """(sha256, total size) of every file the state at `path` is made of — the top file, the shards and
    an unfinished write; None when there is no state file. Format 1: the file's own sha256."""
    path = Path(path)
    try:
        parts = fingerprint_parts(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read state file: {exc.strerror}", Location(str(path))) from exc
    if len(parts) == 1:
        return hashlib.sha256(parts[0][1]).digest(), len(parts[0][1])
    digest = hashlib.sha256()
    for name, data in parts:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.digest(), sum(len(data) for _, data in parts)


def state_hash(path: Path | str) -> str:
    """A hash of the whole state at `path`: of what it holds (lineage, serial, every lead), not of how
    its files are laid out, so it can be predicted for a state not yet written (`content_hash_of`).
    A missing state hashes as empty. A format 1 file written by reconcile hashes as its own bytes, so
    plans saved before an upgrade stay valid."""
    if not Path(path).exists():
        return content_hash(b"")
    return content_hash_of(load_state(path))


def content_hash_of(state: State) -> str:
    """What `state_hash` gives once `state` is on disk."""
    return content_hash(serialize_v1(state))


def check_state_path(path: Path | str) -> None:
    """UsageError (exit 64) when no state can live at `path`: it is a directory, or a parent is a file."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--state {path} is a directory; give the state file, e.g. {path / 'reconcile.state.json'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--state {path}: {parent} is a file, not a directory")
