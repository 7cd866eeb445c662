"""Delete Leads calls: at most max_ids leads a call, a few calls at once, each call's confirmed leads
handed on as it answers, and no call sent after one fails."""

from __future__ import annotations

import threading

import pytest

from reconcile.apply.deletions import FIRST_DELETE_CALL, run_deletes
from reconcile.core.model import DELETE, Action
from reconcile.errors import RemoteError
from reconcile.remote.membership import LeadOutcome, Outcome


def doomed(count: int) -> list[Action]:
    return [Action(kind=DELETE, identity=f"email:u{n}@example.com", state_key=f"email:u{n}@example.com", lead=None,
                   known_lead_id=100 + n) for n in range(count)]


class Deletes:
    max_ids = 3
    concurrency = 2

    def __init__(self, fail_call: int | None = None):
        self.sent: list[list[int]] = []
        self.fail_call = fail_call
        self._lock = threading.Lock()

    def delete(self, lead_ids, *, stop=None):
        with self._lock:
            self.sent.append(list(lead_ids))
            number = len(self.sent)
        if number == self.fail_call:
            raise RemoteError("Delete Leads failed as a whole")
        return [LeadOutcome(lead_id, Outcome.LEAD_NOT_FOUND if lead_id == 104 else Outcome.DELETED)
                for lead_id in lead_ids]


def test_every_lead_is_deleted_max_ids_a_call_and_each_call_is_confirmed_apart() -> None:
    deletes, confirmed = Deletes(), []
    outcome = run_deletes(doomed(7), deletes, lambda number, gone: confirmed.append((number, gone)), lambda: None)
    assert sorted(lead_id for call in deletes.sent for lead_id in call) == list(range(100, 107))
    assert sorted(len(call) for call in deletes.sent) == [1, 3, 3] and outcome.calls == 3
    assert sorted(number for number, _ in confirmed) == [FIRST_DELETE_CALL + n for n in (1, 2, 3)]
    assert len(outcome.deleted) == 7  # a lead Marketo no longer has (104) counts as deleted


def test_no_delete_call_goes_out_after_one_fails() -> None:
    deletes = Deletes(fail_call=1)
    deletes.concurrency = 1
    with pytest.raises(RemoteError):
        run_deletes(doomed(9), deletes, lambda number, gone: None, lambda: None)
    assert deletes.sent == [[100, 101, 102]]


def test_delete_calls_go_out_together_up_to_the_concurrency() -> None:
    together = threading.Barrier(2, timeout=5)  # broken unless two calls are in flight at once

    class Together(Deletes):
        def delete(self, lead_ids, *, stop=None):
            together.wait()
            return super().delete(lead_ids, stop=stop)

    outcome = run_deletes(doomed(6), Together(), lambda number, gone: None, lambda: None)
    assert outcome.calls == 2 and len(outcome.deleted) == 6


def test_a_stop_request_sends_no_further_delete_call() -> None:
    ctrl_c = threading.Event()

    class Stopped(Deletes):
        concurrency = 1

        def delete(self, lead_ids, *, stop=None):
            ctrl_c.set()  # while the first call is in flight
            return super().delete(lead_ids, stop=stop)

    deletes, confirmed = Stopped(), []
    outcome = run_deletes(doomed(9), deletes, lambda number, gone: confirmed.append(gone), lambda: None, ctrl_c)
    assert deletes.sent == [[100, 101, 102]] and outcome.calls == 1 and len(confirmed[0]) == 3
