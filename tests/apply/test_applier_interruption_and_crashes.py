"""applier.py when an apply is cut short: a whole-call fault stops after recording the answered
batches, a stop request collects the answers in flight and raises Interrupted, a status count that
does not match is never guessed, and after a crash the journal's answers are recorded, the batches
with no answer listed, and a plan made before an unrecovered crash refused.
"""

from __future__ import annotations

import threading
import shutil

import pytest

from reconcile.apply import ApplyOptions, BatchSent, JournalRecovered, apply_plan, recover_state
from reconcile.errors import ExitStatus, Interrupted, ResponseError, StalePlanError
from reconcile.remote.soap.fault import SoapFault
from reconcile.store.journal import journal_path
from reconcile.core.planner import plan as make_plan
from reconcile.remote.soap.envelope import SyncStatus
from reconcile.store.state import load_state, shard_dir_for
from applier_helpers import run_apply

# -- whole-call failures, interruption ------------------------------------------------------------


def test_a_whole_call_fault_stops_after_recording_the_answered_batches(emulator, transport_for, lead_factory,
                                                                      tmp_path, state_matches_emulator):
    state_path = tmp_path / "state.json"
    emulator.faults.update(fail_every=3, fail_code="20014")
    with pytest.raises(SoapFault) as info:
        run_apply(lead_factory(20), state_path, transport_for(emulator), batch_size=5, concurrency=1)
    assert info.value.code == "20014" and info.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert "10 lead(s) applied" in str(info.value)
    report = info.value.report
    assert len(report.created) == 10 and len(report.not_sent) == 10 and report.unknown == ()
    assert len(emulator.calls) == 3
    state_matches_emulator(load_state(state_path), emulator)
    assert not journal_path(state_path).exists()


def test_stop_request_collects_answers_in_flight_then_raises_interrupted(emulator, transport_for,
                                                                         lead_factory, tmp_path,
                                                                         state_matches_emulator):
    state_path = tmp_path / "state.json"
    emulator.faults.latency = 0.2
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, BatchSent) and event.batch == 2:
            stop.set()

    with pytest.raises(Interrupted) as info:
        run_apply(lead_factory(30), state_path, transport_for(emulator), batch_size=5, concurrency=2,
                  on_event=on_event, stop=stop)
    assert info.value.exit_status == ExitStatus.INTERRUPTED
    report = info.value.report
    assert len(report.created) == 10 and len(report.not_sent) == 20
    state = load_state(state_path)
    assert len(state.leads) == 10
    state_matches_emulator(state, emulator)
    emulator.faults.latency = 0.0
    report = run_apply(lead_factory(30), state_path, transport_for(emulator))
    assert len(report.created) == 20
    state_matches_emulator(load_state(state_path), emulator)


class _WrongCount:
    stats = None

    def send(self, records, dedup_enabled=True, **kwargs):
        return [SyncStatus(1, "CREATED")] * (len(records) - 1)


def test_a_status_count_mismatch_is_never_guessed(lead_factory, tmp_path):
    state_path = tmp_path / "state.json"
    with pytest.raises(ResponseError, match="cannot be matched"):
        run_apply(lead_factory(3), state_path, _WrongCount())
    assert not state_path.exists()
    state, report = recover_state(state_path)  # the batch is listed as unknown outcome, carried on
    assert report.unknown and len(report.unknown) == 3 and state.leads == {}


# -- journal recovery after a crash ---------------------------------------------------------------


class _CrashSnapshot:
    """Wraps a transport; just before batch `at` is sent, copies the state and journal files as a
    kill -9 at that moment would leave them."""

    def __init__(self, inner, state_path, at):
        self.inner, self.state_path, self.at, self.count = inner, state_path, at, 0
        self.snapshot = None
        self.stats = inner.stats
        self.prepare = inner.prepare

    def send(self, call, dedup_enabled=True, **kwargs):
        self.count += 1
        if self.count == self.at:
            journal = journal_path(self.state_path)
            shards = shard_dir_for(self.state_path)
            self.snapshot = (self.state_path.read_bytes() if self.state_path.exists() else None,
                             journal.read_bytes(),
                             {p.name: p.read_bytes() for p in shards.iterdir()} if shards.is_dir() else {})
        return self.inner.send(call, dedup_enabled, **kwargs)

    def restore(self):
        state, journal, shards = self.snapshot
        directory = shard_dir_for(self.state_path)
        shutil.rmtree(directory, ignore_errors=True)
        for name, data in shards.items():
            directory.mkdir(exist_ok=True)
            (directory / name).write_bytes(data)
        if state is None:
            self.state_path.unlink(missing_ok=True)
        else:
            self.state_path.write_bytes(state)
        journal_path(self.state_path).write_bytes(journal)


