"""What an apply did: the running tally, the final report, and the choice of the error it ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from reconcile.apply.unknowns import unknown_message
from reconcile.errors import Interrupted, PartialApplyError, ReconcileError, RemoteError
from reconcile.remote.base import outcome_unknown
from reconcile.store.journal import RecoveryReport, UnknownOutcome

__all__ = ["ApplyReport", "RecordsFailed", "Tally", "final_error", "one_line"]


@dataclass(frozen=True)
class ApplyReport:
    created: tuple[str, ...] = ()  # identities Marketo answered CREATED
    updated: tuple[str, ...] = ()  # identities answered UPDATED (adoptions aside)
    failed: tuple[tuple[str, str], ...] = ()  # (identity, Marketo's error) of FAILED records
    state_only: tuple[str, ...] = ()  # updates recorded without a call
    forgotten: tuple[str, ...] = ()  # orphans removed from the state
    unknown: tuple[UnknownOutcome, ...] = ()  # sent without an answer (may or may not be applied)
    not_sent: tuple[str, ...] = ()  # identities never sent (stopped early)
    calls: int = 0  # HTTP requests made (including retries)
    batches: int = 0  # batches answered
    retries: int = 0
    elapsed: float = 0.0
    state_serial: int = 0
    state_written: bool = False
    warnings: tuple[str, ...] = ()
    recovered: RecoveryReport | None = None
    adopted: tuple[str, ...] = ()  # existing leads taken under management by their declared leadId
    refused: tuple[tuple[str, str], ...] = ()  # (identity, why) answered but not recorded: conflicting IDs
    call_name: str = "syncMultipleLeads"
    list_added: int = 0  # memberships Marketo confirmed
    list_removed: int = 0
    list_calls: int = 0  # Add to / Remove from List (or listOperation) and Delete Leads calls answered
    deleted: tuple[str, ...] = ()  # identities deleted from Marketo (or found gone), forgotten by the state

    @property
    def applied(self) -> int:
        return len(self.created) + len(self.updated) + len(self.adopted)

    def summary(self, outcome: str = "complete") -> str:
        """One line, e.g. "Apply complete: 2 created, 1 updated, 0 failed; 1 syncMultipleLeads call(s) in 0.4 s."
        `outcome` is "complete", "failed" or "interrupted"."""
        text = f"Apply {outcome}: {len(self.created)} created, {len(self.updated)} updated"
        if self.adopted:
            text += f", {len(self.adopted)} adopted"
        text += f", {len(self.failed)} failed"
        if self.refused:
            text += f", {len(self.refused)} not recorded (conflicting lead IDs)"
        if outcome != "complete" and self.unknown:
            text += f", {len(self.unknown)} sent without an answer"
        if outcome != "complete" and self.not_sent:
            text += f", {len(self.not_sent)} not sent"
        if self.state_only:
            text += f", {len(self.state_only)} recorded without a call"
        if self.forgotten:
            text += f", {len(self.forgotten)} orphan(s) forgotten"
        if self.deleted:
            text += f", {len(self.deleted)} deleted"
        if self.list_added or self.list_removed:
            text += f"; {self.list_added} list addition(s), {self.list_removed} removal(s)"
        if self.list_calls:
            listed = self.list_added or self.list_removed
            kinds = "list and delete" if self.deleted and listed else "delete" if self.deleted else "list"
            text += f" in {self.list_calls} {kinds} call(s)"
        return text + f"; {self.calls} {self.call_name} call(s) in {self.elapsed:.1f} s."


class RecordsFailed(PartialApplyError):
    """Some records FAILED in Marketo, or were answered with a lead ID another lead holds; neither kind
    is recorded, and everything else was applied and recorded (exit 5)."""

    def __init__(self, failed: Sequence[tuple[str, str]], applied: int, refused: Sequence[tuple[str, str]] = ()):
        self.failed = tuple(failed)
        self.refused = tuple(refused)
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} lead(s) FAILED in Marketo")
        if self.refused:
            parts.append(f"{len(self.refused)} lead(s) were answered with a lead ID that another lead has")
        super().__init__(f"{' and '.join(parts)} and were not recorded; {applied} other(s) were applied and recorded")

    def lines(self) -> list[str]:
        return ([self.message] + [f"  {identity}: {error}" for identity, error in self.failed]
                + [f"  {identity}: {why}" for identity, why in self.refused])


@dataclass
class Tally:
    """The running count of one apply, filled as answers come in."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    state_only: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    not_sent: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    batches: int = 0
    list_calls: int = 0
    list_added: int = 0
    list_removed: int = 0
    deleted: list[str] = field(default_factory=list)

    def take_back(self, identity: str, why: str) -> None:
        """An answer recorded earlier turned out to conflict with a later one."""
        for kept in (self.created, self.updated, self.adopted):
            if identity in kept:
                kept.remove(identity)
        self.refused.append((identity, why))


def one_line(error: BaseException) -> str:
    if isinstance(error, ReconcileError):
        return " ".join(error.lines())
    return f"{type(error).__name__}: {error}"


def final_error(report: ApplyReport, *, interrupted: bool, first_error: BaseException | None,
                dedup_enabled: bool, unknown: Sequence[UnknownOutcome]) -> BaseException | None:
    """The error the apply ends with (None: success). In order: a stop request (exit 130), the first
    fatal error (as it is, or — with --no-dedup — the leads that may now exist twice), then records that
    FAILED or were refused (exit 5)."""
    done = f"{report.applied} lead(s) applied and recorded"
    if interrupted:
        parts = [f"interrupted: {done}"]
        if report.not_sent:
            parts.append(f"{len(report.not_sent)} not sent")
        if unknown:
            parts.append(f"{len(unknown)} sent without an answer (recorded in the journal)")
        return Interrupted("; ".join(parts) + "; run apply again to finish")
    if first_error is not None:
        if outcome_unknown(first_error) and not dedup_enabled:
            risky = [u for u in unknown if u.may_have_created]
            if risky:
                return RemoteError(unknown_message(risky, earlier=False, cause=one_line(first_error)))
        if isinstance(first_error, ReconcileError) and report.applied:
            first_error.message = f"{first_error.message} ({done} before it stopped)"
            first_error.args = (first_error.message,)
        return first_error
    if report.failed or report.refused:
        return RecordsFailed(report.failed, report.applied, report.refused)
    return None
