"""The apply engine: batches, scheduling, journaling and the final report. It knows no wire format.

Modules: `batches` (records and calls), `schedule` (waves, concurrency, stopping), `answers` (what
an answer may record), `ledger` (journal, recovery, state writes), `unknowns` (calls without an
answer), `report` (the tally and the final error), `events`, `options`, and `engine`, which wires them.
"""

from reconcile.apply.batches import Batch, plan_batches, record_for
from reconcile.apply.engine import apply_plan
from reconcile.apply.events import (ApplyEvent, ApplyStarted, ApplyWarning, BatchAnswered, BatchFailed,
                                    BatchRetrying, BatchSent, JournalRecovered, StateWritten)
from reconcile.apply.ledger import recover, recover_state, recovery_lines
from reconcile.apply.options import ApplyOptions
from reconcile.apply.report import ApplyReport, RecordsFailed
from reconcile.apply.schedule import PlannedCalls

__all__ = [
    "ApplyOptions", "ApplyReport", "ApplyEvent", "JournalRecovered", "ApplyStarted", "BatchSent",
    "BatchRetrying", "BatchAnswered", "BatchFailed", "StateWritten", "ApplyWarning", "RecordsFailed",
    "apply_plan", "PlannedCalls", "record_for", "recover", "recover_state", "recovery_lines", "plan_batches", "Batch",
]
