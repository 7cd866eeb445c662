"""A plan made of per-file pieces, so a plan with one file changed costs that file, not the database.

In the common case a plan decomposes by lead file. When every declaration either has a state record
under its own identity, or is new and no record has any of its keys (leadId, foreign ID, email),
each lead's action depends on that lead and its own record alone, and what is global is small:
identities declared once (duplicates), Marketo lead IDs claimed once (reconcile.core.declared_once),
and the orphans (state keys no identity claims). A *piece* is one file's share of the plan under one
state: its identities in file order, the lead IDs it claims, its unchanged identities and its actions.

Pieces are cached (`.reconcile/cache/pieces/`) under the sha256 of the file's name and bytes, the
state's files, the schema, the code, and the describe cache and API options the caller passes, so
an edit, an apply, an upgrade or a refreshed describe cache is always a miss. A file that missed is
parsed (through the lead-file cache) and planned against the few records it needs
(reconcile.inputs.statelookup). Anything outside the common case — a file with errors, a lead that
may match a record by another key, a duplicate identity, a lead ID claimed twice, no lookup for this
state yet — returns None, and the caller plans from scratch, which reports every error as always
and stores the pieces of that plan for the next run. The assembled Plan is the one the planner makes
(tests/test_plan_pieces.py compares them on random edits).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Mapping, Sequence

from reconcile.core import model
from reconcile.core.model import CREATE, ORPHANED, UPDATE, Action, AttributeChange, KeyChange, Lead, ListChange, \
    Plan, State, StateLead
from reconcile.errors import InputErrors, Location, ReconcileError
from reconcile.inputs import cache as cache_module
from reconcile.inputs import statelookup

_NAMESPACE = b"a lead file's share of a plan, not a lead file"
PIECES_PER_FILE = 3  # entries kept per lead file: a few states (before and after an apply) and edits


@dataclass(frozen=True)
class Piece:
    identities: tuple[str, ...]  # of the file's leads, in file order
    claims: tuple[int, ...]  # the Marketo lead IDs its leads are, by leadId or by their record
    unchanged: tuple[str, ...]  # sorted
    actions: tuple[Action, ...]  # creates and updates, sorted by identity


def _fingerprint() -> bytes:
    from reconcile.core import declared_once, planner
    from reconcile.inputs import fields, validate

    return cache_module.code_fingerprint((sys.modules[__name__], statelookup, planner, declared_once, model, fields,
                                          validate)) + validate.lead_cache_fingerprint()


def _lookup_fingerprint() -> bytes:
    from reconcile.store import state as state_module, statecodec, statefiles

    return cache_module.code_fingerprint((statelookup, model, state_module, statecodec, statefiles))


class PieceCache:
    """The pieces of one plan's lead files under one state, by file name and bytes."""

    def __init__(self, cache_dir: Path, state_digest: bytes | None, context: str, files: int):
        from reconcile.inputs import validate

        self.cache_dir = Path(cache_dir)
        self.state_digest = state_digest
        self._entries = cache_module.InputCache(self.cache_dir / "pieces", _NAMESPACE + validate.schema_bytes(),
                                                fingerprint=_fingerprint(), min_file_bytes=0,
                                                max_entries=max(cache_module.MAX_ENTRIES, PIECES_PER_FILE * files))
        self._context = context.encode("utf-8", "surrogatepass")

    def _digest(self, name: str, file_digest: bytes) -> bytes:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass") + b"\0" + file_digest + b"\0")
        digest.update(b"no state" if self.state_digest is None else self.state_digest)
        digest.update(b"\0" + self._context)
        return digest.digest()

    def get(self, name: str, file_digest: bytes) -> Piece | None:
        entry = self._entries.get(self._digest(name, file_digest))
        if entry is None:
            return None
        try:
            identities, claims, unchanged, actions = entry
            return Piece(identities, claims, unchanged, tuple(_action_from(name, row) for row in actions))
        except (TypeError, ValueError):  # not what this version writes
            return None

    def put(self, name: str, file_digest: bytes, piece: Piece) -> None:
        self._entries.put(self._digest(name, file_digest),
                          (piece.identities, piece.claims, piece.unchanged, tuple(map(_action_row, piece.actions))))

    def lookup(self) -> statelookup.StateLookup | None:
        if self.state_digest is None:
            return _EMPTY
        return statelookup.read(self.cache_dir / "state-lookup", self.state_digest, _lookup_fingerprint())

    def write_lookup(self, state: State) -> statelookup.StateLookup:
        if self.state_digest is None:
            return _EMPTY
        return statelookup.write(self.cache_dir / "state-lookup", self.state_digest, _lookup_fingerprint(), state)

    def prune(self) -> None:
        if self._entries.writes:
            self._entries.prune()


