"""Refresh: read from Marketo what the state says reconcile manages, and derive the drift.

Reads go through REST Get Leads by filter type (`filterType=id`, at most 300 IDs per call), asking
only for the fields the state manages (plus `email`, to follow merges), through the same client —
rate limiter, concurrency slots, quota and retries — as the writes. IDs Marketo no longer knows are
then looked up by their email (`filterType=email`, 300 per call): a merge winner keeps the email.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from reconcile.core.drift import Drift, MarketoLead, Observed, compute_drift, marketo_text
from reconcile.core.model import State

# Describe's data types whose values Marketo answers as JSON numbers
NUMERIC_TYPES = frozenset({"integer", "float", "currency", "score", "percent"})
from reconcile.errors import ResponseError

ID_FILTER = "id"
EMAIL_FILTER = "email"

READ_BATCH = 300  # Get Leads takes at most 300 filter values a call


@dataclass(frozen=True)
class RefreshProgress:
    """One Get Leads call answered."""

    calls_done: int
    calls: int  # planned so far (the email look-ups are planned once the ID reads are done)
    leads_read: int


def refresh_ids(state: State, declared_ids: Iterable[int] = ()) -> list[int]:
    """The lead IDs a refresh reads: the state's, and those the lead files declare."""
    return sorted({record.lead_id for record in state.leads.values() if record.lead_id is not None}
                  | set(declared_ids))


def refresh_calls(state: State, declared_ids: Iterable[int] = ()) -> int:
    """Get Leads calls the ID reads take: ⌈lead IDs / 300⌉."""
    return -(-len(refresh_ids(state, declared_ids)) // READ_BATCH)


def refresh(state: State, client: Any, rest_names: Mapping[str, str], *, numeric: frozenset[str] = frozenset(),
            declared_ids: Iterable[int] = (), concurrency: int = 4,
            stop: threading.Event | None = None,
            on_progress: Callable[[RefreshProgress], None] | None = None) -> Drift:
    """Read every state lead with a lead ID from Marketo; the drift against the state. `rest_names`:
    lead-file name → REST name; `numeric`: the lead-file names of number fields; `declared_ids`: the
    lead IDs the lead files declare, read too so that one Marketo no longer has is known before apply."""
    reader = _Reader(client, rest_names, concurrency, stop, on_progress)
    ids = refresh_ids(state, declared_ids)
    fields = sorted({name for record in state.leads.values() if record.lead_id is not None
                     for name in record.attributes})
    by_id: dict[int, MarketoLead] = {}
    for lead in reader.read(ID_FILTER, ids, fields):
        by_id.setdefault(lead.lead_id, lead)
    missing_emails = sorted({record.email.lower() for record in state.leads.values()
                             if record.lead_id is not None and record.lead_id not in by_id and record.email})
    by_email: dict[str, list[MarketoLead]] = {}
    if missing_emails:
        for lead in reader.read(EMAIL_FILTER, missing_emails, fields):
            if lead.email is not None:
                by_email.setdefault(lead.email.lower(), []).append(lead)
    for leads in by_email.values():
        leads.sort(key=lambda lead: lead.lead_id)
    drift = compute_drift(state, Observed(by_id=by_id, by_email=by_email, numeric=numeric))
    return dataclasses.replace(drift, missing_ids=frozenset(lead_id for lead_id in ids if lead_id not in by_id))


class _Reader:
    def __init__(self, client: Any, rest_names: Mapping[str, str], concurrency: int,
                 stop: threading.Event | None, on_progress: Callable[[RefreshProgress], None] | None):
        self.client, self.rest_names, self.concurrency = client, rest_names, max(1, concurrency)
        self.stop, self.on_progress = stop, on_progress
        self.calls_done = self.calls = self.leads_read = 0

    def read(self, filter_type: str, values: Sequence[str | int], fields: Iterable[str]) -> list[MarketoLead]:
        """Every lead matching `values`, 300 values per call, calls run `concurrency` at once."""
        wanted = {self.rest_names[name]: name for name in fields if name in self.rest_names}
        rest_fields = ["id", "email", *sorted(set(wanted) - {"id", "email"})]
        chunks = [list(values[start:start + READ_BATCH]) for start in range(0, len(values), READ_BATCH)]
        self.calls += len(chunks)
        leads: list[MarketoLead] = []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chunks) or 1)) as pool:
            futures = [pool.submit(self.client.get_leads, filter_type, chunk, rest_fields, stop=self.stop)
                       for chunk in chunks]
            for future in futures:  # in order, so progress and results do not depend on timing
                rows = future.result()
                leads.extend(_lead(row, wanted) for row in rows)
                self.calls_done += 1
                self.leads_read += len(rows)
                if self.on_progress is not None:
                    self.on_progress(RefreshProgress(self.calls_done, self.calls, self.leads_read))
        return leads


def _lead(row: Mapping[str, Any], wanted: Mapping[str, str]) -> MarketoLead:
    lead_id = row.get("id")
    if not isinstance(lead_id, int) or isinstance(lead_id, bool):
        raise ResponseError("a lead in Marketo's Get Leads answer has no integer id")
    email = row.get("email")
    # Marketo leaves a null field out of the answer: a field asked for and not answered is null
    attributes = {name: marketo_text(row.get(rest)) for rest, name in wanted.items()}
    return MarketoLead(lead_id=lead_id, email=email if isinstance(email, str) and email else None,
                       attributes=attributes)
