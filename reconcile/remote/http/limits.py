"""Marketo's limits as a client keeps them: the rate window, call slots' waits, and the retry policy.

``RateLimiter(calls, window)`` (thread-safe sliding window; ``admit(stop)`` raises ``Stopped``
when ``stop`` is set; a call counts from its answer once ``Admission.answered()``, else from its
start plus a margin). ``RetryPolicy`` (attempts, total seconds, full-jitter exponential backoff,
throttled attempts, immediate re-signs). ``pause(sleep, seconds, stop)`` waits, waking early
when ``stop`` is set (with the real ``time.sleep``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping



def pause(sleep: Callable[[float], None], seconds: float, stop: threading.Event | None) -> None:
    """Wait `seconds`; with the real time.sleep, wake as soon as `stop` is set."""
    if seconds <= 0:
        return
    if stop is not None and sleep is time.sleep:
        stop.wait(seconds)
    else:
        sleep(seconds)


class Stopped(Exception):
    """The caller's stop event was set while waiting for a slot."""


class RateLimiter:
    """A thread-safe sliding-window limiter: at most `calls` acquisitions in any `window` seconds.

    What Marketo counts is when it received each call, which we never see: we know only that it was
    after we began the call and before we had its answer. So a call counts in the window until
    `window` seconds after its answer (`Admission.answered`), or, while it is unanswered, until
    `window + margin` seconds after it began: `margin` covers the network time between our start and
    Marketo's receipt that jitter could otherwise push into one server-side window with a later call.
    """

    def __init__(self, calls: int = 100, window: float = 20.0, *, margin: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if calls < 1 or window <= 0:
            raise ValueError("RateLimiter needs calls >= 1 and window > 0")
        self.calls = calls
        self.window = float(window)
        self.margin = float(margin) if margin is not None else min(1.0, max(0.05, 0.05 * window))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._counted_until: list[list[float]] = []  # one [time] a call in the window: when it stops counting

    def acquire(self, stop: threading.Event | None = None) -> float:
        """Block until a call may start; returns the seconds waited. Raises Stopped if `stop` is set."""
        return self.admit(stop).waited

    def admit(self, stop: threading.Event | None = None) -> "Admission":
        """Block until a call may start. Raises Stopped if `stop` is set while waiting."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._counted_until = [until for until in self._counted_until if until[0] > now]
                if len(self._counted_until) < self.calls:
                    until = [now + self.window + self.margin]
                    self._counted_until.append(until)
                    return Admission(waited, self, until)
                delay = min(until[0] for until in self._counted_until) - now
            if stop is not None and stop.is_set():
                raise Stopped()
            delay = max(delay, 0.001)
            pause(self._sleep, delay, stop)
            waited += delay

    def opens_in(self) -> float:
        """Seconds until the window lets another call start (0: it would now)."""
        with self._lock:
            now = self._clock()
            counted = sorted(until[0] for until in self._counted_until if until[0] > now)
            if len(counted) < self.calls:
                return 0.0
            return counted[len(counted) - self.calls] - now

    def _answered(self, until: list[float]) -> None:
        with self._lock:
            until[0] = min(until[0], self._clock() + self.window)


@dataclass
class Admission:
    """One call let through the rate window."""

    waited: float  # seconds spent waiting for the window
    _limiter: RateLimiter
    _until: list[float]

    def answered(self) -> None:
        """Marketo has answered, so it received the call by now: the call counts `window` seconds from
        here, if that is sooner than from its start plus the margin."""
        self._limiter._answered(self._until)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: attempts per batch, total seconds per batch, full-jitter exponential backoff."""

    max_attempts: int = 6
    max_elapsed: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_resign: int = 2  # immediate retries with a renewed signature (SOAP 20016) or token (REST 601/602)
    # Refusals for load (rate, concurrency, HTTP 429) applied nothing and clear within Marketo's 20 s
    # window: they may use more attempts (still within max_elapsed).
    max_throttled_attempts: int = 10

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_elapsed < 0 or self.base_delay < 0 or self.max_delay < 0 \
                or self.max_throttled_attempts < 1:
            raise ValueError("invalid retry policy")


def backoff_delay(policy: RetryPolicy, attempt: int, retry_after_seconds: float | None,
                  uniform: Callable[[float, float], float]) -> float:
    """Full jitter: uniform(0, min(max_delay, base * 2^(attempt-1))), at least Retry-After (capped)."""
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    delay = uniform(0.0, ceiling)
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, policy.max_delay))
    return delay


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = (headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    return None
