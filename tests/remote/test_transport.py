"""transport.py against the emulator on loopback: credentials, signing, retries, limits, secrecy."""

from __future__ import annotations

import re
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from reconcile.remote.soap import envelope as soap
from reconcile.errors import ConfigError, ExitStatus, ResponseError
from reconcile.remote.codes import Handling
from reconcile.remote.soap.codes import CODES
from reconcile.remote.soap.fault import SoapFault
from reconcile.remote.soap.transport import (Credentials, NotDelivered, OutcomeUnknown, QuotaExhausted, RateLimiter,
                                 RetryPolicy, TransportError, is_resend_safe, outcome_unknown,
                                 quota_reset_after)

ENV = {"MARKETO_SOAP_ENDPOINT": "https://123-ABC-456.mktoapi.com/soap/mktows/2_1",
       "MARKETO_USER_ID": "user_1", "MARKETO_ENCRYPTION_KEY": "s3cr3t-key-value-123"}


def records(n, prefix="t"):
    return [soap.LeadRecord(email=f"{prefix}{i}@example.com", attributes=(("FirstName", f"F{i}"),))
            for i in range(n)]


class FakeSleep:
    """Records backoff delays; runs `then` after the first pause (e.g. to clear injected faults)."""

    def __init__(self, then=None):
        self.delays = []
        self.then = then

    def __call__(self, seconds):
        self.delays.append(seconds)
        if self.then is not None and len(self.delays) == 1:
            self.then()


# -- credentials ---------------------------------------------------------------------------------


def test_credentials_from_env_reads_only_the_three_variables():
    creds = Credentials.from_env(dict(ENV, OTHER="x"))
    assert creds.endpoint == ENV["MARKETO_SOAP_ENDPOINT"]
    assert creds.user_id == "user_1"
    assert creds.encryption_key == "s3cr3t-key-value-123"
    override = Credentials.from_env(ENV, endpoint_override="https://other.example.com/soap/mktows/2_1")
    assert override.endpoint == "https://other.example.com/soap/mktows/2_1"


@pytest.mark.parametrize("name", sorted(ENV))
def test_a_missing_variable_is_named(name):
    env = {k: v for k, v in ENV.items() if k != name}
    with pytest.raises(ConfigError) as info:
        Credentials.from_env(env)
    assert name in str(info.value)
    assert info.value.exit_status == ExitStatus.USAGE
    with pytest.raises(ConfigError, match=name):
        Credentials.from_env(dict(ENV, **{name: "  "}))


def test_all_missing_variables_are_named():
    with pytest.raises(ConfigError) as info:
        Credentials.from_env({})
    for name in ENV:
        assert name in str(info.value)


@pytest.mark.parametrize("endpoint", ["http://100-AEK-913.mktoapi.com/soap/mktows/2_1",
                                      "http://10.0.0.1:8080/soap/mktows/2_1",
                                      "http://localhost.evil.com/soap/mktows/2_1",
                                      "ftp://127.0.0.1/x", "not a url", "https:///nohost",
                                      "https://user:pw@host.example.com/soap"])
def test_unsafe_or_bad_endpoints_are_refused(endpoint):
    with pytest.raises(ConfigError) as info:
        Credentials.from_env(dict(ENV, MARKETO_SOAP_ENDPOINT=endpoint))
    assert "MARKETO_SOAP_ENDPOINT" in str(info.value)
    assert ENV["MARKETO_ENCRYPTION_KEY"] not in str(info.value)


def test_http_refusal_names_the_override_option():
    with pytest.raises(ConfigError, match="--endpoint"):
        Credentials.from_env(ENV, endpoint_override="http://marketo.example.com/soap/mktows/2_1")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8080/soap/mktows/2_1", "http://127.9.9.9/soap/mktows/2_1",
                                      "http://localhost:1/soap/mktows/2_1", "http://[::1]:8080/soap/mktows/2_1",
                                      "https://any.example.com/soap/mktows/2_1"])
def test_loopback_http_and_any_https_are_accepted(endpoint):
    assert Credentials.from_env(dict(ENV, MARKETO_SOAP_ENDPOINT=endpoint)).endpoint == endpoint


def test_the_key_is_never_shown():
    creds = Credentials.from_env(ENV)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert ENV["MARKETO_ENCRYPTION_KEY"] not in text
        assert "***" in text


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


# -- client-side limits -----------------------------------------------------------------------------


