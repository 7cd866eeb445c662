"""applier.py against the emulator on loopback, when calls succeed: the records it sends (creates with
the declared keys and every attribute, updates of known leads by ID with only the changes), batches
of at most the batch size never holding one lead twice, the limits on batch size and concurrency,
and the write-back: the example flow (create, then nothing, then one attribute), failed records
reported and not recorded (exit 5), state-only changes needing no call, a deterministic sorted state
from concurrent batches, a stale plan refused, and checkpoints during long applies.
"""

from __future__ import annotations

import json

import pytest

from reconcile.apply import (BatchAnswered, BatchSent, RecordsFailed, StateWritten, apply_plan, plan_batches,
                             record_for)
from reconcile.errors import ExitStatus, PartialApplyError, StalePlanError, UsageError
from reconcile.store.journal import journal_path
from reconcile.core.model import CREATE, UPDATE, State, StateLead
from reconcile.core.planner import plan as make_plan
from reconcile.remote.soap.envelope import LeadRecord
from reconcile.store.state import load_state, shard_dir_for, write_state
from applier_helpers import lead, run_apply, sent_records

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
