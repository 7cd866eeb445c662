"""applier.py against the emulator on loopback: records, batching, write-back, faults, recovery."""

from __future__ import annotations

import json
import threading
import shutil
from datetime import datetime, timezone

import pytest

from reconcile.emulator import soap_api
from reconcile.apply import (ApplyOptions, BatchAnswered, BatchSent, JournalRecovered, RecordsFailed,
                               StateWritten, apply_plan, plan_batches, record_for, recover_state)
from reconcile.errors import (ExitStatus, Interrupted, Location, PartialApplyError, RemoteError, ResponseError,
                              StalePlanError, UsageError)
from reconcile.remote.soap.fault import SoapFault
from reconcile.store.journal import journal_path
from reconcile.core.model import CREATE, UPDATE, Lead, State, StateLead
from reconcile.core.planner import plan as make_plan
from reconcile.remote.soap.envelope import LeadRecord, SyncStatus
from reconcile.store.state import load_state, shard_dir_for, write_state
from reconcile.remote.soap.transport import QuotaExhausted, RetryPolicy


def lead(n=1, **fields):
    attributes = fields.pop("attributes", {})
    return Lead(location=Location("leads/x.yaml", n), attributes=attributes, **fields)


def run_apply(leads, state_path, transport, **kwargs):
    """What `reconcile apply` does under its lock: recover, plan against the state, apply."""
    state, _ = recover_state(state_path)
    return apply_plan(make_plan(leads, state), state, state_path, transport, **kwargs)


def sent_records(session):
    return [list(soap_api.parse_request(body).records) for body in session.bodies]


# -- records --------------------------------------------------------------------------------------


def _action(desired, state=None):
    state = state or State(lineage="l", serial=1, leads={})
    (action,) = [a for a in make_plan([desired], state).actions if a.kind in (CREATE, UPDATE)]
    return action


def test_record_for_creates_carries_the_declared_keys_and_every_attribute():
    by_email = record_for(_action(lead(email="a@example.com", attributes={"FirstName": "A", "Title": None})))
    assert by_email == LeadRecord(email="a@example.com", attributes=(("FirstName", "A"), ("Title", None)))
    by_fsp = record_for(_action(lead(foreign_sys_person_id="77", foreign_sys_type="SFDC", email="j@example.com",
                                     attributes={"FirstName": "J"})))
    assert by_fsp == LeadRecord(email="j@example.com", foreign_sys_person_id="77", foreign_sys_type="SFDC",
                                attributes=(("FirstName", "J"), ("Email", "j@example.com")))
    by_fsp_default = record_for(_action(lead(foreign_sys_person_id="78")))
    assert by_fsp_default == LeadRecord(foreign_sys_person_id="78", foreign_sys_type="CUSTOM")
    by_id = record_for(_action(lead(lead_id=42, email="c@example.com", attributes={"Title": "CTO"})))
    assert by_id == LeadRecord(lead_id=42, attributes=(("Title", "CTO"), ("Email", "c@example.com")))


def _recorded(**fields):
    base = dict(lead_id=1001, email="a@example.com", foreign_sys_person_id=None, foreign_sys_type=None,
                attributes={"FirstName": "A", "Title": "T"}, synced_at="2026-01-01T00:00:00Z")
    base.update(fields)
    return StateLead(**base)


def test_record_for_updates_of_known_leads_are_keyed_by_id_with_only_the_changes():
    state = State(lineage="l", serial=1, leads={"email:a@example.com": _recorded()})
    changed = record_for(_action(lead(email="a@example.com", attributes={"FirstName": "B", "Title": "T"}), state))
    assert changed == LeadRecord(lead_id=1001, attributes=(("FirstName", "B"),))

    state = State(lineage="l", serial=1, leads={"fsp:SFDC:9": _recorded(foreign_sys_person_id="9",
                                                                        foreign_sys_type="SFDC")})
    new_email = record_for(_action(lead(foreign_sys_person_id="9", foreign_sys_type="SFDC", email="new@example.com",
                                        attributes={"FirstName": "A", "Title": "T"}), state))
    assert new_email == LeadRecord(lead_id=1001, attributes=(("Email", "new@example.com"),))

    state = State(lineage="l", serial=1, leads={"email:a@example.com": _recorded()})
    new_fsp = record_for(_action(lead(lead_id=1001, email="a@example.com", foreign_sys_person_id="X1",
                                      attributes={"FirstName": "A", "Title": "T"}), state))
    assert new_fsp == LeadRecord(lead_id=1001, foreign_sys_person_id="X1", foreign_sys_type="CUSTOM")