def test_rate_limiter_sliding_window_with_a_fake_clock():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    limiter = RateLimiter(calls=5, window=1.0, margin=0.0, clock=lambda: now[0], sleep=sleep)
    times = []
    for _ in range(17):
        limiter.acquire()
        times.append(now[0])
    for i in range(len(times) - 5):
        assert times[i + 5] - times[i] >= 1.0
    assert times[4] == 0.0 and times[5] == pytest.approx(1.0)


def test_an_answered_call_counts_from_its_answer_and_an_unanswered_one_from_its_start_plus_the_margin():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    limiter = RateLimiter(calls=2, window=10.0, margin=1.0, clock=lambda: now[0], sleep=sleep)
    answered_soon = limiter.admit()
    limiter.admit()  # never answered
    now[0] = 0.25
    answered_soon.answered()  # Marketo had it by 0.25 s: it counts until 10.25 s, not 11 s
    assert limiter.admit().waited == pytest.approx(10.0)
    assert now[0] == pytest.approx(10.25)
    limiter.admit()  # the unanswered call may have reached Marketo as late as just now: until 11 s
    assert now[0] == pytest.approx(11.0)


def test_the_rate_limiter_says_when_its_window_lets_the_next_call_start():
    now = [0.0]
    limiter = RateLimiter(calls=2, window=10.0, margin=1.0, clock=lambda: now[0], sleep=lambda s: None)
    assert limiter.opens_in() == 0.0
    first = limiter.admit()
    now[0] = 0.5
    first.answered()  # it counts until 10.5 s
    now[0] = 2.0
    second = limiter.admit()  # unanswered, it counts until 2 + 10 + 1 = 13 s
    assert limiter.opens_in() == pytest.approx(8.5), "the first call stops counting at 10.5 s"
    now[0] = 11.0
    assert limiter.opens_in() == 0.0
    limiter.admit()
    assert limiter.opens_in() == pytest.approx(2.0), "then the second, at 13 s"
    second.answered()  # at 11 s: no later than 13 s either way
    assert limiter.opens_in() == pytest.approx(2.0)


def test_rate_limiter_is_thread_safe():
    limiter = RateLimiter(calls=4, window=0.3, margin=0.0)
    times = []
    lock = threading.Lock()

    def worker():
        for _ in range(3):
            limiter.acquire()
            with lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    times.sort()
    assert len(times) == 12
    for i in range(len(times) - 4):
        assert times[i + 4] - times[i] >= 0.3 - 1e-3


def test_rate_limit_holds_at_the_emulator(emulator_factory, transport_for):
    emulator = emulator_factory(rate_calls=5, rate_window=2.0)
    # The margin covers the time between our start of a call and the emulator's admitting it: on a
    # busy machine that is more than the 100 ms a 2 s window gets by default (Marketo's 20 s gets 1 s).
    transport = transport_for(emulator, rate_limiter=RateLimiter(calls=5, window=2.0, margin=0.5))
    errors = []

    def worker(k):
        try:
            for j in range(3):
                transport.send(records(1, prefix=f"r{k}-{j}-"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    calls = emulator.calls
    assert len(calls) == 12 and all(c.outcome == "ok" for c in calls), [c.code for c in calls]
    starts = sorted(c.start for c in calls if c.admitted)
    for i in range(len(starts) - 5):
        assert starts[i + 5] - starts[i] > 2.0  # never more than 5 calls in any 2 s window


def test_concurrency_cap_holds_at_the_emulator(emulator_factory, transport_for):
    emulator = emulator_factory(max_concurrency=2)
    emulator.faults.latency = 0.15
    transport = transport_for(emulator, max_concurrency=2)
    threads = [threading.Thread(target=transport.send, args=(records(1, prefix=f"c{k}-"),)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    calls = emulator.calls
    assert len(calls) == 6 and all(c.outcome == "ok" for c in calls)
    events = sorted([(c.start, 1) for c in calls] + [(c.end, -1) for c in calls])
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    assert peak <= 2


def test_credentials_constructed_directly_are_checked_too():
    with pytest.raises(ConfigError, match="http://"):
        Credentials("http://marketo.example.com/soap/mktows/2_1", "u", "k")
    with pytest.raises(ConfigError, match="MARKETO_ENCRYPTION_KEY"):
        Credentials("https://marketo.example.com/soap/mktows/2_1", "u", "")


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
