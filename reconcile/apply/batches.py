"""From a plan to calls: one wire-neutral LeadRecord per action that sends, grouped into batches.

Pure functions. A batch is one call. Records that would reach the same Marketo lead never share a
batch nor run in two concurrent calls: they go to a later *wave*, sent after every call of the
earlier waves is answered. A transport may add its own rules (see `reconcile.remote.base.Transport`):
records of different groups never share a call, and a call stays under a size in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, NamedTuple, Sequence

from reconcile.core.model import CREATE, DEFAULT_BATCH_SIZE, UPDATE, Action, Lead, Plan
from reconcile.core.records import LeadRecord

__all__ = ["Batch", "GroupOf", "SizeOf", "record_for", "plan_batches", "conflict_keys"]

GroupOf = Callable[[LeadRecord, bool], Hashable]
SizeOf = Callable[[LeadRecord], int]


def record_for(action: Action) -> LeadRecord:
    """The LeadRecord that applies `action` (a create, or an update that sends something).

    create: the declared keys — `Id` if a leadId is declared, else ForeignSysPersonId/Type and/or
    Email — with every declared attribute (None clears the field). Keyed by Id or foreign ID, the
    declared email is sent as an `Email` attribute (Marketo does not update the email from the key).
    update of a lead with a known leadId: keyed by `Id` only, with only the changed attributes, plus
    `Email` as an attribute when the email changed and ForeignSysPersonId/Type when the foreign ID
    changed. update without a known leadId: the declared keys, with the changed attributes.
    """
    lead = action.lead
    if lead is None or action.kind not in (CREATE, UPDATE):
        raise ValueError(f"{action.identity}: a {action.kind} action sends no record")
    if action.kind == CREATE:  # runs at least once for every lead sent: kept lean
        attributes = tuple(lead.attributes.items())
        email_attribute = lead.email is not None and "Email" not in lead.attributes
        return _declared_keys(lead, attributes, (("Email", lead.email),) if email_attribute else ())
    changed = tuple((change.name, change.new) for change in action.attribute_changes)
    key_names = {change.name for change in action.key_changes}
    email_changed = "email" in key_names and lead.email is not None
    if action.known_lead_id is not None:
        fsp_changed = bool(key_names & {"foreignSysPersonId", "foreignSysType"}) \
            and lead.foreign_sys_person_id is not None
        return LeadRecord(lead_id=action.known_lead_id,
                          foreign_sys_person_id=lead.foreign_sys_person_id if fsp_changed else None,
                          foreign_sys_type=lead.effective_foreign_sys_type if fsp_changed else None,
                          attributes=changed + ((("Email", lead.email),) if email_changed else ()))
    email_attribute = email_changed and not any(name == "Email" for name, _ in changed)
    return _declared_keys(lead, changed, (("Email", lead.email),) if email_attribute else ())


def _declared_keys(lead: Lead, attributes: tuple, email: tuple) -> LeadRecord:
    """The record keyed as the lead declares itself; `email`: the Email attribute to add when the record
    is keyed by Id or foreign ID (Marketo takes the email from the key only when it is the key)."""
    if lead.lead_id is not None:
        return LeadRecord(lead.lead_id, None, lead.foreign_sys_person_id, lead.effective_foreign_sys_type,
                          attributes + email)
    if lead.foreign_sys_person_id is not None:
        return LeadRecord(None, lead.email, lead.foreign_sys_person_id, lead.effective_foreign_sys_type,
                          attributes + email)
    return LeadRecord(None, lead.email, None, None, attributes)


@dataclass(frozen=True)
class Batch:
    number: int  # 1-based, in sending order
    wave: int  # batches of a later wave are sent only after every earlier one is answered
    indexes: tuple[int, ...]  # positions of the actions in the plan
    actions: tuple[Action, ...]
    # The records while the batch is being built, sent and answered (see hold_records).
    _held: list = field(default_factory=list, compare=False, repr=False)

    @property
    def records(self) -> tuple[LeadRecord, ...]:
        """The records sent: those held, or built again (`record_for` is pure)."""
        if self._held:
            return self._held[0]
        return tuple(record_for(action) for action in self.actions)

    def hold_records(self) -> tuple[LeadRecord, ...]:
        """Build the records once for the life of the call (built, journaled, sent, answered), instead
        of at each of those steps. Holding every batch's records from the start of a large apply
        would hold a record for every lead at once, so the sender lets go of them when it is answered."""
        if not self._held:
            self._held.append(tuple(record_for(action) for action in self.actions))
        return self._held[0]

    def release_records(self) -> None:
        self._held.clear()

    @property
    def size(self) -> int:
        return len(self.actions)


def conflict_keys(action: Action, record: LeadRecord, dedup_enabled: bool) -> list[tuple]:
    """The ways `record` can reach a Marketo lead: two records sharing one never run at once."""
    keys: list[tuple] = [("identity", action.identity)]
    if record.lead_id is not None:
        keys.append(("id", record.lead_id))
    if record.foreign_sys_person_id is not None:
        keys.append(("fsp", record.foreign_sys_type or "CUSTOM", record.foreign_sys_person_id))
    elif record.lead_id is None and record.email is not None and dedup_enabled:
        keys.append(("email", record.email.lower()))  # email-keyed records dedupe on the email
    return keys


class _Item(NamedTuple):
    """One action that sends, while the calls are being cut."""

    index: int  # its position in the plan
    action: Action
    group: Hashable  # records of different groups never share a call
    size: int  # its record's size (or an upper bound of it), when calls are sized in bytes
    record: LeadRecord | None  # kept only for the first calls' records


def _waves(plan: Plan, dedup_enabled: bool, group_of: GroupOf | None,
           size_of: SizeOf | None, keep: int) -> dict[int, list[_Item]]:
    """Each action that sends, by wave, with its group and size; the records of the first `keep` are
    kept (the first calls' records, built once), the others let go."""
    waves: dict[int, list[_Item]] = {0: []}
    first_wave = waves[0]
    last_wave: dict[tuple, int] = {}
    get_wave = last_wave.get
    for index, action in enumerate(plan.actions):  # once a lead sent, before the first call: kept lean
        if not action.sends_record:
            continue
        record = record_for(action)
        keys = conflict_keys(action, record, dedup_enabled)
        wave = 0
        for key in keys:
            seen = get_wave(key)
            if seen is not None and seen >= wave:
                wave = seen + 1
        for key in keys:
            last_wave[key] = wave
        item = _Item(index, action, group_of(record, dedup_enabled) if group_of is not None else None,
                     size_of(record) if size_of is not None else 0, record if keep > 0 else None)
        if wave:
            waves.setdefault(wave, []).append(item)
        else:
            first_wave.append(item)
        keep -= 1
    if not first_wave:
        del waves[0]
    return waves


def _chunks(items: Sequence[_Item], batch_size: int, max_call_bytes: int | None,
            exact_size: Callable[[_Item], int] | None = None) -> list[list[_Item]]:
    """Consecutive runs of at most `batch_size` items; with a size limit, a run closes before it would
    pass `max_call_bytes` (a single record over the limit still gets a call of its own).

    With `exact_size`, the items' sizes are upper bounds: where their sum would pass the limit, the
    run's exact sizes decide instead, so the runs are those the exact sizes alone would give."""
    chunks: list[list[_Item]] = []
    current: list[_Item] = []
    used, exact = 0, exact_size is None
    for item in items:
        size = item.size if max_call_bytes is not None else 0
        if max_call_bytes is not None and current and not exact and used + size > max_call_bytes \
                and len(current) < batch_size:
            used, exact = sum(map(exact_size, current)), True  # type: ignore[arg-type]
        if exact and exact_size is not None:
            size = exact_size(item)
        if current and (len(current) >= batch_size or (max_call_bytes is not None and used + size > max_call_bytes)):
            chunks.append(current)
            current, used, exact = [], 0, exact_size is None
            size = item.size if max_call_bytes is not None else 0
        current.append(item)
        used += size
    if current:
        chunks.append(current)
    return chunks


def plan_batches(plan: Plan, batch_size: int = DEFAULT_BATCH_SIZE, dedup_enabled: bool = True, *,
                 group_of: GroupOf | None = None, size_of: SizeOf | None = None,
                 max_call_bytes: int | None = None, size_bound_of: SizeOf | None = None,
                 hold_first: int = 0) -> list[Batch]:
    """The calls that apply `plan`: at most `batch_size` records each, a lead never twice in a call.

    Records that would reach the same Marketo lead (same Id, same foreign ID, or — with dedup — the
    same email as the only key) go to a later wave, sent after the earlier one is answered.
    `group_of(record, dedup_enabled)`: records of different groups never share a call (groups keep the
    order in which they first appear). `size_of(record)` with `max_call_bytes`: the records' sizes in
    one call add up to at most `max_call_bytes`; `size_bound_of(record)`, a cheap upper bound of
    `size_of`, spares computing most sizes without changing the calls. The first `hold_first` calls
    hold their records (`Batch.hold_records`) from the start: they are about to be built and sent.
    """
    batches: list[Batch] = []
    bounded = size_of is not None and size_bound_of is not None
    size_needed = (size_bound_of if bounded else size_of) if max_call_bytes is not None else None
    exact_size = (lambda item: size_of(item.record if item.record is not None else record_for(item.action))) \
        if bounded else None  # type: ignore[misc]
    waves = _waves(plan, dedup_enabled, group_of, size_needed, keep=hold_first * batch_size)
    for wave in sorted(waves):
        groups: dict[Hashable, list[_Item]] = {}
        for item in waves[wave]:
            groups.setdefault(item.group, []).append(item)
        for items in groups.values():
            for chunk in _chunks(items, batch_size, max_call_bytes, exact_size):
                batch = Batch(number=len(batches) + 1, wave=wave, indexes=tuple(item.index for item in chunk),
                              actions=tuple(item.action for item in chunk))
                records = tuple(item.record for item in chunk)
                if batch.number <= hold_first and None not in records:
                    batch._held.append(records)
                batches.append(batch)
    return batches