def test_record_for_update_without_a_known_id_uses_the_declared_keys():
    state = State(lineage="l", serial=1, leads={"email:a@example.com": _recorded(lead_id=None)})
    record = record_for(_action(lead(email="a@example.com", attributes={"FirstName": "A", "Title": None}), state))
    assert record == LeadRecord(email="a@example.com", attributes=(("Title", None),))


def test_batches_never_hold_one_lead_twice_and_respect_the_size():
    leads = [lead(i, email=f"u{i}@example.com") for i in range(7)]
    leads.append(lead(8, foreign_sys_person_id="F", email="u1@example.com"))
    plan = make_plan(leads, State(lineage="l", serial=0, leads={}))
    batches = plan_batches(plan, batch_size=3)
    assert [len(b.records) for b in batches] == [3, 3, 2]
    assert all(len({a.identity for a in b.actions}) == len(b.actions) for b in batches)
    dup = make_plan([lead(1, foreign_sys_person_id="F", email="a@example.com"),
                     lead(2, lead_id=5, foreign_sys_person_id="F")], State(lineage="l", serial=0, leads={}))
    waves = plan_batches(dup, batch_size=300)
    assert [b.wave for b in waves] == [0, 1]  # same foreign ID: never in one call, sent one after the other


@pytest.mark.parametrize("options", [dict(batch_size=301), dict(batch_size=0), dict(concurrency=11),
                                     dict(concurrency=0)])
def test_batch_size_and_concurrency_limits_are_usage_errors(options, tmp_path):
    with pytest.raises(UsageError) as info:
        apply_plan(make_plan([], State("l", 0, {})), State("l", 0, {}), tmp_path / "s.json", None, **options)
    assert info.value.exit_status == ExitStatus.USAGE


# -- the example flow -----------------------------------------------------------------------------


def test_example_flow_create_then_nothing_then_one_attribute(emulator, transport_for, recording_session,
                                                           tmp_path, state_matches_emulator):
    state_path = tmp_path / "reconcile.state.json"
    session = recording_session()
    transport = transport_for(emulator, session=session)
    existing = transport.send([LeadRecord(email="cto@example.com")])[0].lead_id
    desired = [
        lead(1, email="em1000@etestd.marketo.net", attributes={"Company": "Marketo1000", "Phone": "650-555-1000"}),
        lead(2, foreign_sys_person_id="1224191", foreign_sys_type="SFDC", email="jane@example.com",
             attributes={"FirstName": "Jane", "Title": None}),
        lead(3, lead_id=existing, attributes={"Title": "CTO"}),
    ]
    events = []
    report = run_apply(desired, state_path, transport, on_event=events.append)
    assert sorted(report.created) == ["email:em1000@etestd.marketo.net", "fsp:SFDC:1224191"]
    assert report.adopted == (f"id:{existing}",) and report.updated == () and report.failed == ()
    assert report.calls == 1 and report.state_serial == 1
    assert any(isinstance(e, BatchSent) for e in events) and any(isinstance(e, BatchAnswered) for e in events)
    state = load_state(state_path)
    assert all(record.lead_id for record in state.leads.values())
    state_matches_emulator(state, emulator)
    assert not journal_path(state_path).exists()

    assert not make_plan(desired, state).has_changes  # the second plan is empty
    desired[1] = lead(2, foreign_sys_person_id="1224191", foreign_sys_type="SFDC", email="jane@example.com",
                      attributes={"FirstName": "Janet", "Title": None})
    before = len(session.bodies)
    report = run_apply(desired, state_path, transport)
    assert report.updated == ("fsp:SFDC:1224191",) and report.calls == 1
    assert len(session.bodies) == before + 1
    (records,) = sent_records(session)[before:]
    jane_id = state.leads["fsp:SFDC:1224191"].lead_id
    assert records == [LeadRecord(lead_id=jane_id, attributes=(("FirstName", "Janet"),))]
    state = load_state(state_path)
    assert state.serial == 2 and state.leads["fsp:SFDC:1224191"].attributes["FirstName"] == "Janet"
    state_matches_emulator(state, emulator)
    assert not make_plan(desired, state).has_changes


