"""The SOAP transport sending to the emulator on loopback: statuses in order over one session, a
prepared envelope used once and signed again (not built again) for a retry; transient faults and
HTTP 5xx retried with bounded exponential backoff and full jitter, throttling given more attempts,
HTTP 4xx and other faults stopping at once; a wrong key failing at once without leaking it or a
signature into the log; an expired request re-signed; the daily quota naming its reset time in US
Central time; and every call-level fault code handled as the one table says.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from reconcile.remote.soap import envelope as soap
from reconcile.errors import ExitStatus
from reconcile.remote.codes import Handling
from reconcile.remote.soap.codes import CODES
from reconcile.remote.soap.fault import SoapFault
from reconcile.remote.soap.transport import (QuotaExhausted, RetryPolicy, TransportError, outcome_unknown,
                                             quota_reset_after)
from transport_helpers import FakeSleep, records

# -- sending, signing -----------------------------------------------------------------------------


def test_send_returns_statuses_in_order_and_reuses_the_session(emulator, transport_for):
    transport = transport_for(emulator)
    assert transport.session.verify is True
    first = transport.send(records(3), dedup_enabled=True)
    assert [s.status for s in first] == ["CREATED"] * 3
    assert len({s.lead_id for s in first}) == 3
    again = transport.send(records(3))
    assert [s.status for s in again] == ["UPDATED"] * 3
    assert [s.lead_id for s in again] == [s.lead_id for s in first]
    assert transport.stats.attempts == 2 and transport.stats.retries == 0
    assert transport.send([]) == []  # nothing to send: no call at all
    assert len(emulator.calls) == 2


def test_prepared_envelope_is_used_once_and_retries_are_re_signed(emulator, transport_for, recording_session):
    ticks = iter(range(10_000))
    base = datetime.now(timezone.utc)
    clock = lambda: base + timedelta(seconds=next(ticks))  # noqa: E731 - each timestamp one second later
    session = recording_session()
    emulator.faults.update(fail_every=1, fail_code="20011")
    sleep = FakeSleep(then=emulator.faults.clear)
    transport = transport_for(emulator, session=session, clock=clock, sleep=sleep)
    prepared = transport.prepare(records(2))
    statuses = transport.send(prepared)
    assert [s.status for s in statuses] == ["CREATED", "CREATED"]
    assert len(session.bodies) == 2
    assert session.bodies[0] == prepared.body
    stamps = [re.search(rb"<requestTimestamp>([^<]+)<", b).group(1).decode() for b in session.bodies]
    sigs = [re.search(rb"<requestSignature>([^<]+)<", b).group(1).decode() for b in session.bodies]
    assert stamps[0] != stamps[1] and sigs[0] != sigs[1]
    for stamp, sig in zip(stamps, sigs):
        assert sig == soap.sign(emulator.encryption_key, stamp, emulator.user_id)
    bodies = [b[b.index(b"</SOAP-ENV:Header>"):] for b in session.bodies]
    assert bodies[0] == bodies[1], "the retry carries the same records"


def test_a_retry_or_a_stale_prepared_call_is_signed_again_not_built_again(emulator, transport_for,
                                                                           recording_session, monkeypatch):
    """Building validates every record with xmlschema (over 100 ms a full call): a new signature
    needs only the header."""
    now = [datetime.now(timezone.utc)]
    session = recording_session()
    emulator.faults.update(fail_every=1, fail_code="20011")
    sleep = FakeSleep(then=emulator.faults.clear)
    transport = transport_for(emulator, session=session, clock=lambda: now[0], sleep=sleep)
    prepared = transport.prepare(records(3))
    built = []
    real = soap.build_request
    monkeypatch.setattr(soap, "build_request", lambda *a, **k: built.append(1) or real(*a, **k))
    now[0] += timedelta(minutes=5)
    transport._monotonic = lambda: prepared.built_at + 300  # it waited five minutes
    assert [s.status for s in transport.send(prepared)] == ["CREATED"] * 3
    assert built == [] and len(session.bodies) == 2
    assert session.bodies[0] != prepared.body
    assert all(stamp in b for b, stamp in zip(session.bodies, [b"<requestTimestamp>"] * 2))
    assert {b[b.index(b"</SOAP-ENV:Header>"):] for b in session.bodies} == \
        {prepared.body[prepared.body.index(b"</SOAP-ENV:Header>"):]}
    transport.send(records(2))  # not prepared: built once, then signed again if retried
    assert built == [1]


@pytest.mark.parametrize("code", ["20023", "20024", "20011", "10001"])
def test_transient_fault_codes_are_retried_with_backoff(emulator, transport_for, code):
    emulator.faults.update(fail_every=1, fail_code=code)
    sleep = FakeSleep(then=emulator.faults.clear)
    retries = []
    transport = transport_for(emulator, sleep=sleep, retry=RetryPolicy(base_delay=0.5, max_delay=30))
    statuses = transport.send(records(2), on_retry=retries.append)
    assert [s.status for s in statuses] == ["CREATED", "CREATED"]
    assert len(emulator.calls) == 2 and emulator.calls[0].code == code
    assert len(sleep.delays) == 1 and 0 <= sleep.delays[0] <= 0.5
    assert retries[0].attempt == 1 and code in retries[0].reason
    assert retries[0].outcome_unknown == (code in ("20011", "10001"))
    assert transport.stats.retries == 1
    assert len(emulator.leads()) == 2


def test_backoff_is_exponential_with_full_jitter_and_bounded_attempts(emulator, transport_for):
    emulator.faults.update(fail_every=1, fail_code="20011")
    sleep = FakeSleep()
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=4.0, max_elapsed=1000)
    transport = transport_for(emulator, sleep=sleep, retry=policy)
    with pytest.raises(SoapFault) as info:
        transport.send(records(1))
    assert info.value.code == "20011" and "5 attempts" in str(info.value)
    assert info.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert len(emulator.calls) == 5 and len(sleep.delays) == 4
    for attempt, delay in enumerate(sleep.delays, start=1):
        assert 0 <= delay <= min(4.0, 2 ** (attempt - 1))
    assert outcome_unknown(info.value)  # an internal error may have applied part of the batch


def test_throttling_refusals_get_more_attempts_and_apply_nothing(emulator, transport_for):
    emulator.faults.update(fail_every=1, fail_code="20023")
    sleep = FakeSleep()
    transport = transport_for(emulator, sleep=sleep, retry=RetryPolicy(max_attempts=3, max_throttled_attempts=7))
    with pytest.raises(SoapFault) as info:
        transport.send(records(1))
    assert info.value.code == "20023" and "7 attempts" in str(info.value)
    assert len(emulator.calls) == 7 and not outcome_unknown(info.value)


def test_total_retry_time_is_bounded(emulator, transport_for):
    emulator.faults.update(fail_every=1, fail_code="20024")
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    policy = RetryPolicy(max_attempts=100, base_delay=10.0, max_delay=10.0, max_elapsed=25.0)
    transport = transport_for(emulator, sleep=sleep, monotonic=lambda: now[0], retry=policy)
    with pytest.raises(SoapFault):
        transport.send(records(1))
    assert now[0] <= 25.0
    assert len(emulator.calls) < 100


@pytest.mark.parametrize("status,unknown", [(503, False), (502, True), (500, True)])
def test_http_5xx_without_soap_fault_is_retried(emulator, transport_for, status, unknown):
    emulator.faults.update(fail_every=1, fail_http_status=status)
    retries = []
    transport = transport_for(emulator, sleep=FakeSleep(then=emulator.faults.clear))
    assert [s.status for s in transport.send(records(1), on_retry=retries.append)] == ["CREATED"]
    assert retries[0].reason == f"HTTP {status}" and retries[0].outcome_unknown is unknown


def test_http_4xx_without_soap_fault_is_not_retried(emulator, transport_for):
    emulator.faults.update(fail_every=1, fail_http_status=404)
    transport = transport_for(emulator)
    with pytest.raises(TransportError, match="HTTP 404"):
        transport.send(records(1))
    assert len(emulator.calls) == 1


@pytest.mark.parametrize("code", ["20013", "20014", "20017", "20110"])
def test_non_transient_faults_stop_at_once(emulator, transport_for, code):
    emulator.faults.update(fail_every=1, fail_code=code)
    sleep = FakeSleep()
    transport = transport_for(emulator, sleep=sleep)
    with pytest.raises(SoapFault) as info:
        transport.send(records(1))
    assert info.value.code == code and info.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert len(emulator.calls) == 1 and sleep.delays == []


def test_wrong_key_is_20014_immediately_and_the_key_never_leaks(emulator, transport_for):
    logs = []
    secret = "wrong-key-that-must-not-leak-0123456789"
    sleep = FakeSleep()
    transport = transport_for(emulator, key=secret, log=logs.append, sleep=sleep)
    with pytest.raises(SoapFault) as info:
        transport.send(records(2))
    assert info.value.code == "20014"
    assert len(emulator.calls) == 1 and sleep.delays == []
    text = "\n".join(logs) + str(info.value) + repr(info.value) + repr(transport) + repr(transport.credentials)
    assert secret not in text
    assert "***REDACTED***" in "\n".join(logs)
    assert "requestTimestamp" in "\n".join(logs) and "HTTP 500" in "\n".join(logs)


def test_debug_log_never_holds_the_key_or_a_signature(emulator, transport_for):
    logs = []
    emulator.faults.update(fail_every=2, fail_code="20011")
    transport = transport_for(emulator, log=logs.append)
    for _ in range(3):
        transport.send(records(2))
    text = "\n".join(logs)
    assert emulator.encryption_key not in text
    assert not re.search(r"<requestSignature>[0-9a-f]{40}<", text)
    assert text.count("> POST") == 5 and text.count("< HTTP 200") == 3


def test_request_expired_is_re_signed_and_retried_at_once(emulator, transport_for):
    real = datetime.now(timezone.utc)
    stamps = iter([real - timedelta(hours=1)])
    clock = lambda: next(stamps, real)  # noqa: E731 - stale once, then right
    sleep = FakeSleep()
    transport = transport_for(emulator, clock=clock, sleep=sleep)
    prepared = transport.prepare(records(1))  # signed with the stale time
    assert [s.status for s in transport.send(prepared)] == ["CREATED"]
    assert [c.code for c in emulator.calls] == ["20016", None]
    assert sleep.delays == [] and transport.stats.retries == 1


def test_request_expired_every_time_gives_up_with_a_clock_hint(emulator, transport_for):
    transport = transport_for(emulator, clock=lambda: datetime.now(timezone.utc) - timedelta(hours=2))
    with pytest.raises(SoapFault) as info:
        transport.send(records(1))
    assert info.value.code == "20016" and "clock" in str(info.value)
    assert len(emulator.calls) == 1 + RetryPolicy().max_resign


def test_daily_quota_names_the_reset_time(emulator_factory, transport_for):
    now = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)  # 06:00 CST
    emulator = emulator_factory(daily_quota=1, clock=lambda: now)
    transport = transport_for(emulator, clock=lambda: now)
    transport.send(records(1))
    with pytest.raises(QuotaExhausted) as info:
        transport.send(records(1, prefix="q"))
    error = info.value
    assert error.code == "20015" and error.exit_status == ExitStatus.REMOTE_FAILURE
    assert error.resets_at == datetime(2026, 1, 16, 6, 0, tzinfo=timezone.utc)
    assert "2026-01-16 00:00 CST" in str(error) and "06:00 UTC" in str(error)
    assert "18 h 00 min" in str(error)
    assert len(emulator.calls) == 2  # not retried


def test_quota_reset_follows_us_central_daylight_saving():
    summer = datetime(2026, 7, 1, 4, 59, tzinfo=timezone.utc)  # 23:59 CDT on 30 June
    assert quota_reset_after(summer) == datetime(2026, 7, 1, 5, 0, tzinfo=timezone.utc)
    winter = datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc)
    assert quota_reset_after(winter) == datetime(2027, 1, 1, 6, 0, tzinfo=timezone.utc)
    # the day the clocks go forward (8 March 2026): that midnight is still CST, the next one CDT
    assert quota_reset_after(datetime(2026, 3, 8, 12, 0, tzinfo=timezone.utc)) == \
        datetime(2026, 3, 9, 5, 0, tzinfo=timezone.utc)


# -- every fault code is handled as the one table says -------------------------------------------------


def _calls_expected(handling, policy):
    return {Handling.RETRY: policy.max_attempts, Handling.UNKNOWN: policy.max_attempts,
            Handling.THROTTLED: max(policy.max_attempts, policy.max_throttled_attempts),
            Handling.RESIGN: 1 + policy.max_resign, Handling.QUOTA: 1, Handling.STOP: 1}[handling]


@pytest.mark.parametrize("code", sorted(c for c, entry in CODES.items() if entry.handling is not Handling.RECORD))
def test_each_call_level_fault_code_is_handled_as_the_table_says(emulator, transport_for, code):
    handling = CODES[code].handling
    emulator.faults.update(fail_every=1, fail_code=code)
    policy = RetryPolicy(max_attempts=3, max_throttled_attempts=4, max_resign=2, base_delay=0.0)
    transport = transport_for(emulator, retry=policy)
    expected_error = QuotaExhausted if handling is Handling.QUOTA else SoapFault
    with pytest.raises(expected_error) as info:
        transport.send(records(1))
    assert info.value.code == code
    assert len(emulator.calls) == _calls_expected(handling, policy), handling
    assert outcome_unknown(info.value) == (handling is Handling.UNKNOWN)
