"""State checkpoints during a long apply: spaced by what they cost, and nothing built when nothing changed."""

from __future__ import annotations

import math

import pytest

from reconcile.apply.events import StateWritten
from reconcile.apply.ledger import Ledger
from reconcile.core.model import Lead, State
from reconcile.core.planner import plan as make_plan
from reconcile.core.planner import recorded_lead
from reconcile.errors import Location
from reconcile.store.state import load_state


class Clock:
    """A monotonic clock that moves only when told, and by `per_call` at every reading."""

    def __init__(self, per_call=0.0):
        self.now, self.per_call = 0.0, per_call

    def __call__(self):
        self.now += self.per_call
        return self.now


def actions(n):
    leads = [Lead(location=Location("leads/x.yaml", i + 1), email=f"c{i}@example.com", attributes={})
             for i in range(n)]
    return list(make_plan(leads, State(lineage="l", serial=0, leads={})).actions)


def ledger_every_5_s(tmp_path, clock):
    """A ledger over an empty state with 5 s checkpoints, and the StateWritten events it emits."""
    written = []
    ledger = Ledger(tmp_path / "s.json", State("l", 0, {}), monotonic=clock, checkpoint_interval=5.0,
                    emit=lambda event: written.append(event) if isinstance(event, StateWritten) else None)
    return ledger, written


def test_a_checkpoint_that_took_long_is_followed_by_a_longer_wait(tmp_path):
    clock = Clock(per_call=1.0)  # every reading advances a second: each write "takes" one second
    ledger, written = ledger_every_5_s(tmp_path, clock)
    todo = actions(4)
    ledger.record(0, todo[0], recorded_lead(todo[0], 1, "2026-01-01T00:00:00Z"))
    clock.now += 5.0
    ledger.checkpoint()
    assert len(written) == 1
    ledger.record(1, todo[1], recorded_lead(todo[1], 2, "2026-01-01T00:00:00Z"))
    clock.now += 10.0  # past the configured 5 s, within 20 x the second the last write took
    ledger.checkpoint()
    assert len(written) == 1
    clock.now += 10.0
    ledger.checkpoint()
    assert len(written) == 2
    assert len(load_state(tmp_path / "s.json").leads) == 2


def test_checkpoints_build_nothing_while_no_answer_arrives(tmp_path):
    built = []

    class CountingLedger(Ledger):
        def leads(self):
            built.append(1)
            return super().leads()

    clock = Clock()
    ledger = CountingLedger(tmp_path / "s.json", State("l", 0, {}), monotonic=clock, checkpoint_interval=0.0,
                            emit=lambda event: None)
    todo = actions(1)
    ledger.record(0, todo[0], recorded_lead(todo[0], 1, "2026-01-01T00:00:00Z"))
    for _ in range(50):  # a rate-limit wait: the scheduler ticks ten times a second
        clock.now += 0.1
        ledger.checkpoint()
    assert len(built) == 1
    ledger.write()  # the final write: nothing new
    assert len(built) == 1
    assert len(load_state(tmp_path / "s.json").leads) == 1


def test_the_checkpoints_of_a_growing_state_never_rewrite_every_shard_again(tmp_path, monkeypatch):
    """An apply of many creates sizes the shards for what it will hold: a checkpoint writes the
    shards its new leads fall in, never all of them again because the shard count doubled."""
    from reconcile.store import statefiles

    reports = []
    real_write = statefiles.StateWriter.write
    monkeypatch.setattr(statefiles.StateWriter, "write",
                        lambda self, *a, **k: reports.append(real_write(self, *a, **k)) or reports[-1])
    todo = actions(20_000)
    ledger = Ledger(tmp_path / "s.json", State("l", 0, {}), monotonic=Clock(), checkpoint_interval=0.0,
                    emit=lambda event: None, expected_leads=len(todo))
    for index, action in enumerate(todo):
        ledger.record(index, action, recorded_lead(action, index + 1, "2026-01-01T00:00:00Z"))
        if index % 2_000 == 1_999:
            ledger.write()
    assert len(reports) == 10 and not any(report.resharded for report in reports)
    assert len(load_state(tmp_path / "s.json").leads) == 20_000