_EMPTY = statelookup.StateLookup({}, others=frozenset())


def _action_row(action: Action) -> tuple:
    lead = action.lead
    assert lead is not None
    return (action.kind, action.identity, action.state_key, action.known_lead_id,
            (lead.location.line, lead.lead_id, lead.email, lead.foreign_sys_person_id, lead.foreign_sys_type,
             dict(lead.attributes), lead.lists),
            tuple((c.name, c.old, c.new, c.was_set) for c in action.attribute_changes),
            tuple((k.name, k.old, k.new) for k in action.key_changes), action.unmanaged,
            tuple((c.ref, c.add, c.list_id) for c in action.list_changes))


def _action_from(name: str, row: tuple) -> Action:
    kind, identity, state_key, known_lead_id, lead, attribute_changes, key_changes, unmanaged, memberships = row
    line, lead_id, email, foreign_id, foreign_type, attributes, lists = lead
    return Action(kind=kind, identity=identity, state_key=state_key,
                  lead=Lead(location=Location(name, line), lead_id=lead_id, email=email,
                            foreign_sys_person_id=foreign_id, foreign_sys_type=foreign_type, attributes=attributes,
                            lists=lists),
                  known_lead_id=known_lead_id,
                  attribute_changes=tuple(AttributeChange(*change) for change in attribute_changes),
                  key_changes=tuple(KeyChange(*change) for change in key_changes), unmanaged=unmanaged,
                  list_changes=tuple(ListChange(*change) for change in memberships))


def plan_file(leads: Sequence[Lead], lookup: statelookup.StateLookup) -> Piece | None:
    """One file's piece, planned against the records its leads need; None outside the common case."""
    from reconcile.core.planner import plan

    known = lookup.known
    identities, claims, unchanged, to_plan, wanted = [], [], [], [], []
    for lead in leads:
        identity = lead.identity
        identities.append(identity)
        if identity not in known:
            if _found_by_other_keys(lead, lookup):
                return None  # a record may be this lead under another key: the planner decides
            to_plan.append(lead)
        elif lead.lead_id is None and lookup.digest(identity) == statelookup.lead_digest(lead):
            unchanged.append(identity)  # the record says what the lead says, nothing to change
        else:
            to_plan.append(lead)
            wanted.append(identity)
        claim = lead.lead_id if lead.lead_id is not None else lookup.lead_id(identity)
        if claim is not None:
            claims.append(claim)
    records = lookup.records(wanted) if wanted else {}
    if records is None:
        return None
    planned = plan(to_plan, State(lineage="", serial=0, leads=records))
    if any(action.kind == ORPHANED for action in planned.actions):
        return None  # cannot be: every record read is some lead's own
    unchanged.extend(planned.unchanged)
    unchanged.sort()
    return Piece(tuple(identities), tuple(claims), tuple(unchanged), planned.actions)


def _found_by_other_keys(lead: Lead, lookup: statelookup.StateLookup) -> bool:
    """Whether some record has one of the lead's keys (True also when that cannot be told)."""
    others = lookup.others()
    if others is None:
        return True
    known = lookup.known
    return any(key in known or key in others for key in statelookup.other_keys(lead, lead.effective_foreign_sys_type))


def assemble(pieces: Sequence[Piece], lookup: statelookup.StateLookup) -> Plan | None:
    """The plan of all the files whose pieces these are, or None when the files interact (an identity
    declared twice, a Marketo lead ID claimed twice): the planner and its checks then say why."""
    declared = set(chain.from_iterable(piece.identities for piece in pieces))
    if len(declared) != sum(len(piece.identities) for piece in pieces):
        return None
    claims = list(chain.from_iterable(piece.claims for piece in pieces))
    if len(set(claims)) != len(claims):
        return None
    actions = sorted(chain.from_iterable(piece.actions for piece in pieces), key=_order)
    orphans = [Action(kind=ORPHANED, identity=key, state_key=key, lead=None, known_lead_id=lookup.lead_id(key))
               for key in sorted(lookup.known.keys() - declared)]
    unchanged = sorted(chain.from_iterable(piece.unchanged for piece in pieces))
    return Plan(actions=(*actions, *orphans), unchanged=tuple(unchanged))


_KIND_ORDER = {CREATE: 0, UPDATE: 1}


def _order(action: Action) -> tuple[int, str]:
    return _KIND_ORDER[action.kind], action.identity


