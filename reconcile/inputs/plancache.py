"""The rendered plan, cached by everything it is a function of, so a plan with nothing changed only
hashes its inputs.

A plan is a pure function of the lead files (names and bytes), the state (every file it is made of),
the schema, the code that reads, checks, plans and renders, and the output options. `OutputKey` is
the sha256 of all of them; the cache (reconcile.inputs.cache, its own namespace) maps it to the
rendered text and whether apply has anything to do. Hashing 100k leads' files and their state takes
a tenth of a second; building and planning them again takes seconds.

Only a plan that succeeded is stored (an error is reported again on every run), and only if the
lead files and the state hashed after planning are the ones hashed before: a file edited while it
was being planned never stores a plan under a key that does not describe it. A plan saved with
`--out` and a plan preceded by an unfinished apply's journal never take this path (the caller's
rule): both need the Plan itself.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from reconcile.errors import ReconcileError
from reconcile.inputs import cache as cache_module
from reconcile.inputs.files import discover, read_lead_file

_NAMESPACE = b"a rendered plan, not a lead file"
# The modules a rendered plan comes from, besides those the lead-file and state entries name.
_PLAN_MODULES = ("reconcile.core.planner", "reconcile.core.render", "reconcile.core.safetext",
                 "reconcile.core.declared_once", "reconcile.core.records")


@dataclass(frozen=True)
class OutputKey:
    digest: bytes
    files_hash: str  # what load_desired must report for the plan to be stored under this key
    state_found: tuple[bytes, int] | None
    size: int  # bytes of input: small plans are not worth an entry


def output_key(leads_dir: Path, state_path: Path, max_file_bytes: int, options: str,
               digests_of: "FileDigests | None" = None) -> OutputKey | None:
    """The key of the plan of these inputs, or None when one cannot be made cheaply and safely (a lead
    file that cannot be read, is too big, is not a regular file...): the full path then says why."""
    from reconcile.inputs import validate

    known = digests_of if digests_of is not None else FileDigests(None)
    try:
        files = discover(leads_dir)
        names = [file.as_posix() for file in files]
        digests, sizes = [], 0
        for file, name in zip(files, names):
            file_digest, size = known.lead_file(file, name, max_file_bytes)
            digests.append(file_digest)
            sizes += size
        state_found = known.state(state_path)
    except (ReconcileError, OSError):
        return None
    files_hash = validate._files_hash(names, digests)
    digest = hashlib.sha256(_NAMESPACE)
    digest.update(validate.lead_cache_fingerprint())
    digest.update(_plan_fingerprint())
    digest.update(hashlib.sha256(validate.schema_bytes()).digest())
    for part in (files_hash, f"max {max_file_bytes}", options):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(b"no state" if state_found is None else state_found[0])
    size = sizes + (state_found[1] if state_found is not None else 0)
    return OutputKey(digest.digest(), files_hash, state_found, size)


def _always(_size: int) -> bool:
    return True


class FileDigests:
    """sha256 of files remembered by their stat, as git's index does: a file whose size, mtime, ctime,
    inode and device are those recorded is not read again. Hashing 100k leads' files and state costs
    more than the rest of an unchanged plan; a million leads', a second.

    Any write changes a file's ctime, which no one but the clock can set. A file modified less than
    RACY_NS before it was hashed is not remembered (it could change again within the same timestamp
    tick and look the same). The record is a cache entry like the others: unreadable means empty.
    """

    RACY_NS = 2_000_000_000

    def __init__(self, directory: Path | None):
        self._cache = (cache_module.InputCache(directory, _STAT_NAMESPACE, fingerprint=b"", min_file_bytes=0)
                       if directory is not None else None)
        self._known: dict[str, tuple] = {}
        self._changed = False
        if self._cache is not None:
            found = self._cache.get(_STAT_KEY)
            if found is not None and len(found) == 1 and type(found[0]) is dict:
                self._known = found[0]

    def lead_file(self, file: Path, name: str, max_file_bytes: int) -> tuple[bytes, int]:
        """(sha256, size) of a lead file, refused as reconcile.inputs.files refuses it."""
        info = os.stat(file)
        if stat.S_ISREG(info.st_mode) and info.st_size <= max_file_bytes:
            found = self._lookup(file, info)
            if found is not None:
                return found, info.st_size
        file_digest = read_lead_file(file, name, max_file_bytes, hash_only_if=_always)[1]
        self._remember(file, info, file_digest)
        return file_digest, info.st_size

    def state(self, state_path: Path) -> tuple[bytes, int] | None:
        """(sha256, size) of every file the state is made of (as reconcile.store.state.fingerprint
        lists them), each part hashed only if its stat changed; None when there is no state."""
        from reconcile.store import state as state_module, statefiles

        try:
            parts = statefiles.part_paths(Path(state_path))
        except FileNotFoundError:
            return None
        infos = [os.stat(path) for _name, path in parts]
        if not all(stat.S_ISREG(info.st_mode) for info in infos):
            return state_module.fingerprint(state_path)  # says what is wrong
        part_digests = []
        for (_name, path), info in zip(parts, infos):
            part_digest = self._lookup(path, info)
            if part_digest is None:
                with open(path, "rb") as handle:
                    part_digest = hashlib.file_digest(handle, "sha256").digest()
                self._remember(path, info, part_digest)
            part_digests.append(part_digest)
        size = sum(info.st_size for info in infos)
        if len(parts) == 1:
            return part_digests[0], size
        digest = hashlib.sha256()
        for (name, _path), info, part_digest in zip(parts, infos, part_digests):
            digest.update(f"{name}\0{info.st_size}\0".encode() + part_digest)
        return digest.digest(), size

    def save(self) -> None:
        if self._cache is not None and self._changed:
            self._cache.put(_STAT_KEY, (self._known,))

    def _lookup(self, path: Path, info: os.stat_result) -> bytes | None:
        found = self._known.get(os.path.abspath(path))
        if found is not None and found[:5] == _identity(info):
            return found[5]
        return None

    def _remember(self, path: Path, info: os.stat_result, file_digest: bytes) -> None:
        if time.time_ns() - info.st_mtime_ns > self.RACY_NS and time.time_ns() - info.st_ctime_ns > self.RACY_NS:
            self._known[os.path.abspath(path)] = (*_identity(info), file_digest)
            self._changed = True


def _identity(info: os.stat_result) -> tuple[int, int, int, int, int]:
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev


_STAT_NAMESPACE = b"file digests by stat, not a lead file"
_STAT_KEY = hashlib.sha256(b"file digests").digest()


def _plan_fingerprint() -> bytes:
    import importlib

    from reconcile.store import state as state_module, statecodec, statefiles

    modules = tuple(importlib.import_module(name) for name in _PLAN_MODULES)
    return cache_module.code_fingerprint((*modules, state_module, statecodec, statefiles,
                                          sys.modules[__name__]))


class PlanOutputCache:
    """Rendered plans in `plans/` in the cache directory, and the stat record of the files hashed."""

    # A rendered plan can be tens of megabytes (100k creates): only the latest few are kept.
    MAX_PLANS = 8

    def __init__(self, directory: Path):
        self._cache = cache_module.InputCache(Path(directory) / "plans", _NAMESPACE, fingerprint=b"",
                                              max_entries=self.MAX_PLANS)
        self._digests = FileDigests(directory)

    def key(self, leads_dir: Path, state_path: Path, max_file_bytes: int, options: str) -> OutputKey | None:
        key = output_key(leads_dir, state_path, max_file_bytes, options, self._digests)
        if key is not None and self._cache.wants(key.size):
            self._digests.save()
        return key

    @property
    def digests(self) -> "FileDigests":
        return self._digests

    def wants(self, key: OutputKey | None) -> bool:
        """Whether plans of inputs this size are worth caching (rendered, or in pieces)."""
        return key is not None and self._cache.wants(key.size)

    def still(self, key: OutputKey, files_hash: str, state_path: Path) -> bool:
        """Whether a plan made from `files_hash` and the state at `state_path` was made from the inputs
        `key` describes (neither changed while it was planned)."""
        if files_hash != key.files_hash:
            return False
        try:
            return self._digests.state(state_path) == key.state_found
        except (ReconcileError, OSError):
            return False

    def get(self, key: OutputKey | None) -> tuple[bool, bytes] | None:
        """(apply has something to do, the rendered plan UTF-8 encoded), or None. Encoded as it is
        printed, so that printing it again need not decode it (see `Environment.out_encoded`)."""
        if key is None or not self._cache.wants(key.size):
            return None
        entry = self._cache.get(key.digest)
        if entry is None or len(entry) != 2:
            return None
        has_changes, rendered = entry
        if type(has_changes) is not bool or type(rendered) is not bytes:
            return None
        return has_changes, rendered

    def put(self, key: OutputKey | None, files_hash: str, state_path: Path, has_changes: bool,
            rendered: str) -> None:
        """Store a plan made from `files_hash` and the state at `state_path`, if they are still what
        `key` was made from."""
        if not self.wants(key) or not self.still(key, files_hash, state_path):
            return
        try:
            encoded = rendered.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a YAML escape: not worth a cache entry
            return
        self._cache.put(key.digest, (has_changes, encoded))
        self._cache.prune()