def test_a_lead_journaled_as_answered_is_not_encoded_again_for_the_state(tmp_path, monkeypatch):
    from reconcile.apply.batches import Batch
    from reconcile.store import statefiles
    from reconcile.store.journal import ResultEntry

    todo = actions(50)
    ledger = Ledger(tmp_path / "s.json", State("l", 0, {}), monotonic=Clock(), checkpoint_interval=0.0,
                    emit=lambda event: None, expected_leads=len(todo))
    ledger.open(dedup_enabled=True, started="2026-01-01T00:00:00Z", carried=())
    batch = Batch(number=1, wave=0, indexes=tuple(range(50)), actions=tuple(todo))
    leads = [recorded_lead(action, index + 1, "2026-01-01T00:00:00Z") for index, action in enumerate(todo)]
    ledger.answered(batch, [ResultEntry(a.identity, a.state_key, "CREATED", i + 1, None, lead)
                            for i, (a, lead) in enumerate(zip(todo, leads))])
    for index, (action, lead) in enumerate(zip(todo, leads)):
        ledger.record(index, action, lead)
    encoded = []
    real = statefiles.lead_line
    monkeypatch.setattr(statefiles, "lead_line", lambda key, lead: encoded.append(key) or real(key, lead))
    ledger.write()
    assert encoded == [], "the state's lines are the ones the journal wrote"
    assert load_state(tmp_path / "s.json").leads == {a.identity: lead for a, lead in zip(todo, leads)}


def test_a_call_prepared_while_the_sender_waits_is_journaled_as_sent_without_encoding_it_then(
        tmp_path, monkeypatch):
    from reconcile.apply import ledger as ledger_module
    from reconcile.apply.batches import Batch
    from reconcile.store.journal import journal_path

    todo = actions(20)
    journals = []
    for prepared in (False, True):
        state_path = tmp_path / f"{prepared}" / "s.json"
        state_path.parent.mkdir()
        ledger = Ledger(state_path, State("l", 0, {}), monotonic=Clock(), checkpoint_interval=0.0,
                        emit=lambda event: None)
        ledger.open(dedup_enabled=True, started="2026-01-01T00:00:00Z", carried=())
        batch = Batch(number=1, wave=0, indexes=tuple(range(20)), actions=tuple(todo))
        if prepared:
            ledger.prepare_sending(batch, True)
            monkeypatch.setattr(ledger_module, "journal_entries", lambda batch: pytest.fail("encoded again"))
        ledger.sending(batch, True)
        journals.append(journal_path(state_path).read_bytes())
    assert journals[0] == journals[1], "the same journal, byte for byte"


def test_a_checkpoint_due_while_calls_are_going_out_waits_for_a_pause_long_enough_to_hold_it(tmp_path):
    from reconcile.apply import ledger as ledger_module

    clock = Clock()
    ledger, written = ledger_every_5_s(tmp_path, clock)
    todo = actions(3)
    ledger.record(0, todo[0], recorded_lead(todo[0], 1, "2026-01-01T00:00:00Z"))
    clock.now += 6.0
    ledger.checkpoint(free_for=0.0)
    assert written == [], "due, but calls are ready to go: it waits"
    ledger.checkpoint(free_for=math.inf)
    assert len(written) == 1, "the first pause writes it"
    ledger._last_write_seconds = 2.0  # as a large state's write takes
    ledger.record(1, todo[1], recorded_lead(todo[1], 2, "2026-01-01T00:00:00Z"))
    clock.now += 6.0
    ledger.checkpoint(free_for=0.5)
    assert len(written) == 1, "the rate window opens in half a second: a 2 s write would hold its calls"
    ledger.checkpoint(free_for=3.5)
    assert len(written) == 2, "a 3.5 s wait for the window holds the write"
    ledger.record(2, todo[2], recorded_lead(todo[2], 3, "2026-01-01T00:00:00Z"))
    clock.now += 5.0 * ledger_module._BUSY_PATIENCE + 1
    ledger.checkpoint(free_for=0.0)
    assert len(written) == 3, "a sender that never pauses still gets its checkpoints, further apart"


