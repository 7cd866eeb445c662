"""A plain exception (a bug in a transport, not a ReconcileError) raised after a call was sent.

The call may have reached Marketo, so its records are an unknown outcome: the journal keeps them, and
they are never reported as "not sent" (a plain resend under --no-dedup could duplicate them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.apply import apply_plan, recover_state
from reconcile.core.model import Lead
from reconcile.core.planner import plan as make_plan
from reconcile.errors import Location, RemoteError
from reconcile.remote.soap.envelope import SyncStatus
from reconcile.store.journal import journal_path, recover
from reconcile.store.state import load_state


class TransportBug(Exception):
    """Not a ReconcileError: what a bug in a transport raises."""


class BuggyAfterSending:
    """Answers the first `good` calls (every record CREATED); every later call is sent, then raises."""

    stats = None

    def __init__(self, good: int, first_id: int):
        self.good = good
        self.next_id = first_id
        self.sent: list[list] = []

    def send(self, records, dedup_enabled=True, **kwargs):
        self.sent.append(list(records))
        if len(self.sent) > self.good:
            raise TransportBug("the answer could not be read")
        self.next_id += len(records)
        return [SyncStatus(self.next_id - len(records) + n, "CREATED") for n in range(len(records))]


def desired(count: int) -> list[Lead]:
    return [Lead(location=Location("leads/a.yaml", 2 + n), email=f"u{n}@example.com", attributes={"Title": "x"})
            for n in range(count)]


@pytest.mark.parametrize("dedup_enabled", [True, False])
def test_a_plain_exception_after_sending_is_an_unknown_outcome_and_keeps_the_journal(
        tmp_path: Path, dedup_enabled: bool) -> None:
    state_path = tmp_path / "reconcile.state.json"
    leads = desired(4)
    state, _ = recover_state(state_path)
    transport = BuggyAfterSending(good=1, first_id=1000)
    with pytest.raises(Exception) as raised:
        apply_plan(make_plan(leads, state), state, state_path, transport, batch_size=2, concurrency=1,
                   dedup_enabled=dedup_enabled)
    report = raised.value.report
    sent_without_answer = ["email:u2@example.com", "email:u3@example.com"]
    assert len(transport.sent) == 2
    assert sorted(report.created) == ["email:u0@example.com", "email:u1@example.com"]
    assert sorted(u.identity for u in report.unknown) == sent_without_answer
    assert not set(report.not_sent) & set(sent_without_answer), "sent, so never 'not sent'"
    if not dedup_enabled:
        assert isinstance(raised.value, RemoteError) and "may now exist in Marketo" in str(raised.value)
        assert "u2@example.com" in str(raised.value) and "u3@example.com" in str(raised.value)

    assert journal_path(state_path).exists(), "the journal keeps the unknown outcome"
    assert sorted(load_state(state_path).leads) == ["email:u0@example.com", "email:u1@example.com"]
    _, recovered = recover(state_path)
    assert sorted(u.identity for u in recovered.may_have_created) == sent_without_answer

    # A resend without dedup is refused before anything goes out; with dedup it resolves them.
    state, _ = recover_state(state_path)
    again = BuggyAfterSending(good=10, first_id=2000)
    with pytest.raises(RemoteError, match="may now exist in Marketo"):
        apply_plan(make_plan(leads, state), state, state_path, again, dedup_enabled=False)
    assert again.sent == []
    apply_plan(make_plan(leads, state), state, state_path, again, dedup_enabled=True)
    assert len(load_state(state_path).leads) == 4 and not journal_path(state_path).exists()
