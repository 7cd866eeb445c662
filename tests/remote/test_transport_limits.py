"""The SOAP transport's client-side limits: a rate limiter over a sliding window that counts an answered
call from its answer and an unanswered one from its start plus a margin, says when the next call may
start and is thread safe; and the rate limit and the concurrency cap hold at the emulator.
"""

from __future__ import annotations

import threading
import time

import pytest

from reconcile.remote.soap.transport import RateLimiter
from transport_helpers import records

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