@pytest.mark.parametrize("count,calls", [(300, 1), (301, 2), (601, 3)])
def test_batches_of_300(count, calls, emulator, transport_for, lead_factory, tmp_path, state_matches_emulator):
    state_path = tmp_path / "state.json"
    report = run_apply(lead_factory(count), state_path, transport_for(emulator))
    assert len(emulator.calls) == calls and report.calls == calls
    assert max(c.records for c in emulator.calls) <= 300
    assert len(report.created) == count
    state_matches_emulator(load_state(state_path), emulator)


def test_failed_records_are_reported_not_recorded_and_exit_5(emulator, transport_for, lead_factory, tmp_path,
                                                              state_matches_emulator):
    state_path = tmp_path / "state.json"
    desired = lead_factory(5)
    desired[1] = lead(2, email="bad1@example.com", attributes={"NoSuchField": "x"})
    desired[3] = lead(4, email="bad2@example.com", attributes={"FirstName": "ok", "Bogus": "y"})
    with pytest.raises(PartialApplyError) as info:
        run_apply(desired, state_path, transport_for(emulator), batch_size=2)
    error = info.value
    assert isinstance(error, RecordsFailed) and error.exit_status == ExitStatus.PARTIAL_APPLY
    assert dict(error.failed) == {"email:bad1@example.com (leads/x.yaml:2)": "20105 - Lead Attribute Bad: NoSuchField",
                                  "email:bad2@example.com (leads/x.yaml:4)": "20105 - Lead Attribute Bad: Bogus"}
    assert any("NoSuchField" in line for line in error.lines())
    assert len(error.report.created) == 3
    state = load_state(state_path)
    assert sorted(state.leads) == ["email:u0000@example.com", "email:u0002@example.com", "email:u0004@example.com"]
    state_matches_emulator(state, emulator)
    assert make_plan(desired, state).summary["create"] == 2


def test_state_only_updates_and_forgotten_orphans_need_no_call(emulator, transport_for, tmp_path):
    state_path = tmp_path / "state.json"
    transport = transport_for(emulator)
    desired = [lead(1, email="a@example.com", attributes={"FirstName": "A", "Title": "T"}),
               lead(2, email="b@example.com")]
    run_apply(desired, state_path, transport)
    calls = len(emulator.calls)
    trimmed = [lead(1, email="a@example.com", attributes={"FirstName": "A"})]  # Title unmanaged, b orphaned
    report = run_apply(trimmed, state_path, transport)
    assert report.state_only == ("email:a@example.com",) and report.forgotten == ()
    assert len(emulator.calls) == calls
    state = load_state(state_path)
    assert state.leads["email:a@example.com"].attributes == {"FirstName": "A"}
    assert "email:b@example.com" in state.leads
    report = run_apply(trimmed, state_path, transport, forget_orphans=True)
    assert report.forgotten == ("email:b@example.com",) and len(emulator.calls) == calls
    assert sorted(load_state(state_path).leads) == ["email:a@example.com"]
    assert load_state(state_path).serial == 3


def test_concurrent_batches_give_a_deterministic_sorted_state(emulator, transport_for, lead_factory, tmp_path,
                                                              state_matches_emulator):
    state_path = tmp_path / "state.json"
    emulator.faults.latency = 0.01
    report = run_apply(lead_factory(60), state_path, transport_for(emulator), batch_size=3, concurrency=8)
    assert len(report.created) == 60 and report.calls == 20
    state = load_state(state_path)
    lines = [line for shard in sorted(shard_dir_for(state_path).glob("*.jsonl"))
             for line in shard.read_text().splitlines()]
    assert len(lines) == 60
    for shard in shard_dir_for(state_path).glob("*.jsonl"):
        keys = [next(iter(json.loads(line))) for line in shard.read_text().splitlines()]
        assert keys == sorted(keys)
    state_matches_emulator(state, emulator)


@pytest.mark.parametrize("now_on_disk", [lambda s: State(s.lineage, s.serial + 1, s.leads),
                                         lambda s: State("another-lineage", s.serial, s.leads)],
                         ids=["a later serial", "another lineage"])
