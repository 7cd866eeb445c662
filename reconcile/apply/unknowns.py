"""Unknown outcomes: records sent in a call whose answer never came.

Marketo may or may not have applied them. Keyed by a Marketo ID they are harmless to resend; without
one, a resend is safe only when Marketo will match the lead it may have created (same foreign ID, or
the email with dedup on). Those that are not resolved by an answer are carried in the journal from
one apply to the next until a later apply accounts for them.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from reconcile.apply.batches import Batch, record_for
from reconcile.apply.ledger import journal_entries
from reconcile.core.model import Action
from reconcile.core.records import LeadRecord
from reconcile.store.journal import UnknownOutcome

__all__ = ["UnknownOutcomes", "unknown_message", "unique"]


def _fsp_key(fsp_type: str | None, fsp: str | None) -> tuple[str, str] | None:
    return None if fsp is None else (fsp_type or "CUSTOM", fsp)


def _same_lead(carried: UnknownOutcome, action: Action, record: LeadRecord) -> bool:
    """Whether `record` (for `action`) may address the lead an unknown-outcome record may have created."""
    entry = carried.entry
    if carried.identity == action.identity:
        return True
    email = action.lead.email if action.lead is not None else record.email
    if email and entry.email and email.lower() == entry.email.lower():
        return True
    fsp = _fsp_key(entry.foreign_sys_type, entry.foreign_sys_person_id)
    return fsp is not None and fsp == _fsp_key(record.foreign_sys_type, record.foreign_sys_person_id)


def unique(items: Iterable[UnknownOutcome]) -> list[UnknownOutcome]:
    seen: dict[str, UnknownOutcome] = {}
    for item in items:
        seen.setdefault(item.identity, item)
    return [seen[k] for k in sorted(seen)]


class UnknownOutcomes:
    """The unknown outcomes an apply starts with (`carried`), those it makes, and what resolves them."""

    def __init__(self, carried: Sequence[UnknownOutcome], *, dedup_enabled: bool, started: str):
        self.carried = list(carried)
        self.new: list[UnknownOutcome] = []
        self._dedup = dedup_enabled
        self._started = started
        # The actions whose records Marketo accepted in this apply: their records are built again only
        # if an unknown outcome has to be checked against them (rare), not held for the whole apply.
        self._answered: list[Action] = []

    def sent_without_answer(self, batch: Batch) -> None:
        self.new.extend(UnknownOutcome(entry=e, batch=batch.number, dedup_enabled=self._dedup,
                                       started=self._started) for e in journal_entries(batch))

    def answered(self, action: Action) -> None:
        self._answered.append(action)

    def blocked(self, batches: Sequence[Batch]) -> list[UnknownOutcome]:
        """Carried unknown-outcome leads that this apply would resend in a way that could duplicate them."""
        blocked: dict[str, UnknownOutcome] = {}
        for batch in batches if self.carried else ():
            for action, record in zip(batch.actions, batch.records):
                if record.lead_id is not None:
                    continue  # keyed by Marketo ID: cannot create anything
                for carried in self.carried:
                    if not _same_lead(carried, action, record):
                        continue
                    entry = carried.entry
                    if record.foreign_sys_person_id is not None:
                        safe = _fsp_key(entry.foreign_sys_type, entry.foreign_sys_person_id) \
                            == _fsp_key(record.foreign_sys_type, record.foreign_sys_person_id)
                    else:
                        safe = self._dedup
                    if not safe:
                        blocked[carried.identity] = carried
        return [blocked[k] for k in sorted(blocked)]

    def unresolved(self, unknown: Iterable[UnknownOutcome]) -> list[UnknownOutcome]:
        """The unknown outcomes that no record answered in this apply accounts for (see _same_lead)."""
        unknown = list(unknown)
        if not unknown:
            return []
        identities, emails, fsps = set(), set(), set()
        for action in self._answered:
            record = record_for(action)
            identities.add(action.identity)
            email = action.lead.email if action.lead is not None else record.email
            if email:
                emails.add(email.lower())
            fsp = _fsp_key(record.foreign_sys_type, record.foreign_sys_person_id)
            if fsp is not None:
                fsps.add(fsp)
        return [u for u in unknown
                if u.identity not in identities
                and not (u.entry.email and u.entry.email.lower() in emails)
                and _fsp_key(u.entry.foreign_sys_type, u.entry.foreign_sys_person_id) not in fsps]

    def to_keep(self) -> list[UnknownOutcome]:
        """What the journal must remember for a later apply: unresolved ones a resend could duplicate."""
        return unique(self.unresolved(self.carried + [u for u in self.new if u.may_have_created]))

    def risky(self) -> list[UnknownOutcome]:
        """This apply's unknown outcomes that may have created a lead (sent without a Marketo ID)."""
        return [u for u in self.new if u.may_have_created]


def unknown_message(unknown: Sequence[UnknownOutcome], *, earlier: bool, cause: str | None = None) -> str:
    shown = ", ".join(u.describe() for u in unknown[:20])
    more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
    when = ("an earlier apply sent them and never got an answer" if earlier
            else f"the call that sent them got no usable answer ({cause})")
    return (f"{len(unknown)} lead(s) may now exist in Marketo although the state does not record them: "
            f"{shown}{more} — {when}, and with --no-dedup resending them could create duplicates, so they "
            "are not resent. To resolve: find each lead in Marketo (by its email) and declare its leadId in "
            "the lead files, or run apply without --no-dedup so they are matched by email")
