"""Envelopes built ahead in worker processes: the same bytes and the same state as building them here."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timezone

import pytest

from reconcile.apply import ApplyOptions, PlannedCalls, apply_plan, recover_state
from reconcile.core.model import Lead
from reconcile.core.planner import plan as make_plan
from reconcile.errors import Location
from reconcile.remote.soap import envelope as soap
from reconcile.remote.soap.envelope import EnvelopeInvalid, LeadRecord
from reconcile.store.state import load_state


def leads(n):
    return [Lead(location=Location("leads/x.yaml", i + 1), email=f"w{i:03d}@example.com",
                 attributes={"FirstName": f"F{i}", "Title": None, "Company": "Acme & <Sons>"})
            for i in range(n)]


def apply_through(workers, emulator, transport_for, recording_session, state_path, now):
    session = recording_session()
    transport = transport_for(emulator, session=session, prepare_workers=workers, clock=lambda: now)
    state, _ = recover_state(state_path)
    report = apply_plan(make_plan(leads(40), state), state, state_path, transport, batch_size=5, concurrency=1,
                        clock=lambda: now)
    workers_seen = len(multiprocessing.active_children())
    transport.close()
    return report, session.bodies, workers_seen


def test_envelopes_built_by_workers_are_the_bytes_and_state_of_the_serial_path(
        emulator_factory, transport_for, recording_session, tmp_path):
    now = datetime.now(timezone.utc).replace(microsecond=0)  # one timestamp: equal signatures
    serial_report, serial_bodies, serial_workers = apply_through(0, emulator_factory(), transport_for, recording_session,
                                                 tmp_path / "serial.state.json", now)
    pooled_report, pooled_bodies, pooled_workers = apply_through(2, emulator_factory(), transport_for, recording_session,
                                                 tmp_path / "pooled.state.json", now)

    assert (serial_workers, pooled_workers) == (0, 2)  # the second apply did build in workers
    assert len(serial_bodies) == 8
    assert pooled_bodies == serial_bodies
    assert pooled_report.created == serial_report.created
    serial_state = load_state(tmp_path / "serial.state.json")
    pooled_state = load_state(tmp_path / "pooled.state.json")
    assert pooled_state.leads == serial_state.leads
    assert len(pooled_state.leads) == 40
    assert not multiprocessing.active_children()  # close() reaped the workers


def test_calls_begun_while_the_plan_is_shown_are_sent_as_built_and_not_built_twice(
        emulator_factory, transport_for, recording_session, tmp_path):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    serial_report, serial_bodies, _ = apply_through(0, emulator_factory(), transport_for, recording_session,
                                                    tmp_path / "serial.state.json", now)
    emulator, session = emulator_factory(), recording_session()
    transport = transport_for(emulator, session=session, prepare_workers=2, clock=lambda: now)
    submitted = []
    real = transport.prepare_later
    transport.prepare_later = lambda records, dedup=True: submitted.append(records) or real(records, dedup)
    state, _ = recover_state(tmp_path / "begun.state.json")
    plan = make_plan(leads(40), state)
    options = ApplyOptions(batch_size=5, concurrency=1)
    calls = PlannedCalls.of(plan, transport, options)
    calls.start_building(transport)
    assert len(calls.building) == 8 and len(submitted) == 8 and session.bodies == []  # built, nothing sent
    for future in calls.building.values():
        future.result(timeout=60)
    report = apply_plan(plan, state, tmp_path / "begun.state.json", transport, options=options, calls=calls,
                        clock=lambda: now)
    transport.close()
    assert len(submitted) == 8, "the scheduler took up the calls already built"
    assert session.bodies == serial_bodies and report.created == serial_report.created
    with pytest.raises(ValueError):
        apply_plan(plan, state, tmp_path / "other.state.json", transport, options=ApplyOptions(batch_size=6),
                   calls=calls)


def test_an_envelope_a_worker_refuses_fails_as_it_would_here_and_is_not_sent(
        emulator, transport_for, recording_session):
    bad = [LeadRecord(email="a@example.com", foreign_sys_person_id="1", foreign_sys_type="NotAType")]
    with pytest.raises(EnvelopeInvalid) as here:
        transport_for(emulator).prepare(bad)
    session = recording_session()
    transport = transport_for(emulator, session=session, prepare_workers=1)
    with pytest.raises(EnvelopeInvalid) as there:
        transport.prepare_later(bad).result(timeout=60)
    assert there.value.message == here.value.message
    assert "ForeignSysType" in there.value.message or "NotAType" in there.value.message
    assert session.bodies == []


def test_a_worker_built_envelope_passed_the_schema_and_carries_a_valid_signature(emulator, transport_for):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    transport = transport_for(emulator, prepare_workers=1, clock=lambda: now)
    prepared = transport.prepare_later([LeadRecord(email="b@example.com")]).result(timeout=60)
    stamp = soap.w3c_timestamp(now)
    expected = soap.sign(emulator.encryption_key, stamp, emulator.user_id)
    assert f"<requestSignature>{expected}</requestSignature>".encode() in prepared.body
    assert [s.status for s in transport.send(prepared)] == ["CREATED"]


def test_envelopes_are_built_when_sending_if_the_workers_died(emulator, transport_for, lead_factory, tmp_path):
    import os
    import signal
    import time

    transport = transport_for(emulator, prepare_workers=1)
    transport.prepare_later([LeadRecord(email="first@example.com")]).result(timeout=60)
    for child in multiprocessing.active_children():
        os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    state, _ = recover_state(tmp_path / "s.json")
    report = apply_plan(make_plan(lead_factory(20), state), state, tmp_path / "s.json", transport, batch_size=4)
    assert len(report.created) == 20
    assert len(emulator.leads()) == 20


_KILLED_APPLY = """
import multiprocessing, sys, time
from reconcile.remote.soap.envelope import LeadRecord
from reconcile.remote.soap.transport import Credentials, SoapTransport

if __name__ == "__main__":
    transport = SoapTransport(Credentials("http://127.0.0.1:9/soap", "u", "k"), prepare_workers=2)
    started = [transport.prepare_later([LeadRecord(email=f"{i}@example.com")]) for i in range(4)]
    for future in started:
        future.result(timeout=60)
    print(" ".join(str(child.pid) for child in multiprocessing.active_children()), flush=True)
    time.sleep(600)
"""


def test_workers_leave_with_an_applying_process_killed_by_sigkill(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "killed_apply.py"
    script.write_text(_KILLED_APPLY)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pids = [int(pid) for pid in process.stdout.readline().split()]
    assert pids
    process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=30)  # would wait for workers holding the pipes open
    deadline = time.monotonic() + 30
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and
                 not open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"]
    assert alive == []
