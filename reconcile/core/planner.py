"""The planner: desired leads x state -> Plan. Pure and deterministic; no I/O.

Also the inverse direction: how the outcome of applying an action is recorded in the state, so that
planning again after an apply finds nothing to do (the property tests check exactly that).
"""

from __future__ import annotations

import os
from dataclasses import replace
from itertools import compress
from operator import attrgetter, itemgetter
from typing import Iterable, Mapping, Sequence

from reconcile.core.model import (ABSENT, CREATE, DEFAULT_BATCH_SIZE, DELETE, ORPHANED, UPDATE, Action,
                             AttributeChange, KeyChange, Lead, ListChange, Plan, State, StateLead, list_changes)
from reconcile.errors import UsageError

_MISSING = object()
ADOPT = "adopt"  # a summary count: creates that adopt an existing lead by its declared leadId


class _StateIndex:
    """Secondary indexes over the state, so a lead whose identity key changed still finds its record."""

    def __init__(self, leads: Mapping[str, StateLead]):
        self.by_lead_id: dict[int, str] = {}
        self.by_foreign: dict[tuple[str, str], str] = {}
        self.by_email: dict[str, str] = {}
        for key in sorted(leads):
            lead = leads[key]
            if lead.lead_id is not None:
                self.by_lead_id.setdefault(lead.lead_id, key)
            if lead.foreign_sys_person_id is not None:
                self.by_foreign.setdefault((lead.foreign_sys_type or "CUSTOM", lead.foreign_sys_person_id), key)
            if lead.email is not None:
                self.by_email.setdefault(lead.email.lower(), key)

    def candidates(self, lead: Lead) -> list[str]:
        """State keys that may hold this lead, strongest key first."""
        found = []
        if lead.lead_id is not None and lead.lead_id in self.by_lead_id:
            found.append(self.by_lead_id[lead.lead_id])
        if lead.foreign_sys_person_id is not None:
            key = self.by_foreign.get((lead.effective_foreign_sys_type, lead.foreign_sys_person_id))
            if key is not None:
                found.append(key)
        if lead.email is not None and lead.email.lower() in self.by_email:
            found.append(self.by_email[lead.email.lower()])
        return found


def match_state(desired: Sequence[Lead], state: State, identities: Sequence[str] | None = None) -> dict[str, str]:
    """Map each desired identity to the state key that holds the same lead, if any.

    Exact identity matches win; then leads are matched by their other keys (same leadId, same
    foreign ID, same email), each state record claimed by at most one desired lead.
    `identities`, if given, are the leads' identities (computed once by the caller).
    """
    if identities is None:
        identities = [lead.identity for lead in desired]
    state_leads = state.leads
    matched: dict[str, str] = {identity: identity for identity in identities if identity in state_leads}
    if len(matched) == len(identities) or not state_leads:
        return matched  # every lead known by its identity, or no record to match (a first apply)
    claimed: set[str] = set(matched)
    index: _StateIndex | None = None
    # Identity order, not file order: moving a lead between files must not change the plan.
    pending = sorted(((identity, lead) for identity, lead in zip(identities, desired) if identity not in matched),
                     key=itemgetter(0))
    for identity, lead in pending:
        if identity in matched:
            continue
        if index is None:
            index = _StateIndex(state_leads)
        for key in index.candidates(lead):
            if key not in claimed and _compatible(lead, state_leads[key]):
                matched[identity] = key
                claimed.add(key)
                break
    return matched


def _compatible(lead: Lead, recorded: StateLead) -> bool:
    """A state record can be this lead only if no key they both have contradicts the other."""
    if lead.lead_id is not None and recorded.lead_id is not None and lead.lead_id != recorded.lead_id:
        return False
    if (lead.foreign_sys_person_id is not None and recorded.foreign_sys_person_id is not None
            and lead.lead_id is None
            and (lead.foreign_sys_person_id, lead.effective_foreign_sys_type)
            != (recorded.foreign_sys_person_id, recorded.foreign_sys_type or "CUSTOM")):
        return False
    return True


