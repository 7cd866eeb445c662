"""Fault injection: latency, injected failures, and "commit then drop" lost responses.

A `Faults` object is shared by every request thread of an emulator and may be changed while it
runs (from tests, or from CLI flags at start). Every admitted call (one that passed parsing,
authentication, freshness and the limits) asks it once for a `Decision`:

* `latency` seconds are slept inside the call, while it holds its concurrency slot;
* the call fails (nothing applied) when `fail_every` divides the call's ordinal, or with
  probability `fail_rate` drawn from `random.Random(seed)`. It is answered with the neutral
  `fail_reason`, which each face turns into its own code (SOAP 20011, REST 611 for "internal"), or
  with `fail_code` verbatim by the face whose API defines that code (a five-digit mktows code for
  SOAP, a REST code such as 608). When `fail_http_status` is set, the answer is that HTTP status with
  a plain body instead, as a proxy or load balancer in front of Marketo would send;
* otherwise the call is dropped when `drop_every` divides its ordinal or with probability
  `drop_rate`: the batch is applied and persisted, then the connection is closed without any
  HTTP response, which a client sees as a timeout or a reset connection.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from typing import Any

from reconcile.emulator.reasons import Reason
from reconcile.remote.rest import codes as rest_codes
from reconcile.remote.soap import codes as soap_codes

_FIELDS = ("latency", "fail_rate", "fail_every", "fail_reason", "fail_code", "fail_http_status",
           "drop_rate", "drop_every", "seed")


@dataclasses.dataclass(frozen=True)
class Decision:
    ordinal: int  # 1-based count of admitted calls since the last reset
    latency: float = 0.0
    fail: bool = False
    fail_reason: Reason = Reason.INTERNAL_ERROR
    fail_code: str | None = None
    fail_http_status: int | None = None
    drop: bool = False


class Faults:
    """Thread-safe, mutable fault settings. Assign attributes or call `update(...)` at any time."""

    def __init__(self, *, latency: float = 0.0, fail_rate: float = 0.0, fail_every: int = 0,
                 fail_reason: Reason | str = Reason.INTERNAL_ERROR, fail_code: str | None = None,
                 fail_http_status: int | None = None, drop_rate: float = 0.0, drop_every: int = 0,
                 seed: int | None = 0) -> None:
        object.__setattr__(self, "_lock", threading.RLock())
        object.__setattr__(self, "_ordinal", 0)
        object.__setattr__(self, "_rng", random.Random(seed))
        self.update(latency=latency, fail_rate=fail_rate, fail_every=fail_every, fail_reason=fail_reason,
                    fail_code=fail_code, fail_http_status=fail_http_status, drop_rate=drop_rate,
                    drop_every=drop_every, seed=seed)

    # -- settings -----------------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FIELDS:
            raise AttributeError(f"Faults has no setting {name!r}")
        self.update(**{name: value})

    def update(self, **settings: Any) -> "Faults":
        """Validate and apply several settings at once (atomically for concurrent calls)."""
        unknown = set(settings) - set(_FIELDS)
        if unknown:
            raise AttributeError(f"Faults has no setting(s) {sorted(unknown)}")
        checked = {name: _check(name, value) for name, value in settings.items()}
        with self._lock:
            for name, value in checked.items():
                object.__setattr__(self, name, value)
                if name == "seed":
                    self._rng.seed(value)
        return self

    def clear(self) -> None:
        """No faults at all (the seed and the call ordinal are kept)."""
        self.update(latency=0.0, fail_rate=0.0, fail_every=0, fail_reason=Reason.INTERNAL_ERROR,
                    fail_code=None, fail_http_status=None, drop_rate=0.0, drop_every=0)

    def reset_counter(self) -> None:
        """Restart the call ordinal used by `fail_every`/`drop_every`, and reseed the generator."""
        with self._lock:
            object.__setattr__(self, "_ordinal", 0)
            self._rng.seed(self.seed)

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self.latency or self.fail_rate or self.fail_every or self.drop_rate
                        or self.drop_every)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {name: getattr(self, name) for name in _FIELDS}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Faults({settings})"

    # -- per call -----------------------------------------------------------------------------------

    def decide(self) -> Decision:
        """Called once per admitted call: what to inflict on it."""
        with self._lock:
            ordinal = self._ordinal + 1
            object.__setattr__(self, "_ordinal", ordinal)
            fail = bool(self.fail_every and ordinal % self.fail_every == 0)
            if self.fail_rate and self._rng.random() < self.fail_rate:
                fail = True
            drop = False
            if not fail:
                drop = bool(self.drop_every and ordinal % self.drop_every == 0)
                if self.drop_rate and self._rng.random() < self.drop_rate:
                    drop = True
            return Decision(ordinal=ordinal, latency=self.latency, fail=fail, fail_reason=self.fail_reason,
                            fail_code=self.fail_code, fail_http_status=self.fail_http_status, drop=drop)


def _check(name: str, value: Any) -> Any:
    if name == "latency":
        value = float(value)
        if not 0.0 <= value <= 3600.0:
            raise ValueError(f"latency must be between 0 and 3600 seconds, not {value!r}")
        return value
    if name in ("fail_rate", "drop_rate"):
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
        return value
    if name in ("fail_every", "drop_every"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer (0: off), not {value!r}")
        return value
    if name == "fail_reason":
        try:
            return Reason(value)
        except ValueError:
            choices = ", ".join(reason.value for reason in Reason)
            raise ValueError(f"fail_reason must be one of {choices}, not {value!r}") from None
    if name == "fail_code":
        if value is None:
            return None
        value = str(value)
        if value not in soap_codes.CODES and value not in rest_codes.CODES:
            raise ValueError(f"fail_code must be a Marketo SOAP or REST error code, not {value!r}")
        return value
    if name == "fail_http_status":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
            raise ValueError(f"fail_http_status must be an HTTP error status (400-599), not {value!r}")
        return value
    if name == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"seed must be an integer or None, not {value!r}")
        return value
    raise AttributeError(name)  # pragma: no cover
