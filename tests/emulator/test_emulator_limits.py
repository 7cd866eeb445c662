"""The Marketo SOAP emulator's limits, as Marketo's: more than 300 records is 20110, the rate limit over a
sliding window 20023, too many concurrent calls 20024 (sequential calls never hit it), the daily quota
20015 resetting at midnight US Central time (daylight saving included), and reset_counters forgets the
rate, the quota and the call log.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import requests

from reconcile.remote.soap import envelope as soap
from reconcile.emulator.limits import quota_day
from reconcile.remote.soap.fault import SoapFault
from soap_emulator_helpers import FakeClock, R, envelope, one_lead_outcomes, post, sync, sync_fault

# --------------------------------------------------------------------------------------------------
# Limits


def test_batch_over_300_is_20110_and_300_is_fine(emulator):
    records = [R(email=f"b{i}@example.com") for i in range(301)]
    assert sync_fault(emulator, records) == "20110"
    assert emulator.leads() == []
    assert len(sync(emulator, records[:300])) == 300
    assert len(emulator.leads()) == 300


def test_rate_limit_is_20023_over_a_sliding_window(emulator_factory):
    emu = emulator_factory(rate_calls=5, rate_window=1.0)
    outcomes = one_lead_outcomes(emu, [f"r{i}@example.com" for i in range(7)])
    assert outcomes == ["CREATED"] * 5 + ["20023"] * 2
    assert len(emu.leads()) == 5
    first_admitted = min(c.start for c in emu.calls if c.admitted)
    time.sleep(max(0.0, first_admitted + 1.05 - time.monotonic()))
    assert sync(emu, [R(email="later@example.com")])[0].status == "CREATED"
    # seen from the server: never more than 5 admitted calls within any 1 s
    starts = sorted(c.start for c in emu.calls if c.admitted)
    assert len(starts) == 6
    assert all(sum(1 for t in starts if s <= t < s + 1.0) <= 5 for s in starts)
    assert [c.code for c in emu.calls if not c.admitted] == ["20023", "20023"]


def test_concurrency_limit_is_20024(emulator_factory):
    emu = emulator_factory(max_concurrency=2)
    emu.faults.latency = 0.6
    barrier = threading.Barrier(6)
    results: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        body = envelope(emu, [R(email=f"c{i}@example.com")])
        barrier.wait(timeout=30)
        try:
            response = post(emu, body)
            outcome = soap.parse_response(response.content, response.status_code)[0].status
        except SoapFault as fault:
            outcome = fault.code
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["20024"] * 4 + ["CREATED"] * 2
    admitted = [c for c in emu.calls if c.admitted]
    assert len(admitted) == 2 and all(c.duration >= 0.6 for c in admitted)
    # measured from the server's side: at no instant were more than 2 calls admitted
    for call in admitted:
        overlapping = sum(1 for other in admitted if other.start <= call.start < other.end)
        assert overlapping <= 2
    assert emu.limits.in_flight == 0


def test_sequential_calls_never_hit_the_concurrency_limit(emulator_factory):
    emu = emulator_factory(max_concurrency=1)
    with requests.Session() as session:
        for i in range(25):
            response = session.post(emu.endpoint, data=envelope(emu, [R(email=f"s{i}@example.com")]),
                                    headers={"Content-Type": soap.CONTENT_TYPE}, timeout=5)
            assert soap.parse_response(response.content, response.status_code)[0].status == "CREATED"
    assert len(emu.calls) == 25 and all(c.outcome == "ok" for c in emu.calls)


def test_daily_quota_is_20015_and_resets_at_midnight_central(emulator_factory):
    # 23:59:00 CST on 15 Jan 2024 is 05:59:00 UTC on 16 Jan
    clock = FakeClock(datetime(2024, 1, 16, 5, 59, 0, tzinfo=timezone.utc))
    emu = emulator_factory(daily_quota=3, clock=clock)
    for i in range(3):
        assert sync(emu, [R(email=f"q{i}@example.com")])[0].status == "CREATED"
    assert sync_fault(emu, [R(email="q3@example.com")]) == "20015"
    clock.now = datetime(2024, 1, 16, 5, 59, 59, tzinfo=timezone.utc)  # still 23:59:59 in Chicago
    assert sync_fault(emu, [R(email="q3@example.com")]) == "20015"
    clock.now = datetime(2024, 1, 16, 6, 0, 1, tzinfo=timezone.utc)  # 00:00:01 CST: a new day
    assert sync(emu, [R(email="q3@example.com")])[0].status == "CREATED"
    assert len(emu.leads()) == 4
    assert emu.limits.used_today == 1


def test_quota_day_follows_central_time_including_daylight_saving():
    utc = timezone.utc
    assert quota_day(datetime(2024, 1, 16, 5, 59, 59, tzinfo=utc)).day == 15  # CST, UTC-6
    assert quota_day(datetime(2024, 1, 16, 6, 0, 0, tzinfo=utc)).day == 16
    assert quota_day(datetime(2024, 7, 16, 4, 59, 59, tzinfo=utc)).day == 15  # CDT, UTC-5
    assert quota_day(datetime(2024, 7, 16, 5, 0, 0, tzinfo=utc)).day == 16


def test_reset_counters_forgets_rate_quota_and_call_log(emulator_factory):
    emu = emulator_factory(rate_calls=1, rate_window=60.0)
    sync(emu, [R(email="a@example.com")])
    assert sync_fault(emu, [R(email="b@example.com")]) == "20023"
    assert len(emu.calls) == 2
    emu.reset_counters()
    assert emu.calls == []
    assert sync(emu, [R(email="b@example.com")])[0].status == "CREATED"
