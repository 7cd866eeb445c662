"""What the SOAP transport knows when a call fails in flight: a refused connection was not delivered and
is not retried; a call committed then dropped is sent again only when dedup makes it safe (or the
records' keys are unique); a read timeout is outcome unknown and retried; an oversized response is
refused; and stop prevents further attempts.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from reconcile.remote.soap import envelope as soap
from reconcile.errors import ExitStatus, ResponseError
from reconcile.remote.soap.transport import (Credentials, NotDelivered, OutcomeUnknown, RetryPolicy,
                                             TransportError, is_resend_safe, outcome_unknown)
from transport_helpers import FakeSleep, records

# -- delivery failures: not delivered vs outcome unknown ----------------------------------------


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_on_loopback_is_not_delivered_and_not_retried():
    from reconcile.remote.soap.transport import SoapTransport

    creds = Credentials(f"http://127.0.0.1:{_free_port()}/soap/mktows/2_1", "u", "k")
    sleep = FakeSleep()
    transport = SoapTransport(creds, sleep=sleep, retry=RetryPolicy(max_attempts=3, base_delay=0.01))
    with pytest.raises(NotDelivered) as info:
        transport.send(records(1), dedup_enabled=False)
    assert not outcome_unknown(info.value) and len(sleep.delays) == 0
    assert "1 attempt" in str(info.value)


def test_commit_then_drop_is_resent_when_dedup_makes_it_safe(emulator, transport_for):
    emulator.faults.update(drop_every=1)
    retries = []
    transport = transport_for(emulator, sleep=FakeSleep(then=emulator.faults.clear))
    statuses = transport.send(records(3), dedup_enabled=True, on_retry=retries.append)
    assert [s.status for s in statuses] == ["UPDATED"] * 3  # the first, dropped, call created them
    assert retries[0].outcome_unknown and retries[0].reason == "connection lost"
    assert len(emulator.leads()) == 3


def test_commit_then_drop_without_dedup_is_never_resent(emulator, transport_for):
    emulator.faults.update(drop_every=1)
    sleep = FakeSleep()
    transport = transport_for(emulator, sleep=sleep)
    with pytest.raises(OutcomeUnknown) as info:
        transport.send(records(3), dedup_enabled=False)
    assert outcome_unknown(info.value) and info.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert "duplicate" in str(info.value)
    assert len(emulator.calls) == 1 and sleep.delays == []
    assert len(emulator.leads()) == 3


def test_without_dedup_records_with_unique_keys_are_still_resent(emulator, transport_for):
    emulator.faults.update(drop_every=1)
    batch = [soap.LeadRecord(email="a@example.com", foreign_sys_person_id="A1", foreign_sys_type="SFDC")]
    assert is_resend_safe(batch, False) and not is_resend_safe(records(1), False)
    transport = transport_for(emulator, sleep=FakeSleep(then=emulator.faults.clear))
    assert [s.status for s in transport.send(batch, dedup_enabled=False)] == ["UPDATED"]
    assert len(emulator.leads()) == 1


def test_read_timeout_is_outcome_unknown_and_retried(emulator, transport_for):
    emulator.faults.update(latency=0.6)

    def clear():
        emulator.faults.latency = 0.0

    transport = transport_for(emulator, timeout=(2.0, 0.2), sleep=FakeSleep(then=clear))
    retries = []
    statuses = transport.send(records(1), on_retry=retries.append)
    assert retries[0].reason == "read timeout" and retries[0].outcome_unknown
    assert statuses[0].status in ("CREATED", "UPDATED")
    time.sleep(0.5)  # let the slow first call finish inside the emulator
    assert len(emulator.leads()) == 1


def test_an_oversized_response_is_refused(emulator, transport_for, monkeypatch):
    monkeypatch.setattr(soap, "MAX_RESPONSE_BYTES", 200)
    transport = transport_for(emulator)
    with pytest.raises(ResponseError) as info:
        transport.send(records(2))
    assert "limit" in str(info.value) and outcome_unknown(info.value)
    assert len(emulator.calls) == 1


def test_stop_prevents_further_attempts(emulator, transport_for):
    emulator.faults.update(fail_every=1, fail_code="20011")
    stop = threading.Event()
    transport = transport_for(emulator, sleep=FakeSleep(then=stop.set))
    with pytest.raises(TransportError) as info:
        transport.send(records(1), stop=stop)
    assert outcome_unknown(info.value)  # 20011 may have been partly applied
    assert len(emulator.calls) == 1
