"""Work reconcile can do again, kept outside the repository: parsed lead files, the parsed state, and
rendered plans.

Where: the user's cache directory (platformdirs' user_cache_dir("reconcile"), or $RECONCILE_CACHE_DIR),
one folder per workspace, named by a hash of the resolved directory that holds the state. Nothing a
repository holds, and so nothing a pull request can commit, is ever read as a cache.

What decides an entry: one key function, `key`, over one `Inputs` (the bytes it was made from, the
schema, the options, the API context) and a fingerprint of every file of the installed
`reconcile` package and of the Python and library versions. Any change to any of them is a miss. A
cache can only save work: whatever it returns is what the same run would compute without it
(tests/test_cache_differential.py).

Entries are written atomically and carry their key and a checksum of their payload: a truncated,
corrupt or foreign entry is ignored and rebuilt. An unreadable or unwritable directory means no
caching, never a failed run.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

ENV_CACHE_DIR = "RECONCILE_CACHE_DIR"
MIN_INPUT_BYTES = 32 * 1024  # smaller inputs parse faster than an entry is written and read back
MAX_ENTRIES = 512
_MAGIC = b"reconcile cache entry\n"
_HEADER = len(_MAGIC) + 32 + 32  # magic, key, checksum of the payload
_SUFFIX = ".entry"


def workspace_dir(state_path: Path | str, environ: Mapping[str, str]) -> Path:
    """This workspace's folder in the user's cache directory: caches, Describe answers, the emulator's
    database. The workspace is the resolved directory of the state file."""
    root = (environ.get(ENV_CACHE_DIR) or "").strip()
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("reconcile", appauthor=False)
    where = str(Path(state_path).resolve().parent).encode("utf-8", "surrogateescape")
    return Path(root).expanduser().resolve() / "workspaces" / hashlib.sha256(where).hexdigest()[:32]


@lru_cache(maxsize=1)
def package_fingerprint() -> bytes:
    """The sha256 of every file of the installed reconcile package (code, schemas), once per process."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode("utf-8", "surrogateescape") + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.digest()


@lru_cache(maxsize=1)
def runtime_versions() -> str:
    """Python's version and marshal's format, and every installed library's name and version (the
    names of the `.dist-info` folders on the import path, one directory listing each)."""
    parts = [sys.version, f"marshal {marshal.version}", sys.executable]
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        installed = sorted(name for name in names if name.endswith((".dist-info", ".egg-info")))
        parts.append(entry + ":" + ",".join(installed))
    return "\n".join(parts)


@dataclass(frozen=True)
class Inputs:
    """Everything a cached result is a function of, besides the code and the runtime."""

    content: bytes  # a digest of the bytes it was made from (lead file, state files, or both)
    schema: bytes = b""  # the lead-file schema's bytes (or their digest)
    options: Mapping[str, str] = field(default_factory=dict)  # the command's options that shape it
    api: str = ""  # the API, the instance and the digest of its Describe


def key(inputs: Inputs) -> bytes:
    """The one cache key: a result made from other inputs, other code or another runtime never matches."""
    digest = hashlib.sha256(b"reconcile cache key\0")
    digest.update(package_fingerprint())
    digest.update(hashlib.sha256(runtime_versions().encode()).digest())
    digest.update(hashlib.sha256(inputs.content).digest())
    digest.update(hashlib.sha256(inputs.schema).digest())
    options = sorted((str(name), str(value)) for name, value in inputs.options.items())
    digest.update(hashlib.sha256(repr(options).encode("utf-8", "surrogatepass")).digest())
    digest.update(hashlib.sha256(inputs.api.encode("utf-8", "surrogatepass")).digest())
    return digest.digest()


class Cache:
    """Entries of one kind (a directory each; None: no caching), by the digest of what they were made
    from, under the schema, options and API context given."""

    def __init__(self, directory: Path | None, schema: bytes = b"", options: Mapping[str, str] | None = None,
                 api: str = "", max_entries: int = MAX_ENTRIES):
        self.directory = Path(directory) if directory is not None else None
        self._inputs = Inputs(b"", schema, dict(options or {}), api)
        self.max_entries = max_entries
        self.writes = 0

    @staticmethod
    def wants(size: int) -> bool:
        return size >= MIN_INPUT_BYTES

    def _path(self, content: bytes) -> tuple[bytes, Path]:
        entry_key = key(Inputs(content, self._inputs.schema, self._inputs.options, self._inputs.api))
        assert self.directory is not None
        return entry_key, self.directory / (entry_key.hex() + _SUFFIX)

    def get(self, content: bytes) -> Any | None:
        """What was stored for this content, or None (none, stale, corrupt or foreign)."""
        if self.directory is None:
            return None
        entry_key, path = self._path(content)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if data[:len(_MAGIC)] != _MAGIC or data[len(_MAGIC):len(_MAGIC) + 32] != entry_key:
            return None
        payload = memoryview(data)[_HEADER:]
        if _checksum(payload) != data[len(_MAGIC) + 32:_HEADER]:
            return None
        try:
            value = marshal.loads(payload)
        except (ValueError, EOFError, TypeError):
            return None
        try:
            os.utime(path)  # the least recently used entries are the ones pruned
        except OSError:
            pass
        return value

    def put(self, content: bytes, value: Any) -> None:
        """Store plain data (what marshal writes exactly). Failure to write is ignored."""
        if self.directory is None:
            return
        try:
            payload = marshal.dumps(value)
        except ValueError:
            return
        entry_key, path = self._path(content)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(_MAGIC + entry_key + _checksum(payload))
                    handle.write(payload)
                os.replace(tmp, path)
            except BaseException:
                _unlink(tmp)
                raise
            self.writes += 1
        except OSError:
            return
        self.prune()

    def prune(self) -> None:
        """Keep the `max_entries` most recently used entries."""
        try:
            with os.scandir(self.directory) as scan:
                entries = sorted(((entry.stat().st_mtime, entry.path) for entry in scan
                                  if entry.name.endswith(_SUFFIX)), reverse=True)
        except OSError:
            return
        for _mtime, path in entries[self.max_entries:]:
            _unlink(path)


