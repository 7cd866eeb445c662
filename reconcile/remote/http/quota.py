"""The daily quota's reset time: midnight US Central (America/Chicago), from the tz database.

``quota_reset_after(now)`` -> the next midnight US Central; ``quota_message(now, resets_at, cause)``
-> the one-line user message, e.g. cause ``"607 Daily quota reached"``. The zone's rules come from
the system's tz database, or from the `tzdata` package where the system has none.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

CENTRAL = ZoneInfo("America/Chicago")


def quota_reset_after(now: datetime) -> datetime:
    """The next midnight in America/Chicago after `now` (aware; a naive value is taken as UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    local = now.astimezone(CENTRAL)
    next_day = (local + timedelta(days=1)).date()
    return datetime(next_day.year, next_day.month, next_day.day, tzinfo=CENTRAL)


def quota_message(now: datetime, resets_at: datetime, cause: str) -> str:
    """What to tell the user when the daily quota is used up; `cause` is e.g. "20015 Request Limit Exceeded"."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    remaining = max(timedelta(0), resets_at - now)
    hours, rest = divmod(int(remaining.total_seconds()), 3600)
    minutes = rest // 60
    local = resets_at.strftime("%Y-%m-%d %H:%M ") + (resets_at.tzname() or "US Central")
    utc = resets_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Marketo's daily API quota is used up ({cause}); it resets at midnight "
            f"US Central time, {local} ({utc}), in about {hours} h {minutes:02d} min. Leads applied so far "
            "are recorded in the state; run apply again after the reset to send the rest")