def plan(desired: Sequence[Lead], state: State, batch_size: int = DEFAULT_BATCH_SIZE,
         targets: Sequence[str] = ()) -> Plan:
    """What apply must do to make `state` (and Marketo) match `desired`. With `targets` (state keys such
    as `email:jane@example.com` or `id:1090240`, or lead files such as `leads/people.yaml`), only the
    actions of those leads: every lead is still matched, so the others neither move nor look orphaned."""
    planned = _plan(desired, state, batch_size)
    return only_targets(planned, desired, state, targets) if targets else planned


# What a --target that names a lead starts with; anything else names a lead file.
TARGET_KEY_PREFIXES = ("email:", "id:", "fsp:")


def only_targets(planned: Plan, desired: Sequence[Lead], state: State, targets: Sequence[str]) -> Plan:
    """`planned` cut down to the targeted leads; UsageError for a target that names nothing."""
    keys = {_target_key(target) for target in targets if target.startswith(TARGET_KEY_PREFIXES)}
    files = {os.path.normpath(target) for target in targets if not target.startswith(TARGET_KEY_PREFIXES)}
    file_of = {lead.identity: os.path.normpath(str(lead.location.file)) for lead in desired} if files else {}
    known_files = set(file_of.values())
    known_keys = set(state.leads).union(lead.identity for lead in desired)
    for target in targets:
        if target.startswith(TARGET_KEY_PREFIXES) and _target_key(target) not in known_keys:
            raise UsageError(f"--target {target!r} names no declared lead and no lead in the state (see "
                             "`reconcile state list`; a target is a state key such as email:jane@example.com, "
                             "id:1090240 or fsp:SFDC:0042, or a lead file)")
        if not target.startswith(TARGET_KEY_PREFIXES) and os.path.normpath(target) not in known_files:
            raise UsageError(f"--target {target!r} is neither a state key (email:..., id:..., fsp:...) nor a "
                             "lead file with leads in it (give its path as plan shows it, e.g. leads/people.yaml)")

    def targeted(identity: str, state_key: str | None = None) -> bool:
        return identity in keys or state_key in keys or file_of.get(identity) in files

    return replace(planned, actions=tuple(a for a in planned.actions if targeted(a.identity, a.state_key)),
                   unchanged=tuple(identity for identity in planned.unchanged if targeted(identity)),
                   targets=tuple(targets))


def _target_key(target: str) -> str:
    """A state key as the state writes it: emails lower-cased."""
    return "email:" + target[len("email:"):].lower() if target.startswith("email:") else target


def _plan(desired: Sequence[Lead], state: State, batch_size: int) -> Plan:
    identities = [lead.identity for lead in desired]
    matched = match_state(desired, state, identities)
    state_leads = state.leads
    # Actions come out grouped by kind (create, update, orphaned, unchanged), each group by identity.
    creates: list[Action] = []
    created: tuple[dict, dict] = ({}, {})  # for _changes_of_a_create: name orders, changes by (name, value)
    updates: list[Action] = []
    unchanged: list[str] = []
    tombstones: list[Action] = []
    for lead, identity in zip(desired, identities):
        key = matched.get(identity)
        if lead.deleted:
            tombstones.append(_tombstone(lead, identity, key, state_leads))
            continue
        if key is None:
            creates.append(Action(kind=CREATE, identity=identity, state_key=None, lead=lead,
                                  known_lead_id=lead.lead_id,
                                  attribute_changes=_changes_of_a_create(lead.attributes, *created),
                                  list_changes=list_changes(lead.lists, {}) if lead.lists else ()))
            continue
        recorded = state_leads[key]
        attributes, recorded_attributes = lead.attributes, recorded.attributes
        if attributes == recorded_attributes and type(attributes) is dict and type(recorded_attributes) is dict:
            attribute_changes: tuple[AttributeChange, ...] = ()
            unmanaged: tuple[str, ...] = ()  # equal dicts: nothing changed, nothing dropped
        else:
            attribute_changes = _attribute_changes(attributes, recorded_attributes)
            unmanaged = tuple(sorted(set(recorded_attributes) - set(attributes)))
        if lead.lead_id is None and lead.foreign_sys_person_id is None and lead.email == recorded.email:
            key_changes: tuple[KeyChange, ...] = ()  # the common case, without the call
        else:
            key_changes = _key_changes(lead, recorded)
        memberships: tuple[ListChange, ...] = list_changes(lead.lists, recorded.lists) \
            if lead.lists or recorded.lists else ()
        if not (attribute_changes or key_changes or unmanaged or memberships or key != identity):
            unchanged.append(identity)
            continue
        updates.append(
            Action(kind=UPDATE, identity=identity, state_key=key, lead=lead,
                   known_lead_id=recorded.lead_id if recorded.lead_id is not None else lead.lead_id,
                   attribute_changes=attribute_changes, key_changes=key_changes, unmanaged=unmanaged,
                   list_changes=memberships))
    claimed = set(matched.values())
    orphans = [Action(kind=ORPHANED, identity=key, state_key=key, lead=None, known_lead_id=state_leads[key].lead_id)
               for key in sorted(set(state_leads) - claimed)]
    by_identity = attrgetter("identity")
    creates.sort(key=by_identity)
    updates.sort(key=by_identity)
    unchanged.sort()
    tombstones.sort(key=by_identity)
    deletes = [action for action in tombstones if action.kind == DELETE]
    absent = [action for action in tombstones if action.kind == ABSENT]
    return Plan(actions=(*creates, *updates, *deletes, *orphans, *absent), batch_size=batch_size,
                unchanged=tuple(unchanged))


