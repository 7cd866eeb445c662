"""The 1 MB limit of a Sync Leads call (Marketo answers HTTP 413 above it), at its very boundary.

The client's rule: the records of one call take at most `RestTransport.max_call_bytes` bytes of the
body (each record's JSON and its comma), which leaves `payload.ENVELOPE_BYTES` for the rest of the
body. Records are packed up to that sum, just under, at and just over it, and the bodies actually
sent are measured: each within 1,000,000 bytes, and the split exactly where the sum passes the rule.
"""

from __future__ import annotations

import pytest

from reconcile.apply import apply_plan
from reconcile.apply.batches import record_for
from reconcile.core.model import Lead, State
from reconcile.core.planner import plan as make_plan
from reconcile.errors import Location
from reconcile.remote.rest import payload
from reconcile.remote.rest.transport import RestTransport
from rest_fake import NAMES, make_client
from rest_fake import FakeMarketo

LIMIT = 1_000_000  # bytes of a Sync Leads body Marketo accepts
COUNT = 200  # records of about 5,000 bytes each: near the byte limit long before the 300-record one


def leads_summing_to(transport: RestTransport, total: int) -> list[Lead]:
    """COUNT leads (one Sync Leads group) whose record sizes add up to exactly `total` bytes."""
    def lead(n: int, company: str) -> Lead:
        return Lead(location=Location("leads/a.yaml", 2 + n), email=f"u{n:04d}@example.com",
                    attributes={"Company": company, "Title": "t"})

    def size(candidate: Lead) -> int:
        (action,) = make_plan([candidate], State(lineage="l", serial=0, leads={})).actions
        return transport.size_of(record_for(action))

    leads = [lead(n, "c" * 4900) for n in range(COUNT - 1)]
    used = sum(map(size, leads))
    last = lead(COUNT - 1, "")
    last = lead(COUNT - 1, "c" * (total - used - size(last)))
    assert used + size(last) == total
    return leads + [last]


def envelope_bytes() -> int:
    empty = payload.body_for([], payload.Group(payload.CREATE_OR_UPDATE, "email"), payload.FieldNames(NAMES))
    return len(empty)


RULE = RestTransport.max_call_bytes
# The record bytes whose body is exactly 1,000,000 bytes (`{…"input":[` + records − last comma + `]}`):
# the rule keeps a margin below it, so these are split too.
LARGEST_THAT_FITS = LIMIT - envelope_bytes() + 1


@pytest.mark.parametrize("total, calls", [(RULE - 1, 1), (RULE, 1), (RULE + 1, 2), (RULE + 300, 2),
                                          (LARGEST_THAT_FITS, 2), (LARGEST_THAT_FITS + 1, 2)])
def test_a_call_is_packed_up_to_the_limit_and_split_exactly_past_it(total: int, calls: int, tmp_path) -> None:
    fake = FakeMarketo()
    transport = RestTransport(make_client(fake), NAMES, "externalId")
    leads = leads_summing_to(transport, total)
    state = State(lineage="0c1d2e3f-0000-4000-8000-000000000000", serial=0, leads={})
    report = apply_plan(make_plan(leads, state), state, tmp_path / "reconcile.state.json", transport,
                        concurrency=1)
    assert len(report.created) == COUNT

    bodies = [request.body for request in fake.calls()]
    assert len(bodies) == calls
    assert all(len(body) <= LIMIT for body in bodies), [len(body) for body in bodies]
    sent = [len(body_of["input"]) for body_of in (request.json() for request in fake.calls())]
    # Every record but the last fits with room to spare; the last decides whether it needs a call of its own.
    assert sent == ([COUNT] if calls == 1 else [COUNT - 1, 1])
    if calls == 1:
        assert len(bodies[0]) == envelope_bytes() + total - 1, "the sizes counted are the bytes sent"
