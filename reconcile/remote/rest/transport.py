"""The REST transport: the apply engine's batches as Sync Leads calls.

A batch is one call when its records share one (action, lookupField) group; the engine groups them
through `group_of` and keeps a call within `max_call_bytes` through `size_of`. A batch that mixes
groups anyway is sent as one call per group, in order, and answered in the batch's order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from reconcile.core.records import LeadRecord, SyncStatus
from reconcile.errors import UsageError
from reconcile.remote.base import RetryInfo, TransportStats, mark_outcome
from reconcile.remote.rest import answers, payload
from reconcile.remote.rest.about import TRANSPORT
from reconcile.remote.rest.client import RestClient
from reconcile.remote.rest.payload import FieldNames, Group


@dataclass(frozen=True)
class PreparedCall:
    """A batch's Sync Leads bodies, built ahead of sending: (group, positions in the batch, body)."""

    records: tuple[LeadRecord, ...]
    dedup_enabled: bool
    calls: tuple[tuple[Group, tuple[int, ...], bytes], ...]


def is_resend_safe(group: Group) -> bool:
    """Whether sending a call again cannot create a second lead: every group but createDuplicate
    finds the lead it created the first time by its key."""
    return group.action != payload.CREATE_DUPLICATE


class RestTransport:
    """Sync Leads through `client`; lead-file attribute names mapped with `field_names` (Describe)."""

    name = TRANSPORT.name
    call_name = TRANSPORT.call_name
    max_records = TRANSPORT.max_records
    max_call_bytes = TRANSPORT.max_call_bytes
    can_delete = TRANSPORT.can_delete
    can_lists = TRANSPORT.can_lists

    def __init__(self, client: RestClient, field_names: Mapping[str, str] | FieldNames,
                 foreign_id_field: str | None = None):
        self.client = client
        self.names = field_names if isinstance(field_names, FieldNames) else FieldNames(field_names,
                                                                                        foreign_id_field)

    @property
    def stats(self) -> TransportStats:
        return self.client.stats

    # -- what the engine asks before batching -------------------------------------------------------

    def group_of(self, record: LeadRecord, dedup_enabled: bool = True) -> Group:
        return payload.group_of(record, dedup_enabled, self.names.foreign_id_field)

    def size_of(self, record: LeadRecord) -> int:
        return payload.size_of(record, self.names)

    def size_bound_of(self, record: LeadRecord) -> int:
        return payload.size_bound_of(record, self.names)

    def window_opens_in(self) -> float:
        """Seconds until the rate window lets another call start (0: now)."""
        return self.client.http.rate_limiter.opens_in()

    def check(self, records: Sequence[LeadRecord]) -> None:
        """Refuse, before anything is sent, records REST cannot carry (foreign IDs without a field)."""
        keyed = sum(1 for record in records if record.foreign_sys_person_id is not None)
        if keyed and not self.names.foreign_id_field:
            raise UsageError(payload.missing_foreign_id_field_message(keyed))

    # -- sending ------------------------------------------------------------------------------------

    def prepare(self, records: Sequence[LeadRecord], dedup_enabled: bool = True) -> PreparedCall:
        records = tuple(records)
        self.check(records)
        positions: dict[Group, list[int]] = {}
        for index, record in enumerate(records):
            positions.setdefault(self.group_of(record, dedup_enabled), []).append(index)
        calls = []
        for group, indexes in positions.items():
            for start in range(0, len(indexes), payload.MAX_RECORDS):
                chunk = tuple(indexes[start:start + payload.MAX_RECORDS])
                body = payload.body_for([records[i] for i in chunk], group, self.names)
                calls.append((group, chunk, body))
        return PreparedCall(records=records, dedup_enabled=dedup_enabled, calls=tuple(calls))

    def send(self, records: Sequence[LeadRecord] | PreparedCall, dedup_enabled: bool = True, *,
             stop: threading.Event | None = None,
             on_retry: Callable[[RetryInfo], None] | None = None) -> list[SyncStatus]:
        """Send one batch; one status per record, in order. Raises as `RestClient.call` does."""
        prepared = records if isinstance(records, PreparedCall) else self.prepare(records, dedup_enabled)
        statuses: list[SyncStatus | None] = [None] * len(prepared.records)
        for number, (group, indexes, body) in enumerate(prepared.calls):
            try:
                answer = self.client.sync_leads(body, resend_safe=is_resend_safe(group), stop=stop,
                                                on_retry=on_retry)
                received = answers.sync_statuses(answer, len(indexes))
            except BaseException as exc:
                # an earlier call of this batch was applied, and its answers are lost with the batch
                raise mark_outcome(exc, True) if number else exc
            for index, status in zip(indexes, received):
                statuses[index] = status
        return [status for status in statuses if status is not None]

    def close(self) -> None:
        self.client.close()