@pytest.mark.parametrize("checkpoint", [1000.0, 0.0])
def test_recovery_after_a_crash_records_answers_and_lists_unknown_batches(
        checkpoint, emulator, transport_for, lead_factory, tmp_path, state_matches_emulator):
    state_path = tmp_path / "state.json"
    desired = lead_factory(20)
    crash = _CrashSnapshot(transport_for(emulator), state_path, at=3)
    state = load_state(state_path)
    options = ApplyOptions(batch_size=5, concurrency=1, checkpoint_interval=checkpoint)
    apply_plan(make_plan(desired, state), state, state_path, crash, options=options)
    lineage = load_state(state_path).lineage
    crash.restore()  # the disk as the crash left it: batches 1-2 answered, batch 3 in flight

    events = []
    state, report = recover_state(state_path, on_event=events.append)
    assert isinstance(events[0], JournalRecovered) and events[0].report is report
    assert report.found and report.batches_answered == 2 and report.batches_unknown == 1
    assert len(report.recorded) == 10 and state.lineage == lineage
    assert sorted(u.identity for u in report.unknown) == [f"email:u{i:04d}@example.com" for i in range(10, 15)]
    assert "outcome unknown" in report.summary()
    assert len(load_state(state_path).leads) == 10
    assert journal_path(state_path).exists()  # only the unknown outcomes are carried on

    report = apply_plan(make_plan(desired, state), state, state_path, transport_for(emulator))
    assert len(report.created) + len(report.updated) == 10  # resent with dedup: matched by email
    final = load_state(state_path)
    assert len(final.leads) == 20 and final.lineage == lineage
    state_matches_emulator(final, emulator)
    assert not journal_path(state_path).exists()


def test_apply_refuses_a_plan_made_before_an_unrecovered_crash(emulator, transport_for, lead_factory, tmp_path):
    state_path = tmp_path / "state.json"
    desired = lead_factory(10)
    crash = _CrashSnapshot(transport_for(emulator), state_path, at=2)
    state = load_state(state_path)
    apply_plan(make_plan(desired, state), state, state_path, crash, batch_size=5, concurrency=1)
    crash.restore()
    stale = load_state(state_path)  # the caller skipped recover_state
    events = []
    with pytest.raises(StalePlanError):
        apply_plan(make_plan(desired, stale), stale, state_path, transport_for(emulator), on_event=events.append)
    assert isinstance(events[0], JournalRecovered)
    assert len(load_state(state_path).leads) == 5  # the recovery itself was kept


# -- a state write cut short, with no journal -----------------------------------------------------


def _write_cut_after_its_commit_record(monkeypatch, state_path, state) -> None:
    """A state write (say of `state rm`) killed once its commit record is on disk, before any shard."""
    from reconcile.store import statefiles
    from reconcile.store.state import write_state

    real = statefiles.StateWriter._put

    def put(self, path, data, report, **kwargs):
        if path.name != statefiles.PENDING_NAME:
            raise SystemExit("kill -9 after the commit record")
        return real(self, path, data, report, **kwargs)

    monkeypatch.setattr(statefiles.StateWriter, "_put", put)
    with pytest.raises(SystemExit):
        write_state(state_path, state)
    monkeypatch.setattr(statefiles.StateWriter, "_put", real)


def _one_lead_forgotten(state):
    from reconcile.core.model import State

    return State(state.lineage, state.serial + 1, dict(list(state.leads.items())[:1]))


def test_a_plan_made_from_the_unfinished_write_applies(emulator, transport_for, lead_factory, tmp_path,
                                                       monkeypatch):
    state_path = tmp_path / "state.json"
    transport = transport_for(emulator)
    run_apply(lead_factory(2), state_path, transport)
    _write_cut_after_its_commit_record(monkeypatch, state_path, _one_lead_forgotten(load_state(state_path)))
    current, _ = recover_state(state_path)  # what the record says: the write's state
    apply_plan(make_plan(lead_factory(3), current), current, state_path, transport)
    assert len(load_state(state_path).leads) == 3


def test_a_plan_made_before_the_unfinished_write_is_stale(emulator, transport_for, lead_factory, tmp_path,
                                                          monkeypatch):
    state_path = tmp_path / "state.json"
    transport = transport_for(emulator)
    run_apply(lead_factory(2), state_path, transport)
    before = load_state(state_path)
    planned = make_plan(lead_factory(3), before)
    _write_cut_after_its_commit_record(monkeypatch, state_path, _one_lead_forgotten(before))
    with pytest.raises(StalePlanError):
        apply_plan(planned, before, state_path, transport)


# -- a stop request during the list and delete calls ------------------------------------------------


def test_a_stop_request_during_list_calls_sends_no_further_call_and_records_the_answered(
        emulator, transport_for, tmp_path):
    from reconcile.apply.memberships import ListTarget, Memberships
    from reconcile.core.model import Lead, State, StateLead
    from reconcile.errors import Location
    from reconcile.remote.membership import LeadOutcome, Outcome
    from reconcile.store.state import write_state

    ctrl_c, sent = threading.Event(), []

    class Calls:
        max_ids = 1

        def add(self, target, lead_ids, *, stop=None):
            sent.append(list(lead_ids))
            ctrl_c.set()  # while this call is in flight
            return [LeadOutcome(lead_id, Outcome.ADDED) for lead_id in lead_ids]

        remove = add

    state_path = tmp_path / "state.json"
    records = {f"email:u{n}@example.com": StateLead(100 + n, f"u{n}@example.com", None, None, {}, None)
               for n in range(5)}
    write_state(state_path, State("lineage", 1, records))
    state = load_state(state_path)
    leads = [Lead(Location("leads/p.yaml", n), email=f"u{n}@example.com", lists=("VIP",)) for n in range(5)]
    memberships = Memberships(calls=Calls(), lists={"VIP": ListTarget(7, "VIP")}, concurrency=1)
    with pytest.raises(Interrupted) as info:
        apply_plan(make_plan(leads, state), state, state_path, transport_for(emulator), stop=ctrl_c,
                   memberships=memberships)
    assert len(sent) == 1 and info.value.report.list_added == 1
    assert sum(1 for lead in load_state(state_path).leads.values() if lead.lists) == 1
