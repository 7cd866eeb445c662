"""What the apply engine reports while it runs, for a progress display.

All events are delivered on the thread that called `apply_plan`, in the order things happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconcile.store.journal import RecoveryReport

__all__ = ["ApplyEvent", "JournalRecovered", "ApplyStarted", "BatchSent", "BatchRetrying", "BatchAnswered",
           "BatchFailed", "StateWritten", "ApplyWarning"]


@dataclass(frozen=True)
class ApplyEvent:
    pass


@dataclass(frozen=True)
class JournalRecovered(ApplyEvent):
    report: RecoveryReport


@dataclass(frozen=True)
class ApplyStarted(ApplyEvent):
    records: int  # lead records to send
    batches: int  # calls planned
    state_only: int  # updates recorded without a call
    forget: int  # orphans to forget
    concurrency: int


@dataclass(frozen=True)
class BatchSent(ApplyEvent):
    batch: int  # 1-based
    records: int


@dataclass(frozen=True)
class BatchRetrying(ApplyEvent):
    batch: int
    attempt: int  # the failed attempt
    delay: float
    reason: str


@dataclass(frozen=True)
class BatchAnswered(ApplyEvent):
    batch: int
    records: int
    created: int
    updated: int
    failed: int
    adopted: int = 0  # existing leads taken under management by their declared leadId
    refused: int = 0  # answers not recorded because they contradict the request or each other


@dataclass(frozen=True)
class BatchFailed(ApplyEvent):
    batch: int
    records: int
    error: str
    outcome_unknown: bool


@dataclass(frozen=True)
class StateWritten(ApplyEvent):
    serial: int
    leads: int


@dataclass(frozen=True)
class ApplyWarning(ApplyEvent):
    message: str
