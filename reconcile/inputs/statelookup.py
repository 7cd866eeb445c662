"""A state, indexed for planning a few lead files without loading all of it.

Planning one changed lead file needs, for each of its leads, only: whether the state holds a record
under the lead's identity and whether that record already says what the lead says; whether any record
could be the lead under another key (its leadId, foreign ID or email: then the full planner decides);
and, for the few leads that differ, the records themselves. A `StateLookup` holds the first two for
every record (the identity and a 16-byte digest of what the record says; the other keys as text) and
the records in buckets by a hash of their key, read only when asked for. It is written once per state
(`.reconcile/cache/state-lookup/`, named by the sha256 of every file of the state, as
reconcile.inputs.plancache computes it) and never changes; a truncated or foreign file is ignored.

Each part carries its own sha256: the head is checked when the file is opened, a bucket when it is
read. The file's name is the state's digest and its header repeats it with the code fingerprint, so
a lookup of another state or another version of reconcile is never used.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Iterable, Mapping

from reconcile.core.model import Lead, State, StateLead

_MAGIC = b"reconcile state lookup 2\n"
_SIZES = struct.Struct("<QQ")  # bytes of the sections before the head, bytes of the head
RECORDS_PER_BUCKET = 512
KEEP_LOOKUPS = 2  # the state before the last apply and after it


def digest_of(email: str | None, foreign_id: str | None, foreign_type: str | None,
              attributes: Mapping[str, str | None], lists: Iterable[str] = ()) -> bytes:
    """What a record says that a plan compares with a declaration, as 16 bytes. marshal's version 2
    writes each value with its type and length and shares nothing, so equal bytes mean equal values.
    `lists`: the static lists (as named in the lead files) the record is on, or the lead must be."""
    said = (email, foreign_id, foreign_type, sorted(attributes.items()))
    if lists:
        said = (*said, sorted(set(lists)))
    return hashlib.blake2b(marshal.dumps(said, 2), digest_size=16).digest()


def lead_digest(lead: Lead) -> bytes:
    """The digest a record has when it says exactly what `lead` declares."""
    return digest_of(lead.email, lead.foreign_sys_person_id, lead.effective_foreign_sys_type, lead.attributes,
                     lead.lists)


def other_keys(lead: Lead | StateLead, foreign_type: str | None) -> list[str]:
    """The identities a record or declaration could also be found by (as reconcile.core.planner's
    candidates look them up)."""
    keys = []
    if lead.lead_id is not None:
        keys.append(f"id:{lead.lead_id}")
    if lead.foreign_sys_person_id is not None:
        keys.append(f"fsp:{foreign_type or 'CUSTOM'}:{lead.foreign_sys_person_id}")
    if lead.email is not None:
        keys.append(f"email:{lead.email.lower()}")
    return keys


def _bucket_of(key: str, buckets: int) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % buckets


class StateLookup:
    """`known`: state key -> the digest of its record, followed by the Marketo lead ID it records (in
    decimal) if it knows one. The other keys records have, and the records, are read when asked for."""

    def __init__(self, known: dict[str, bytes], sections: tuple = (), path: Path | None = None,
                 others: frozenset[str] | None = None):
        self.known = known
        self._sections = sections  # (offset, length, sha256): the other keys, then each bucket
        self._path = path
        self._others = others

    def digest(self, key: str) -> bytes | None:
        value = self.known.get(key)
        return None if value is None else value[:16]

    def lead_id(self, key: str) -> int | None:
        value = self.known.get(key)
        return None if value is None or len(value) == 16 else int(value[16:])

    def others(self) -> frozenset[str] | None:
        """Every key some record has besides its own (its lead ID, foreign ID, email); None if damaged."""
        if self._others is None:
            loaded = self._read([0])
            if loaded is None or type(loaded[0]) is not frozenset:
                return None
            self._others = loaded[0]
        return self._others

    def records(self, keys: Iterable[str]) -> dict[str, StateLead] | None:
        """The records under `keys` (each must be a state key), or None if a bucket is damaged."""
        count = len(self._sections) - 1
        wanted: dict[int, list[str]] = {}
        for key in keys:
            wanted.setdefault(1 + _bucket_of(key, count), []).append(key)
        indexes = sorted(wanted)
        loaded = self._read(indexes)
        if loaded is None:
            return None
        found: dict[str, StateLead] = {}
        try:
            for index, rows in zip(indexes, loaded):
                bucket = {row[0]: row for row in rows}
                for key in wanted[index]:
                    found[key] = StateLead(*bucket[key][1:])
        except (TypeError, KeyError, IndexError):
            return None
        return found

    def _read(self, indexes: list[int]) -> list | None:
        if self._path is None:
            return None
        try:
            with open(self._path, "rb") as handle:
                parts = []
                for index in indexes:
                    offset, length, checksum = self._sections[index]
                    handle.seek(offset)
                    payload = handle.read(length)
                    if len(payload) != length or hashlib.sha256(payload).digest() != checksum:
                        return None
                    parts.append(marshal.loads(payload))
                return parts
        except (OSError, ValueError, EOFError, TypeError):
            return None


def _path(directory: Path, key: bytes) -> Path:
    return directory / (key.hex() + ".lookup")


_PREAMBLE = len(_MAGIC) + 32 + 32 + _SIZES.size


def read(directory: Path, state_digest: bytes, fingerprint: bytes) -> StateLookup | None:
    """The lookup of the state whose digest is `state_digest`, or None (none yet, damaged, foreign)."""
    key = hashlib.sha256(fingerprint + state_digest).digest()
    path = _path(directory, key)
    try:
        with open(path, "rb") as handle:
            preamble = handle.read(_PREAMBLE)
            if len(preamble) != _PREAMBLE or not preamble.startswith(_MAGIC) \
                    or preamble[len(_MAGIC):len(_MAGIC) + 32] != key:
                return None
            before, head_size = _SIZES.unpack_from(preamble, _PREAMBLE - _SIZES.size)
            handle.seek(_PREAMBLE + before)
            head = handle.read(head_size + 1)
    except OSError:
        return None
    if len(head) != head_size or hashlib.sha256(head).digest() != preamble[len(_MAGIC) + 32:len(_MAGIC) + 64]:
        return None
    try:
        known, sections = marshal.loads(head)
    except (ValueError, EOFError, TypeError):
        return None
    if type(known) is not dict or type(sections) is not tuple or len(sections) < 2:
        return None
    try:
        os.utime(path)  # the least recently used lookups are the ones pruned
    except OSError:
        pass
    return StateLookup(known, sections, path)


def write(directory: Path, state_digest: bytes, fingerprint: bytes, state: State) -> StateLookup:
    """Write the lookup of `state` (whose files have the digest `state_digest`), and return it with
    its other keys (records come from the caller's state). Failure to write is ignored: the next plan
    only has to load the state. Buckets are written as they are made and the head, which indexes
    them, comes last, so a million records are never held twice."""
    key = hashlib.sha256(fingerprint + state_digest).digest()
    leads = state.leads
    count = max(1, -(-len(leads) // RECORDS_PER_BUCKET))
    keys_of: list[list[str]] = [[] for _ in range(count)]
    known: dict[str, bytes] = {}
    others: set[str] = set()
    for state_key, record in leads.items():
        digest = digest_of(record.email, record.foreign_sys_person_id, record.foreign_sys_type, record.attributes,
                           record.lists)
        known[state_key] = digest if record.lead_id is None else digest + b"%d" % record.lead_id
        others.update(other_keys(record, record.foreign_sys_type))
        keys_of[_bucket_of(state_key, count)].append(state_key)
    others.difference_update(known)  # a key that is some record's own is found as such
    frozen = frozenset(others)
    del others
    try:
        _ensure_directory(directory)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".lookup", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.seek(_PREAMBLE)
                sections, position = [], _PREAMBLE
                for part in _parts(frozen, keys_of, leads):
                    payload = marshal.dumps(part)
                    handle.write(payload)
                    sections.append((position, len(payload), hashlib.sha256(payload).digest()))
                    position += len(payload)
                head = marshal.dumps((known, tuple(sections)))
                handle.write(head)
                handle.seek(0)
                handle.write(_MAGIC + key + hashlib.sha256(head).digest()
                             + _SIZES.pack(position - _PREAMBLE, len(head)))
            os.replace(tmp, _path(directory, key))
        except BaseException:
            _unlink(tmp)
            raise
        _prune(directory)
    except OSError:
        pass
    return StateLookup(known, others=frozen)


def _parts(others: frozenset[str], keys_of: list[list[str]], leads: Mapping[str, StateLead]):
    yield others
    for bucket_keys in keys_of:
        yield tuple((state_key, record.lead_id, record.email, record.foreign_sys_person_id, record.foreign_sys_type,
                     record.attributes, record.synced_at, dict(record.lists))
                    for state_key, record in zip(bucket_keys, map(leads.__getitem__, bucket_keys)))


def _ensure_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True)
    # Ignored by git whatever the repository's own .gitignore says (it may not name .reconcile/).
    (directory / ".gitignore").write_text("# created by reconcile: a local cache\n*\n")


def _prune(directory: Path) -> None:
    entries = sorted(((entry.stat().st_mtime, entry.path) for entry in os.scandir(directory)
                      if entry.name.endswith(".lookup") and not entry.name.startswith(".tmp-")), reverse=True)
    for _mtime, path in entries[KEEP_LOOKUPS:]:
        _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