def test_a_plan_made_from_another_state_is_stale(emulator, transport_for, lead_factory, tmp_path, now_on_disk):
    state_path = tmp_path / "state.json"
    transport = transport_for(emulator)
    run_apply(lead_factory(2), state_path, transport)
    state = load_state(state_path)
    plan = make_plan(lead_factory(3), state)
    write_state(state_path, now_on_disk(state))
    with pytest.raises(StalePlanError):
        apply_plan(plan, state, state_path, transport)


def test_checkpoints_write_the_state_during_long_applies(emulator, transport_for, lead_factory, tmp_path):
    state_path = tmp_path / "state.json"
    events = []
    ticks = iter(range(0, 10_000, 10))  # every reading of the clock is 10 s later
    report = run_apply(lead_factory(12), state_path, transport_for(emulator), batch_size=3, concurrency=1,
                       on_event=events.append, monotonic=lambda: float(next(ticks)))
    serials = [e.serial for e in events if isinstance(e, StateWritten)]
    assert serials == sorted(serials) and len(serials) >= 2 and serials[-1] == report.state_serial
    assert load_state(state_path).serial == report.state_serial


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


# -- resilience against transient faults ----------------------------------------------------------


@pytest.mark.parametrize("faults", [dict(fail_rate=0.15, fail_code="20011", drop_rate=0.15, seed=3),
                                    dict(fail_rate=0.15, fail_http_status=502, drop_rate=0.15, seed=11),
                                    dict(fail_rate=0.2, fail_code="20024", drop_rate=0.1, seed=5)])
def test_apply_converges_under_30_percent_transient_faults(faults, emulator, transport_for, lead_factory,
                                                           tmp_path, state_matches_emulator):
    state_path = tmp_path / "state.json"
    emulator.faults.update(**faults)
    desired = lead_factory(150)
    transport = transport_for(emulator, retry=RetryPolicy(max_attempts=8, base_delay=0.001, max_delay=0.002))
    for _ in range(6):
        try:
            run_apply(desired, state_path, transport, batch_size=5, concurrency=4)
            break
        except RemoteError:
            continue  # retries exhausted for some batch: a plain re-run finishes the job
    else:
        pytest.fail("apply did not converge")
    assert sum(1 for c in emulator.calls if c.outcome in ("fault", "dropped", "http_error")) >= 5
    state = load_state(state_path)
    assert len(state.leads) == 150 and len(emulator.leads()) == 150
    state_matches_emulator(state, emulator)
    assert not make_plan(desired, state).has_changes
    assert not journal_path(state_path).exists()


def test_no_dedup_commit_then_drop_never_duplicates_and_explains(emulator, transport_for, lead_factory,
                                                                 tmp_path, state_matches_emulator):
    state_path = tmp_path / "state.json"
    desired = lead_factory(15)
    emulator.faults.update(drop_every=2)  # the second call is applied, then its answer is lost
    transport = transport_for(emulator)
    with pytest.raises(RemoteError) as info:
        run_apply(desired, state_path, transport, batch_size=5, concurrency=1, dedup_enabled=False)
    message = str(info.value)
    assert info.value.exit_status == ExitStatus.REMOTE_FAILURE
    maybe = [f"u{i:04d}@example.com" for i in range(5, 10)]
    assert "5 lead(s) may now exist in Marketo" in message and "declare its leadId" in message
    for email in maybe:
        assert email in message
    for other in ("u0004@example.com", "u0010@example.com"):
        assert other not in message
    assert len(emulator.calls) == 2 and len(emulator.leads()) == 10
    assert len(load_state(state_path).leads) == 5

    emulator.faults.clear()
    calls = len(emulator.calls)
    with pytest.raises(RemoteError, match="may now exist in Marketo") as again:  # still refused: nothing sent
        run_apply(desired, state_path, transport, batch_size=5, dedup_enabled=False)
    assert len(emulator.calls) == calls and "u0007@example.com" in str(again.value)

    report = run_apply(desired, state_path, transport, batch_size=5, dedup_enabled=True)  # resolved by email
    assert sorted(report.updated) == sorted(f"email:{e}" for e in maybe) and len(report.created) == 5
    state = load_state(state_path)
    assert len(state.leads) == 15 and len(emulator.leads()) == 15
    state_matches_emulator(state, emulator)
    assert not journal_path(state_path).exists()