def _tombstone(lead: Lead, identity: str, key: str | None, state_leads: Mapping[str, StateLead]) -> Action:
    """A lead the files declare deleted: a delete of the lead the state records, or (the state records
    none: deleted already, or never managed) nothing to do."""
    if key is None:
        return Action(kind=ABSENT, identity=identity, state_key=None, lead=lead, known_lead_id=lead.lead_id)
    recorded = state_leads[key]
    return Action(kind=DELETE, identity=identity, state_key=key, lead=lead,
                  known_lead_id=recorded.lead_id if recorded.lead_id is not None else lead.lead_id)


def delete_orphans(planned: Plan) -> Plan:
    """`planned` with its orphans (leads the state records that no lead file declares) deleted."""
    return replace(planned, actions=tuple(replace(action, kind=DELETE) if action.kind == ORPHANED else action
                                          for action in planned.actions))


def _changes_of_a_create(attributes: Mapping[str, str | None], orders: dict, shared: dict
                         ) -> tuple[AttributeChange, ...]:
    """What _attribute_changes(attributes, {}) gives, from shared objects: 90k creates of 7 attributes
    made 630k changes equal by value, most of them alike. `orders`: the sorted names of each key set;
    `shared`: the changes made so far, by (name, value)."""
    order = orders.get(names := tuple(attributes))
    if order is None:
        order = orders[names] = tuple(sorted(names))
    changes = []
    for name in order:
        value = attributes[name]
        try:
            change = shared.get((name, value))
        except TypeError:  # a value that is not hashable: not shared
            change = None
        if change is None:
            change = AttributeChange(name=name, old=None, new=value, was_set=False)
            try:
                shared[(name, value)] = change
            except TypeError:
                pass
        changes.append(change)
    return tuple(changes)


def _attribute_changes(desired: Mapping[str, str | None], recorded: Mapping[str, str | None]
                       ) -> tuple[AttributeChange, ...]:
    changes = []
    for name in sorted(desired):
        old = recorded.get(name, _MISSING)
        new = desired[name]
        if old is _MISSING:
            changes.append(AttributeChange(name=name, old=None, new=new, was_set=False))
        elif old != new:
            changes.append(AttributeChange(name=name, old=old, new=new, was_set=True))
    return tuple(changes)


