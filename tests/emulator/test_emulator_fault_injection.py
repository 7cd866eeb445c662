"""Faults injected into the Marketo SOAP emulator: every nth call or a seeded rate faults and applies
nothing, an injected HTTP error is plain (not SOAP), injected faults come after authentication,
commit-then-drop applies and persists but answers nothing, latency applies and changes while running,
stopping during a slow call applies nothing, and the fault settings are validated.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from reconcile.emulator import Faults
from reconcile.remote.soap.fault import SoapFault
from soap_emulator_helpers import R, envelope, one_lead_outcomes, persisted, post, sync, sync_fault

# --------------------------------------------------------------------------------------------------
# Fault injection


def test_fail_every_nth_call_faults_and_applies_nothing(emulator):
    emulator.faults.update(fail_every=3, fail_code="20011")
    outcomes = one_lead_outcomes(emulator, [f"f{i}@example.com" for i in range(6)])
    assert outcomes == ["CREATED", "CREATED", "20011", "CREATED", "CREATED", "20011"]
    assert [lead["email"] for lead in emulator.leads()] == [f"f{i}@example.com" for i in (0, 1, 3, 4)]


def test_fail_rate_is_seeded_and_deterministic(emulator_factory):
    def pattern(emu):
        out = []
        for i in range(12):
            try:
                sync(emu, [R(email=f"p{i}@example.com")])
                out.append(True)
            except SoapFault as fault:
                assert fault.code == "20013"
                out.append(False)
        return out

    first = emulator_factory(faults=Faults(fail_rate=0.5, fail_code="20013", seed=7))
    second = emulator_factory(faults=Faults(fail_rate=0.5, fail_code="20013", seed=7))
    a, b = pattern(first), pattern(second)
    assert a == b and True in a and False in a
    assert len(first.leads()) == a.count(True)


def test_injected_http_error_is_plain_non_soap(emulator):
    emulator.faults.update(fail_every=1, fail_http_status=503)
    response = post(emulator, envelope(emulator, [R(email="a@example.com")]))
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "Envelope" not in response.text
    assert emulator.leads() == []
    assert emulator.calls[-1].outcome == "http_error"


def test_injected_faults_come_after_auth(emulator):
    emulator.faults.fail_every = 1
    assert sync_fault(emulator, [R(email="a@example.com")], key="wrong") == "20014"
    assert sync_fault(emulator, [R(email="a@example.com")]) == "20011"


def test_commit_then_drop_applies_and_persists_but_sends_nothing(tmp_path, emulator_factory):
    db = tmp_path / "emulator.json"
    emu = emulator_factory(db_path=db, faults=Faults(drop_every=2))
    assert sync(emu, [R(email="a@example.com")])[0].status == "CREATED"
    with pytest.raises(requests.ConnectionError):
        post(emu, envelope(emu, [R(email="b@example.com"), R(email="c@example.com")]))
    assert [lead["email"] for lead in emu.leads()] == ["a@example.com", "b@example.com", "c@example.com"]
    assert len(persisted(db)) == 3
    assert emu.calls[-1].outcome == "dropped" and emu.calls[-1].http_status is None
    # a retry of the same batch is answered, and dedup makes it idempotent
    statuses = sync(emu, [R(email="b@example.com"), R(email="c@example.com")])
    assert [s.status for s in statuses] == ["UPDATED", "UPDATED"]


def test_latency_is_applied_and_can_change_while_running(emulator):
    emulator.faults.latency = 0.3
    started = time.monotonic()
    sync(emulator, [R(email="a@example.com")])
    assert time.monotonic() - started >= 0.3
    emulator.faults.latency = 0
    started = time.monotonic()
    sync(emulator, [R(email="b@example.com")])
    assert time.monotonic() - started < 0.3


def test_stop_during_a_slow_call_applies_nothing(emulator_factory):
    emu = emulator_factory(faults=Faults(latency=5.0))
    errors = []

    def client():
        try:
            post(emu, envelope(emu, [R(email="slow@example.com")]))
        except requests.ConnectionError as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 5
    while emu.limits.in_flight == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    emu.stop()
    thread.join(5)
    assert time.monotonic() - started < 2.0
    assert len(errors) == 1 and emu.leads() == []
    assert emu.calls[-1].outcome == "aborted"


def test_faults_settings_are_validated():
    faults = Faults()
    for name, value in (("fail_rate", 1.5), ("fail_every", -1), ("fail_code", "abc"), ("fail_reason", "nope"),
                        ("fail_http_status", 200), ("latency", -1), ("drop_rate", -0.1)):
        with pytest.raises(ValueError):
            setattr(faults, name, value)
    with pytest.raises(AttributeError):
        faults.nonsense = 1
    assert not faults.active
    faults.update(drop_every=3, latency=0.1)
    assert faults.active and faults.as_dict()["drop_every"] == 3
    faults.clear()
    assert not faults.active