def plan_from_pieces(leads_dir: Path, state_path: Path, cache_dir: Path, max_file_bytes: int, context: str,
                     instance: str | None, digests_of, found: tuple[bytes, int] | None) -> tuple[Plan, str] | None:
    """(the plan, the hash of the lead files) from cached pieces and the files that changed since, or
    None: plan from scratch. `digests_of`: reconcile.inputs.plancache.FileDigests (stat-remembered);
    `found`: the digest of the state's files as it gave them just before (None: no state)."""
    from reconcile.core.gcpause import gc_paused
    from reconcile.inputs import validate
    from reconcile.inputs.files import discover

    try:
        files = discover(leads_dir)
        names = [file.as_posix() for file in files]
        file_digests = [digests_of.lead_file(file, name, max_file_bytes)[0] for file, name in zip(files, names)]
    except (ReconcileError, OSError):
        return None
    pieces = PieceCache(cache_dir, found[0] if found is not None else None, context, len(files))
    lookup = pieces.lookup()
    if lookup is None:
        return None
    with gc_paused():
        assembled: list[Piece] = []
        lead_cache, schema_check, catalog = validate.lead_cache(cache_dir), validate.SchemaCheck(), _UNREAD
        for file, name, file_digest in zip(files, names, file_digests):
            piece = pieces.get(name, file_digest)
            if piece is None:
                records, errors, read_digest = validate.file_records(file, name, max_file_bytes, lead_cache,
                                                                     schema_check, None, file_digest)
                if errors or read_digest != file_digest:
                    return None
                leads = validate.leads_from_records(name, records)
                if any(lead.lists or lead.deleted for lead in leads):
                    return None  # list names are resolved, and tombstones checked, by the full plan
                if catalog is _UNREAD:
                    catalog = _catalog(state_path, instance)
                if catalog is _UNREADABLE or not _fields_allow(leads, catalog):
                    return None
                piece = plan_file(leads, lookup)
                if piece is None:
                    return None
                pieces.put(name, file_digest, piece)
            assembled.append(piece)
        pieces.prune()
        result = assemble(assembled, lookup)
    if result is None:
        return None
    files_hash = validate._files_hash(names, file_digests)
    if catalog is _UNREAD:
        catalog = _catalog(state_path, instance)
    if catalog is not None and catalog is not _UNREADABLE:
        # every piece was made from files that passed this describe cache (the context names it)
        from reconcile.inputs.fields import record_checked

        record_checked(files_hash, catalog, state_path)
    return result, files_hash


_UNREAD, _UNREADABLE = object(), object()


def _catalog(state_path: Path, instance: str | None):
    from reconcile.inputs.fields import load_catalog

    try:
        return load_catalog(state_path, instance)
    except ReconcileError:
        return _UNREADABLE


def _fields_allow(leads: Sequence[Lead], catalog) -> bool:
    if catalog is None:
        return True
    from reconcile.inputs.fields import check_leads

    try:
        check_leads(leads, catalog)
    except InputErrors:
        return False
    return True


def store_pieces(cache_dir: Path, state_found: tuple[bytes, int] | None, context: str, desired, state: State,
                 plan: Plan) -> None:
    """Cut a plan made from scratch into the pieces of its files, and write the state's lookup, for
    the next plan. `state_found`: the digest of the state's files the plan was made from."""
    from reconcile.core.gcpause import gc_paused

    with gc_paused():
        pieces = PieceCache(cache_dir, state_found[0] if state_found is not None else None, context,
                            len(desired.files))
        lookup = pieces.lookup() or pieces.write_lookup(state)
        by_identity = {action.identity: action for action in plan.actions if action.kind != ORPHANED}
        unchanged = set(plan.unchanged)
        by_file: dict[str, list[Lead]] = {}
        for lead in desired.leads:
            by_file.setdefault(lead.location.file, []).append(lead)
        for name, file_digest in zip(desired.files, desired.file_digests):
            piece = _piece_of(by_file.get(name, []), lookup, state.leads, by_identity, unchanged)
            if piece is not None:
                pieces.put(name, bytes.fromhex(file_digest), piece)
        pieces.prune()


def _piece_of(leads: Sequence[Lead], lookup: statelookup.StateLookup, records: Mapping[str, StateLead],
              by_identity: dict[str, Action], unchanged: set[str]) -> Piece | None:
    """One file's share of a plan made from scratch, or None if the file is outside the common case."""
    identities, claims, same, actions = [], [], [], []
    for lead in leads:
        identity = lead.identity
        identities.append(identity)
        record = records.get(identity)
        if lead.deleted or (record is None and _found_by_other_keys(lead, lookup)):
            return None
        claim = lead.lead_id if lead.lead_id is not None else record.lead_id if record is not None else None
        if claim is not None:
            claims.append(claim)
        if identity in unchanged:
            same.append(identity)
            continue
        action = by_identity.get(identity)
        if action is None or action.lead is not lead or action.state_key != (identity if record is not None else None):
            return None
        actions.append(action)
    same.sort()
    actions.sort(key=_order)
    return Piece(tuple(identities), tuple(claims), tuple(same), tuple(actions))

