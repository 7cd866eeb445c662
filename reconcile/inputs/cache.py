"""A local cache of parsed-and-validated inputs, so a plan re-parses only the files that changed.

An entry holds one lead file's valid leads as plain tuples (never raw YAML, never a file with errors),
or a parsed state file, under a key made of everything the result depends on:

    sha256(file bytes) + sha256(schema bytes) + reconcile version + cache format
    + the source of the modules that parse and validate + Python's, marshal's and PyYAML's versions

so any edit, schema change or upgrade (even of an editable install) is a miss. Files under
MIN_FILE_BYTES are not cached: they parse faster than an entry is written and read back.

Entries live in `.reconcile/cache/` beside the state file, git-ignored (a `.gitignore` inside says
so even in repositories whose own does not). They are written atomically (temp file, rename) and
carry a header naming their key and a checksum of their payload: a truncated, corrupt or foreign
entry is ignored and rebuilt, never trusted. (The checksum guards against accidents, not against
someone who can write to the cache directory: they could as well edit the lead files.) The cache
never stops a plan: an unreadable or unwritable directory only means no caching.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

CACHE_FORMAT = 2  # 2: payloads checked with blake2b, not sha256
_MAGIC = b"reconcile lead cache\n"
_HEADER = len(_MAGIC) + 32 + 32  # magic, entry key, checksum of the payload
_SUFFIX = ".entry"
# Files smaller than this are parsed faster than an entry is written and read back.
MIN_FILE_BYTES = 32 * 1024
MAX_ENTRIES = 512


def cache_dir_for(state_path: Path) -> Path:
    """Where plan keeps its cache: `.reconcile/cache/` beside the state file."""
    return Path(state_path).parent / ".reconcile" / "cache"


@lru_cache(maxsize=8)
def code_fingerprint(modules: tuple[ModuleType, ...]) -> bytes:
    """The version, formats and source that decide what a cached entry contains: the caller names
    the modules that make its entries (this one is always included), so the cache imports none."""
    import reconcile

    digest = hashlib.sha256()
    for part in (f"format {CACHE_FORMAT}", f"reconcile {reconcile.__version__}",
                 f"python {sys.version_info[0]}.{sys.version_info[1]} marshal {marshal.version}",
                 f"pyyaml {_pyyaml_version()}"):
        digest.update(part.encode() + b"\0")
    for module in (*modules, sys.modules[__name__]):
        try:
            digest.update(Path(module.__file__).read_bytes())
        except (OSError, TypeError):  # no source (frozen, zipped): the version has to do
            digest.update(b"?")
        digest.update(b"\0")
    return digest.digest()


def _pyyaml_version() -> str:
    yaml = sys.modules.get("yaml")
    if yaml is None:  # importing yaml only for its version would cost more than it saves
        try:
            from importlib.metadata import version
            return version("PyYAML")
        except Exception:  # noqa: BLE001 - metadata missing: the rest of the key still applies
            return "?"
    return getattr(yaml, "__version__", "?")


class InputCache:
    """Entries by the sha256 digest of the file they were made from, in one namespace (`schema`)."""

    def __init__(self, directory: Path, schema: bytes, fingerprint: bytes, min_file_bytes: int | None = None,
                 max_entries: int | None = None):
        self.directory = Path(directory)
        self.min_file_bytes = MIN_FILE_BYTES if min_file_bytes is None else min_file_bytes
        self.max_entries = MAX_ENTRIES if max_entries is None else max_entries
        salt = hashlib.sha256(b"reconcile lead cache\0")
        salt.update(fingerprint)
        salt.update(hashlib.sha256(schema).digest())
        self._salt = salt.digest()
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def wants(self, size: int) -> bool:
        return size >= self.min_file_bytes

    def key(self, file_digest: bytes) -> bytes:
        return hashlib.sha256(self._salt + file_digest).digest()

    def _path(self, key: bytes) -> Path:
        return self.directory / (key.hex() + _SUFFIX)

    def get(self, file_digest: bytes) -> Sequence[Any] | None:
        """The records stored for this file content, or None (missing, stale, corrupt or foreign)."""
        key = self.key(file_digest)
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        records = _decode(data, key)
        if records is None:
            self.misses += 1
            return None
        self.hits += 1
        try:  # least recently used entries are the ones pruned
            os.utime(path)
        except OSError:
            pass
        return records

    def put(self, file_digest: bytes, records: Sequence[Any]) -> None:
        """Store the records of a file that has no errors. Failure to write is ignored."""
        key = self.key(file_digest)
        try:
            payload = marshal.dumps(tuple(records))
        except ValueError:  # not plain data: never cache what cannot be read back exactly
            return
        header = _MAGIC + key + _checksum(payload)
        try:
            self._ensure_directory()
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(header)  # not joined to the payload: a state's entry is a quarter GB
                    handle.write(payload)
                os.replace(tmp, self._path(key))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            self.writes += 1
        except OSError:
            return

    def prune(self) -> None:
        """Keep the `max_entries` most recently used entries; remove leftovers of interrupted writes."""
        try:
            entries = []
            now = time.time()
            with os.scandir(self.directory) as scan:
                for entry in scan:
                    if not entry.name.endswith(_SUFFIX):
                        continue
                    mtime = entry.stat().st_mtime
                    if entry.name.startswith(".tmp-"):
                        if now - mtime > 3600:
                            _unlink(entry.path)
                        continue
                    entries.append((mtime, entry.path))
            if len(entries) > self.max_entries:
                entries.sort(reverse=True)
                for _mtime, path in entries[self.max_entries:]:
                    _unlink(path)
        except OSError:
            return

    def _ensure_directory(self) -> None:
        if self.directory.is_dir():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # Ignored by git and by backup tools, whatever the repository's own .gitignore says.
        (self.directory / ".gitignore").write_text("# created by reconcile: a local cache\n*\n")
        (self.directory / "CACHEDIR.TAG").write_text(
            "Signature: 8a477f597d28d172789f06886806bc55\n# a cache of parsed lead files, made by reconcile\n")


def load_state(path: Path, cache_dir: Path | None):
    """reconcile.store.state.load_state through the cache: a big state unchanged since the last run is
    not parsed again. Only a state that parsed without error is stored; every error, and every
    missing or unreadable file, is reconcile.store.state's own.
    """
    from reconcile import errors
    from reconcile.core import model
    from reconcile.store import state as state_module, statecodec, statefiles

    path = Path(path)
    if cache_dir is None:
        return state_module.load_state(path)
    cache = InputCache(cache_dir, _STATE_ENTRY,
                       fingerprint=code_fingerprint((state_module, statecodec, statefiles, model, errors)))
    try:
        found = state_module.fingerprint(path)  # every file of the state: top, shards, unfinished write
    except Exception:  # unreadable: reconcile.store.state says what to do
        found = None
    if found is None or not cache.wants(found[1]):
        return state_module.load_state(path)
    from reconcile.core.model import State, StateLead
    from reconcile.core.gcpause import gc_paused

    with gc_paused():
        cached = cache.get(found[0])
        if cached is not None:
            try:
                head, leads = cached
                return State(**head, leads={key: StateLead(*values) for key, *values in leads})
            except (TypeError, ValueError):  # not what this version writes: parse the file
                pass
        parsed = state_module.load_state(path)
        entry = _state_entry(parsed)
        if state_module.fingerprint(path) == found:  # unchanged while it was parsed
            cache.put(found[0], entry)
        return parsed


def _state_entry(parsed) -> tuple:
    """A State as plain data: ({field: value}, ((key, *StateLead fields), ...)), each distinct string
    stored once (a smaller entry, faster to load). The state's own records are replaced by equal ones
    made of those strings as it goes: a million records repeat a few thousand attribute names and
    values, and a parsed state holding each once is half the size."""
    from dataclasses import fields
    from operator import attrgetter

    from reconcile.core.model import State, StateLead

    head = {f.name: getattr(parsed, f.name) for f in fields(State) if f.name != "leads"}
    names = [f.name for f in fields(StateLead)]
    values_of = attrgetter(*names)
    shared: dict[str, str] = {}
    share = shared.setdefault
    leads = parsed.leads
    in_place = type(leads) is dict
    rows = []
    for key, lead in leads.items():
        values = list(values_of(lead))
        for index, value in enumerate(values):
            if type(value) is str:
                values[index] = share(value, value)
            elif type(value) is dict:
                values[index] = {share(k, k) if type(k) is str else k: share(v, v) if type(v) is str else v
                                 for k, v in value.items()}
        rows.append((key, *values))
        if in_place:  # the same key: the dict is not resized while it is walked
            leads[key] = StateLead(*values)
    return head, tuple(rows)


_STATE_ENTRY = b"a state file, not lead file"


def _checksum(payload: bytes | memoryview) -> bytes:
    """blake2b, at twice sha256's speed on machines without SHA instructions: a plan's cached text of
    100k creates is 40 MB, checked before the plan is shown (0.08 s against 0.19 s)."""
    return hashlib.blake2b(payload, digest_size=32).digest()


def _decode(data: bytes, key: bytes) -> Sequence[Any] | None:
    if len(data) < _HEADER or not data.startswith(_MAGIC):
        return None
    if data[len(_MAGIC):len(_MAGIC) + 32] != key:
        return None
    payload = memoryview(data)[_HEADER:]
    if _checksum(payload) != data[len(_MAGIC) + 32:_HEADER]:
        return None
    try:
        records = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    return records if type(records) is tuple else None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
