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
import sys
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


def output_key(leads_dir: Path, state_path: Path, max_file_bytes: int, options: str) -> OutputKey | None:
    """The key of the plan of these inputs, or None when one cannot be made cheaply and safely (a lead
    file that cannot be read, is too big, is not a regular file...): the full path then says why."""
    from reconcile.inputs import validate
    from reconcile.store import state as state_module

    try:
        files = discover(leads_dir)
        names = [file.as_posix() for file in files]
        digests = [read_lead_file(file, name, max_file_bytes, hash_only_if=_always)[1]
                   for file, name in zip(files, names)]
        sizes = sum(file.stat().st_size for file in files)
        state_found = state_module.fingerprint(state_path)
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


def _plan_fingerprint() -> bytes:
    import importlib

    from reconcile.store import state as state_module, statecodec, statefiles

    modules = tuple(importlib.import_module(name) for name in _PLAN_MODULES)
    return cache_module.code_fingerprint((*modules, state_module, statecodec, statefiles,
                                          sys.modules[__name__]))


class PlanOutputCache:
    """Rendered plans in the cache directory, next to the lead-file and state entries."""

    def __init__(self, directory: Path):
        self._cache = cache_module.InputCache(directory, _NAMESPACE, fingerprint=b"")

    def get(self, key: OutputKey | None) -> tuple[bool, str] | None:
        """(apply has something to do, the rendered plan), or None."""
        if key is None or not self._cache.wants(key.size):
            return None
        entry = self._cache.get(key.digest)
        if entry is None or len(entry) != 2:
            return None
        has_changes, rendered = entry
        if type(has_changes) is not bool or type(rendered) is not str:
            return None
        return has_changes, rendered

    def put(self, key: OutputKey | None, files_hash: str, state_path: Path, has_changes: bool,
            rendered: str) -> None:
        """Store a plan made from `files_hash` and the state at `state_path`, if they are still what
        `key` was made from."""
        if key is None or not self._cache.wants(key.size) or files_hash != key.files_hash:
            return
        from reconcile.store import state as state_module

        try:
            if state_module.fingerprint(state_path) != key.state_found:
                return
        except ReconcileError:
            return
        self._cache.put(key.digest, (has_changes, rendered))
        self._cache.prune()
