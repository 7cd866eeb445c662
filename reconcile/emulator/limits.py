"""Marketo's per-instance API limits: concurrency, sliding-window rate, and the daily quota.

Admission is one atomic step under one lock, in this order: concurrency, rate, daily quota; a
refusal carries a neutral `Reason` that each API face turns into its own code. Only admitted
calls are counted against the rate window and the quota; a refused call consumes nothing, so a
client that backs off and retries is eventually served. The quota day starts at midnight US
Central time (America/Chicago, CST/CDT), as Marketo's does.
"""

from __future__ import annotations

import collections
import threading
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from reconcile.emulator.config import EmulatorConfig
from reconcile.emulator.reasons import Reason, Refused


CENTRAL = ZoneInfo("America/Chicago")  # the system's tz database, else the tzdata package


def quota_day(moment: datetime) -> date:
    """The Marketo quota day a moment belongs to (days start at midnight America/Chicago)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(CENTRAL).date()


class Limits:
    def __init__(self, config: EmulatorConfig):
        self._config = config
        self._lock = threading.Lock()
        self._in_flight = 0
        self._window: collections.deque[float] = collections.deque()
        self._day: date | None = None
        self._used_today = 0

    def admit(self) -> None:
        """Take a concurrency slot and count the call, or raise `Refused` with the reason."""
        config = self._config
        now = config.monotonic()
        day = quota_day(config.now())
        with self._lock:
            if self._in_flight >= config.max_concurrency:
                raise Refused(Reason.CONCURRENCY_LIMIT)
            horizon = now - config.rate_window
            while self._window and self._window[0] <= horizon:
                self._window.popleft()
            if len(self._window) >= config.rate_calls:
                raise Refused(Reason.RATE_LIMIT)
            if day != self._day:
                self._day, self._used_today = day, 0
            if self._used_today >= config.daily_quota:
                raise Refused(Reason.DAILY_QUOTA)
            self._in_flight += 1
            self._window.append(now)
            self._used_today += 1

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def used_today(self) -> int:
        day = quota_day(self._config.now())
        with self._lock:
            return self._used_today if day == self._day else 0

    def reset(self) -> None:
        """Forget the rate window and the quota used today (calls in flight stay counted)."""
        with self._lock:
            self._window.clear()
            self._day, self._used_today = None, 0