def _key_changes(lead: Lead, recorded: StateLead) -> tuple[KeyChange, ...]:
    """Keys declared in YAML that differ from what Marketo was last told.

    Keys only ever added or changed, never removed: dropping `email:` from a lead known by its foreign
    ID does not clear the email in Marketo, it just stops managing it.
    """
    lead_id, foreign_id, email = lead.lead_id, lead.foreign_sys_person_id, lead.email
    changes = []
    if lead_id is not None and lead_id != recorded.lead_id:
        changes.append(KeyChange("leadId", recorded.lead_id, lead_id))
    if foreign_id is not None:
        foreign_type = lead.effective_foreign_sys_type
        if foreign_id != recorded.foreign_sys_person_id:
            changes.append(KeyChange("foreignSysPersonId", recorded.foreign_sys_person_id, foreign_id))
        if foreign_type != recorded.foreign_sys_type:
            changes.append(KeyChange("foreignSysType", recorded.foreign_sys_type, foreign_type))
    if email is not None:
        recorded_email = recorded.email
        if recorded_email is None or (email != recorded_email and email.lower() != recorded_email.lower()):
            changes.append(KeyChange("email", recorded_email, email))
    return tuple(changes) if changes else ()


def is_adoption(action: Action) -> bool:
    """A create of a lead that declares its leadId: it takes an existing Marketo lead under management
    (Marketo updates it) rather than making a new one. Plans and applies count these apart."""
    return action.kind == CREATE and action.lead is not None and action.lead.lead_id is not None


_kind_of = attrgetter("kind")
_lead_id_of = attrgetter("lead.lead_id")


def summary_counts(plan: Plan) -> dict[str, int]:
    """The plan's counts by kind, with adoptions counted as `adopt` instead of `create`."""
    counts = dict(plan.summary)
    # At C speed: a plan of 100k creates would spend more here than on the rest of its summary.
    creates = compress(plan.actions, map(CREATE.__eq__, map(_kind_of, plan.actions)))
    adopt = counts[CREATE] - list(map(_lead_id_of, creates)).count(None)
    counts[CREATE] -= adopt
    counts[ADOPT] = adopt
    return counts


def recorded_lead(action: Action, lead_id: int | None, synced_at: str,
                  lists: Mapping[str, int] | None = None) -> StateLead:
    """The state record for a lead after Marketo accepted its record (CREATED or UPDATED). `lists`: the
    memberships recorded so far (the list calls that change them come after, each recorded apart)."""
    lead = action.lead
    assert lead is not None, "only declared leads are applied"
    return StateLead(lead_id=lead_id if lead_id is not None else action.known_lead_id,
                     email=lead.email, foreign_sys_person_id=lead.foreign_sys_person_id,
                     foreign_sys_type=lead.effective_foreign_sys_type, attributes=dict(lead.attributes),
                     synced_at=synced_at, lists=dict(lists) if lists else {})


def recorded_lists(action: Action, leads: Mapping[str, StateLead]) -> Mapping[str, int]:
    """The memberships the state records for the lead of `action` before it is applied."""
    if action.state_key is None:
        return {}
    recorded = leads.get(action.state_key)
    return recorded.lists if recorded is not None else {}


def with_memberships(lead: StateLead, changes: Iterable[ListChange]) -> StateLead:
    """`lead` once Marketo confirmed `changes` (each addition's `list_id` resolved)."""
    lists = dict(lead.lists)
    for change in changes:
        if change.add:
            assert change.list_id is not None, "an addition is recorded with the list's ID"
            lists[change.ref] = change.list_id
        else:
            lists.pop(change.ref, None)
    return replace(lead, lists=dict(sorted(lists.items())))


def record_outcomes(leads: Mapping[str, StateLead], outcomes: Iterable[tuple[Action, StateLead]]
                    ) -> dict[str, StateLead]:
    """The state's leads after `outcomes` (applied actions and their new records) are recorded."""
    result = dict(leads)
    for action, new_record in outcomes:
        if action.state_key is not None and action.state_key != action.identity:
            result.pop(action.state_key, None)
        result[action.identity] = new_record
    return result


def forget(leads: Mapping[str, StateLead], keys: Iterable[str]) -> dict[str, StateLead]:
    result = dict(leads)
    for key in keys:
        result.pop(key, None)
    return result
