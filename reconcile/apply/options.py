"""How an apply runs: batch size, concurrency, dedup, orphans, checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from reconcile.core.model import DEFAULT_BATCH_SIZE
from reconcile.errors import UsageError

MAX_CONCURRENCY = 10
CHECKPOINT_INTERVAL = 5.0  # seconds between state writes during a long apply
STOP_GRACE = 10.0  # seconds to wait for answers to calls in flight after a stop request


@dataclass(frozen=True)
class ApplyOptions:
    batch_size: int = DEFAULT_BATCH_SIZE
    max_batch_size: int = DEFAULT_BATCH_SIZE  # the transport's cap (its TransportInfo.max_records)
    concurrency: int = 4
    dedup_enabled: bool = True
    forget_orphans: bool = False
    checkpoint_interval: float = CHECKPOINT_INTERVAL
    stop_grace: float = STOP_GRACE

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or not 1 <= self.batch_size <= self.max_batch_size:
            raise UsageError(f"--batch-size must be between 1 and {self.max_batch_size} (Marketo accepts at most "
                             f"{self.max_batch_size} records a call), not {self.batch_size}")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) \
                or not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency must be between 1 and {MAX_CONCURRENCY} "
                             f"(Marketo allows at most {MAX_CONCURRENCY} calls at once), not {self.concurrency}")
