"""Immutable data shared by the pure core: desired leads, state, and plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from reconcile.errors import Location

FOREIGN_SYS_TYPES = ("CUSTOM", "SFDC", "NETSUITE")
DEFAULT_FOREIGN_SYS_TYPE = "CUSTOM"
# Records per call a plan counts with when its caller names no transport. Each transport declares
# its own cap (reconcile/remote/registry.py); the application plans with the chosen one's.
DEFAULT_BATCH_SIZE = 300

# A value of None means "clear this field in Marketo" (sent as an empty attrValue).
AttributeValue = str | None


def identity_of(lead_id: int | None, foreign_sys_person_id: str | None, foreign_sys_type: str | None,
                email: str | None) -> str:
    """The state key of a lead, by the key precedence Marketo itself uses: Id > foreign ID > Email."""
    if lead_id is not None:
        return f"id:{lead_id}"
    if foreign_sys_person_id is not None:
        return f"fsp:{foreign_sys_type or DEFAULT_FOREIGN_SYS_TYPE}:{foreign_sys_person_id}"
    if email is not None:
        return f"email:{email.lower()}"
    raise ValueError("a lead needs a leadId, a foreignSysPersonId or an email")


@dataclass(frozen=True, slots=True)
class Lead:
    """One lead as declared in a lead file."""

    location: Location
    lead_id: int | None = None
    email: str | None = None
    foreign_sys_person_id: str | None = None
    foreign_sys_type: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    # The static lists the lead must be on, as the file names them ("VIP Customers", "id:1021").
    lists: tuple[str, ...] = ()
    # A tombstone: the lead must not exist (`deleted: true`, with its keys and nothing else).
    deleted: bool = False
    # Computed once: the planner and the duplicate check look it up for every lead.
    identity: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity", identity_of(
            self.lead_id, self.foreign_sys_person_id, self.effective_foreign_sys_type, self.email))

    @property
    def effective_foreign_sys_type(self) -> str | None:
        if self.foreign_sys_person_id is None:
            return None
        return self.foreign_sys_type or DEFAULT_FOREIGN_SYS_TYPE


@dataclass(frozen=True, slots=True)
class StateLead:
    """What was last applied to Marketo for one lead."""

    lead_id: int | None
    email: str | None
    foreign_sys_person_id: str | None
    foreign_sys_type: str | None
    attributes: Mapping[str, AttributeValue]
    synced_at: str | None = None
    # The static lists Marketo confirmed the lead is on: each as the lead file names it, with its ID.
    lists: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class State:
    lineage: str
    serial: int
    leads: Mapping[str, StateLead]
    format_version: int = 1  # as read from disk; every write is the current format
    instance: str | None = None  # the Marketo instance the state belongs to, once an apply has recorded it


@dataclass(frozen=True, slots=True)
class AttributeChange:
    name: str
    old: AttributeValue
    new: AttributeValue
    was_set: bool  # False: the attribute was not managed before (shown as "(unset)")


@dataclass(frozen=True, slots=True)
class KeyChange:
    """A change of a lead's email, foreign ID or lead ID as recorded in the state."""

    name: str  # "email" | "foreignSysPersonId" | "foreignSysType" | "leadId"
    old: str | int | None
    new: str | int | None


@dataclass(frozen=True, slots=True)
class ListChange:
    """The lead joins (`add`) or leaves a static list. `ref` is the list as named in the lead file (or
    as the state recorded it); `list_id` is known for a removal, and for an addition once resolved."""

    ref: str
    add: bool
    list_id: int | None = None


def list_changes(declared: tuple[str, ...], recorded: Mapping[str, int]) -> tuple[ListChange, ...]:
    """Removals first (by name), then additions in the order the lead file names them."""
    if not declared and not recorded:
        return ()
    wanted = dict.fromkeys(declared)
    removals = [ListChange(ref, False, recorded[ref]) for ref in sorted(recorded) if ref not in wanted]
    additions = [ListChange(ref, True) for ref in wanted if ref not in recorded]
    return (*removals, *additions)


CREATE = "create"
UPDATE = "update"
UNCHANGED = "unchanged"
ORPHANED = "orphaned"
ACTION_KINDS = (CREATE, UPDATE, UNCHANGED, ORPHANED)
# Counted only when a plan has them, so that plans without them read as before.
DELETE = "delete"  # a tombstone of a lead the state records, or an orphan deleted on request
ABSENT = "absent"  # a tombstone of a lead the state does not record: nothing to do


@dataclass(frozen=True, slots=True)
class Action:
    """What apply will do for one lead.

    `identity` is the lead's key after apply; `state_key` the key it has in the state now (None for a
    create; differs from `identity` when a lead gained a stronger key, e.g. its leadId was declared).
    """

    kind: str
    identity: str
    state_key: str | None
    lead: Lead | None  # None for orphaned
    known_lead_id: int | None  # the Marketo ID the state knows, used to key updates by Id
    attribute_changes: tuple[AttributeChange, ...] = ()
    key_changes: tuple[KeyChange, ...] = ()
    unmanaged: tuple[str, ...] = ()  # attributes dropped from YAML: forgotten, not cleared
    list_changes: tuple[ListChange, ...] = ()  # static lists the lead joins or leaves

    @property
    def sends_record(self) -> bool:
        """Whether apply must send this lead to Marketo (as opposed to only updating the state)."""
        if self.kind == CREATE:
            return True
        if self.kind == UPDATE:
            return bool(self.attribute_changes or self.key_changes)
        return False


@dataclass(frozen=True, slots=True)
class Plan:
    """`actions`: what apply does (creates, updates, orphans). `unchanged`: the identities of the
    leads that need nothing, kept as names only: on a 100k-lead plan they are nearly all of it."""

    actions: tuple[Action, ...]
    batch_size: int = DEFAULT_BATCH_SIZE
    unchanged: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()  # --target: only these leads were planned (state keys or lead files)
    # Tallied once: renderers and the CLI ask for them several times over 100k actions.
    counts: Mapping[str, int] = field(init=False, repr=False, compare=False)
    records_to_send: int = field(init=False, repr=False, compare=False)
    list_additions: int = field(init=False, repr=False, compare=False)
    list_removals: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        counts = dict.fromkeys(ACTION_KINDS, 0)
        counts[UNCHANGED] = len(self.unchanged)
        records = additions = removals = 0
        for action in self.actions:
            counts[action.kind] = counts.get(action.kind, 0) + 1
            if action.kind != UNCHANGED and action.sends_record:
                records += 1
            if action.list_changes:
                joined = sum(1 for change in action.list_changes if change.add)
                additions += joined
                removals += len(action.list_changes) - joined
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "records_to_send", records)
        object.__setattr__(self, "list_additions", additions)
        object.__setattr__(self, "list_removals", removals)

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    @property
    def summary(self) -> dict[str, int]:
        return dict(self.counts)

    @property
    def calls(self) -> int:
        return -(-self.records_to_send // self.batch_size)

    @property
    def has_changes(self) -> bool:
        return bool(self.counts[CREATE] or self.counts[UPDATE] or self.counts.get(DELETE))

    @property
    def has_list_changes(self) -> bool:
        return bool(self.list_additions or self.list_removals)