def _checksum(payload: bytes | memoryview) -> bytes:
    return hashlib.blake2b(payload, digest_size=32).digest()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def load_state(path: Path, directory: Path | None):
    """reconcile.store.state.load_state, through the cache for a big state. Every error, and every
    missing or unreadable file, is reconcile.store.state's own. A state parsed here is returned as a
    hit would return it: made from its entry, each distinct name and value one string object."""
    from reconcile.core.gcpause import gc_paused
    from reconcile.store import state as state_module

    try:
        found = state_module.fingerprint(path) if directory is not None else None
    except Exception:  # noqa: BLE001 - unreadable: reconcile.store.state says what is wrong
        found = None
    if found is None or not Cache.wants(found[1]):
        return state_module.load_state(path)
    cache = Cache(directory / "states", max_entries=2)
    with gc_paused():
        entry = cache.get(found[0])
        if entry is not None:
            try:
                return _state_from(entry)
            except (TypeError, ValueError):  # not what this version writes: parse the file
                pass
        entry = _state_entry(state_module.load_state(path))
        if state_module.fingerprint(path) == found:  # unchanged while it was parsed
            cache.put(found[0], entry)
        return _state_from(entry)


def _state_entry(parsed) -> tuple:
    """A State as plain data, ({field: value}, ((key, *StateLead fields), ...)), each distinct string
    held once: a million records repeat a few thousand attribute names and values."""
    from dataclasses import fields as fields_of

    from reconcile.core.model import State, StateLead

    head = {f.name: getattr(parsed, f.name) for f in fields_of(State) if f.name != "leads"}
    names = [f.name for f in fields_of(StateLead)]
    share = {}.setdefault
    rows = []
    for key, lead in parsed.leads.items():
        values = [getattr(lead, name) for name in names]
        values = [share(v, v) if type(v) is str else
                  {share(k, k): share(x, x) if type(x) is str else x for k, x in v.items()} if type(v) is dict else v
                  for v in values]
        rows.append((key, *values))
    return head, tuple(rows)


def _state_from(entry: tuple):
    from reconcile.core.model import State, StateLead

    head, rows = entry
    return State(**head, leads={row[0]: StateLead(*row[1:]) for row in rows})


def _noted(sizes: list[int]):
    """A `hash_only_if` for read_lead_file that hashes as a stream and notes the file's size."""
    return lambda size: sizes.append(size) is None


class PlanCache:
    """Rendered plans, by the lead files' names and bytes, every file of the state, the schema, the
    options and the API context. Only a plan that succeeded is stored, and only when neither the lead
    files nor the state changed while it was made."""

    MAX_PLANS = 8  # a rendered plan can be tens of megabytes: only the latest few are kept

    def __init__(self, directory: Path, content: bytes, files_hash: str, state_path: Path,
                 state_found: tuple[bytes, int] | None, schema: bytes, options: Mapping[str, str], api: str):
        self._cache = Cache(directory / "plans", schema, options, api, max_entries=self.MAX_PLANS)
        self._content, self._files_hash = content, files_hash
        self._state_path, self._state_found = state_path, state_found

    @classmethod
    def open(cls, directory: Path, leads_dir: Path, state_path: Path, max_file_bytes: int, schema: bytes,
             options: Mapping[str, str], api: str) -> "PlanCache | None":
        """The plan cache for these inputs, or None: too small to be worth it, or a lead file or the
        state cannot be read cheaply (the full path then says why)."""
        from reconcile.errors import ReconcileError
        from reconcile.inputs.files import discover, files_hash_of, read_lead_file
        from reconcile.store import state as state_module

        try:
            names, digests, sizes = [], [], []
            for file in discover(leads_dir):
                names.append(file.as_posix())
                digests.append(read_lead_file(file, names[-1], max_file_bytes, hash_only_if=_noted(sizes))[1])
            size = sum(sizes)
            state_found = state_module.fingerprint(state_path)
        except (ReconcileError, OSError):
            return None
        if not Cache.wants(size + (state_found[1] if state_found else 0)):
            return None
        files_hash = files_hash_of(names, digests)
        content = files_hash.encode() + b"\0" + (state_found[0] if state_found else b"no state")
        return cls(directory, content, files_hash, state_path, state_found, schema, options, api)

    def get(self) -> tuple[bool, str] | None:
        """(apply has something to do, the rendered plan), or None."""
        entry = self._cache.get(self._content)
        if type(entry) is not tuple or len(entry) != 2 or type(entry[0]) is not bool or type(entry[1]) is not str:
            return None
        return entry

    def put(self, files_hash: str, has_changes: bool, rendered: str) -> None:
        """Store a plan made from the lead files of `files_hash`, if they and the state are still what
        this cache was opened for."""
        from reconcile.store import state as state_module

        try:
            unchanged = files_hash == self._files_hash and \
                state_module.fingerprint(self._state_path) == self._state_found
        except Exception:  # noqa: BLE001 - unreadable now: not stored
            unchanged = False
        if unchanged:
            self._cache.put(self._content, (has_changes, rendered))
