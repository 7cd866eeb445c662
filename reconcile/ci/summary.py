"""The apply job's summary: what happened, what the state now records, and what to do next."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from reconcile.ci import annotations, markdown
from reconcile.errors import ExitStatus, ReconcileError
from reconcile.store.state import parse_state

_REMEDY = {
    ExitStatus.INVALID_INPUT: (
        "The lead files or the state file on main are invalid, so nothing was sent to Marketo. The errors are "
        "annotated on their lines. Fix them in a pull request; merging it runs apply again."),
    ExitStatus.REMOTE_FAILURE: (
        "Marketo refused the request or could not be reached (authentication, network, a SOAP fault or the "
        "daily quota), so nothing more could be sent. Leads applied before the failure are recorded in the "
        "state, which is committed back to main. Check the `MARKETO_*` repository secrets and Marketo's "
        "status, then re-run this workflow (**Re-run jobs**, or **Run workflow** on main): apply sends only "
        "what is still missing."),
    ExitStatus.PARTIAL_APPLY: (
        "Some leads FAILED in Marketo (the errors are below); every other lead was applied and is recorded in "
        "the state, which is committed back to main. Fix the failing leads in a pull request; merging it "
        "applies the rest."),
    ExitStatus.STALE_PLAN: "The state changed since the plan was made. Re-run this workflow; it plans again from main.",
    ExitStatus.LOCKED: (
        "Another apply holds the state lock. Applies on main never overlap (the workflow's concurrency "
        "group), so the lock is left over: if no apply is running, remove it with "
        "`reconcile force-unlock LOCK_ID` and re-run this workflow."),
    ExitStatus.INTERRUPTED: (
        "The apply was interrupted. Leads applied before it stopped are recorded; re-run this workflow to "
        "finish."),
    ExitStatus.ERROR: (
        "reconcile hit an unexpected error (a bug). Re-run with `--debug` locally to see the traceback, and "
        "report it."),
}


def _leads(text: str | None, name: str) -> dict[str, Any]:
    """The leads a state file records; an absent or unreadable state records none."""
    if not text:
        return {}
    try:
        return dict(parse_state(text.encode("utf-8"), name).leads)
    except ReconcileError:
        return {}


def state_changes(before: str | None, after: str | None, name: str = "state") -> list[tuple[str, str, Any]]:
    """(change, state key, lead ID) for every lead the apply recorded, forgot or re-synced."""
    old, new = _leads(before, name), _leads(after, name)
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            changes.append(("recorded", key, new[key].lead_id))
        elif key not in new:
            changes.append(("forgotten", key, old[key].lead_id))
        elif old[key] != new[key]:
            changes.append(("updated", key, new[key].lead_id))
    return changes


@dataclass(frozen=True)
class ApplyOutcome:
    """What the apply step left behind, as the summary needs it."""

    exitcode: int | None
    complete_line: str | None = None  # apply's own "Apply complete: ..." line
    diagnostics: Sequence[dict[str, Any]] = ()
    state_before: str | None = None
    state_after: str | None = None
    journal_present: bool = False
    evidence: Sequence[str] = ()
    artifact_name: str | None = None
    run_url: str | None = None


def _headline(exitcode: int) -> str:
    if exitcode == ExitStatus.SUCCESS:
        return "### reconcile apply: succeeded"
    if exitcode == ExitStatus.PARTIAL_APPLY:
        return f"### reconcile apply: partially applied (exit {exitcode})"
    return f"### reconcile apply: failed (exit {exitcode}, {ExitStatus.describe(exitcode)})"


def _changes_table(changes: list[tuple[str, str, Any]], max_rows: int) -> list[str]:
    out = [f"The state records {len(changes)} change(s):", "", "| | State key | Lead ID |", "|---|---|---:|"]
    for change, key, lead_id in changes[:max_rows]:
        out.append(f"| {change} | {markdown.table_cell(key)} | {lead_id if lead_id is not None else '–'} |")
    if len(changes) > max_rows:
        out.append(f"| … | {len(changes) - max_rows} more | |")
    return out + [""]


def _evidence_lines(outcome: ApplyOutcome) -> list[str]:
    out = []
    where = f"the artifact `{outcome.artifact_name}`" if outcome.artifact_name else "this run's artifacts"
    if outcome.evidence:
        out.append(f"Kept in {where}: " + ", ".join(f"`{name}`" for name in outcome.evidence) + ".")
    if outcome.journal_present:
        out.append("The apply journal (`*.journal`) lists calls that were sent and never answered: Marketo "
                   "may hold leads the state does not record. See *Recovering from a failed apply in GitHub "
                   "Actions* in docs/recovery.md.")
    return out + [""] if out else out


def _remedy(exitcode: int) -> str:
    try:
        return _REMEDY[ExitStatus(exitcode)]
    except (ValueError, KeyError):
        return f"`reconcile apply` exited with {exitcode}; see the log."


def apply_summary(outcome: ApplyOutcome, max_rows: int = 200) -> str:
    exitcode = outcome.exitcode
    if exitcode is None:
        return ("### reconcile apply: did not run\n\n"
                "The job stopped before `reconcile apply` ran, so nothing was sent to Marketo.\n")
    out = [_headline(exitcode), ""]
    if outcome.complete_line:
        out += [markdown.table_cell(outcome.complete_line), ""]
    if exitcode != ExitStatus.SUCCESS:
        out += [_remedy(exitcode), ""]
    errors = [annotations.describe(d) for d in outcome.diagnostics if d.get("severity") == "error"]
    if errors:
        out += markdown.code_block(errors) + [""]
    changes = state_changes(outcome.state_before, outcome.state_after)
    if changes:
        out += _changes_table(changes, max_rows)
    elif exitcode == ExitStatus.SUCCESS:
        out += ["Marketo already matched the lead files: the state is unchanged.", ""]
    if exitcode != ExitStatus.SUCCESS:
        out += _evidence_lines(outcome)
    if outcome.run_url:
        out.append(f"<sub>[workflow run]({outcome.run_url})</sub>")
    return "\n".join(out).rstrip("\n") + "\n"


def complete_line(log: str) -> str | None:
    """Apply's closing line on stdout ("Apply complete: ...", "Apply failed: ...", "Apply interrupted: ..."),
    for the summary and the commit message."""
    found = [line for line in log.splitlines() if line.startswith(("Apply complete", "Apply failed", "Apply interrupted"))]
    return found[-1] if found else None


def collect_evidence(paths: Sequence[str | None], target: str) -> list[str]:
    """Copy the files that exist among `paths` into one flat folder for the artifact; their names."""
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in paths:
        if path and Path(path).is_file():
            shutil.copy2(path, folder / Path(path).name)
            copied.append(Path(path).name)
    return copied