def test_no_dedup_resolved_by_declaring_the_lead_id(emulator, transport_for, lead_factory, tmp_path,
                                                    state_matches_emulator):
    state_path = tmp_path / "state.json"
    desired = lead_factory(2)
    emulator.faults.update(drop_every=1)
    transport = transport_for(emulator)
    with pytest.raises(RemoteError):
        run_apply(desired, state_path, transport, dedup_enabled=False)
    emulator.faults.clear()
    ids = {lead["email"]: lead["id"] for lead in emulator.leads()}
    fixed = [lead(i + 1, lead_id=ids[d.email], email=d.email, attributes=dict(d.attributes))
             for i, d in enumerate(desired)]
    report = run_apply(fixed, state_path, transport, dedup_enabled=False)
    assert len(report.adopted) == 2 and len(emulator.leads()) == 2
    state_matches_emulator(load_state(state_path), emulator)
    assert not journal_path(state_path).exists()


def test_daily_quota_mid_apply_then_resume_after_the_reset(emulator_factory, transport_for, lead_factory,
                                                           tmp_path, state_matches_emulator):
    now = [datetime(2026, 1, 15, 20, 0, tzinfo=timezone.utc)]  # 14:00 CST
    clock = lambda: now[0]  # noqa: E731
    emulator = emulator_factory(daily_quota=7, clock=clock)
    state_path = tmp_path / "state.json"
    desired = lead_factory(50)
    transport = transport_for(emulator, clock=clock)
    with pytest.raises(QuotaExhausted) as info:
        run_apply(desired, state_path, transport, batch_size=5, concurrency=1, clock=clock)
    assert "2026-01-16 00:00 CST" in str(info.value) and info.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert len(info.value.report.created) == 35
    assert len(load_state(state_path).leads) == 35

    now[0] = datetime(2026, 1, 16, 6, 0, 1, tzinfo=timezone.utc)  # just after midnight in Chicago
    report = run_apply(desired, state_path, transport, batch_size=5, concurrency=1, clock=clock)
    assert len(report.created) == 15 and report.updated == ()
    ok = [c for c in emulator.calls if c.outcome == "ok"]
    assert len(ok) == 10 and sum(c.records for c in ok) == 50  # nothing recorded was sent twice
    state = load_state(state_path)
    state_matches_emulator(state, emulator)
    assert {lead.synced_at[:10] for lead in state.leads.values()} == {"2026-01-15", "2026-01-16"}


def test_the_journal_never_holds_secrets(emulator, transport_for, lead_factory, tmp_path):
    state_path = tmp_path / "state.json"
    seen = []

    class Peek:
        def __init__(self, inner):
            self.inner, self.stats, self.prepare = inner, inner.stats, inner.prepare

        def send(self, call, dedup_enabled=True, **kwargs):
            seen.append(journal_path(state_path).read_text())
            return self.inner.send(call, dedup_enabled, **kwargs)

    run_apply(lead_factory(6), state_path, Peek(transport_for(emulator)), batch_size=2, concurrency=1)
    text = "\n".join(seen)
    assert emulator.encryption_key not in text and "Signature" not in text and "requestTimestamp" not in text
    lines = [json.loads(line) for line in seen[-1].splitlines()]
    assert [line["type"] for line in lines] == ["begin", "inflight", "result", "inflight", "result", "inflight"]
    result = lines[2]["results"][0]
    line = json.loads(result["line"])  # the lead as the state will hold it: keyed by email, then its Marketo ID
    assert line["leadId"] == result["leadId"] and "email:u0000@example.com" in line


def test_unknown_outcomes_of_leads_no_longer_declared_are_kept_and_warned_about(emulator, transport_for,
                                                                                 lead_factory, tmp_path):
    state_path = tmp_path / "state.json"
    emulator.faults.update(drop_every=1)
    transport = transport_for(emulator)
    with pytest.raises(RemoteError):
        run_apply(lead_factory(2), state_path, transport, dedup_enabled=False)
    emulator.faults.clear()
    report = run_apply(lead_factory(1, start=5), state_path, transport, dedup_enabled=False)
    assert len(report.created) == 1
    assert [u.identity for u in report.unknown] == ["email:u0000@example.com", "email:u0001@example.com"]
    assert report.warnings and "no longer declared" in report.warnings[0]
    assert "u0001@example.com" in report.warnings[0]
    assert journal_path(state_path).exists()  # still remembered for a later apply
    _, recovery = recover_state(state_path)
    assert len(recovery.unknown) == 2 and not recovery.activity
