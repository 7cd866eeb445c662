"""The drift issue: one open issue, labelled `reconcile-drift`, kept up to date by the nightly drift
workflow through `gh api`, and closed once Marketo matches the lead files again.

The issue is found by its label, its marker *and* its author: anyone can open an issue with that label
or that marker, and the workflow must never edit or close theirs.
"""

from __future__ import annotations

from typing import Any

from reconcile.ci import markdown
from reconcile.ci.comment import GitHubCLI, json_values, own_logins
from reconcile.errors import ExitStatus

LABEL = "reconcile-drift"
MARKER = "<!-- reconcile-drift -->"
TITLE = "reconcile: Marketo has drifted from the lead files"
ISSUE_LIMIT = 65_536  # GitHub rejects issue bodies longer than this many characters


def issue_body(report_markdown: str, run_url: str | None = None, limit: int = ISSUE_LIMIT) -> str:
    """The issue's Markdown: reconcile's own refreshed plan (every value in it already fenced)."""
    intro = ("The nightly `reconcile plan --refresh` found leads that Marketo holds differently from the lead "
             "files. `reconcile apply --refresh` restores the declared values; `reconcile apply --refresh-only` "
             "accepts Marketo's values into the state instead (then change the lead files to match).\n\n")
    footer = "\n---\n<sub>" + " · ".join(
        (["Updated by the drift workflow"] + ([f"[latest run]({run_url})"] if run_url else [])
         + ["closed automatically once the drift is gone"])) + "</sub>\n"
    notice = ("> [!WARNING]\n> The drift report is longer than an issue can hold and was cut short here; "
              "run `reconcile plan --refresh` for all of it.")
    head = MARKER + "\n" + intro
    return head + markdown.truncate(report_markdown.rstrip("\n") + "\n", limit - len(head) - len(footer),
                                    notice) + footer


def find_issue(gh: GitHubCLI, repo: str) -> dict[str, Any] | None:
    """The open drift issue the workflow's own identity opened, or None."""
    logins = own_logins(gh)
    out = gh.call(["api", "--paginate", f"repos/{repo}/issues?state=open&labels={LABEL}&per_page=100"])
    for page in json_values(out):
        for issue in page if isinstance(page, list) else [page]:
            if not isinstance(issue, dict) or "pull_request" in issue:
                continue
            author = (issue.get("user") or {}).get("login")
            if author in logins and str(issue.get("body") or "").lstrip().startswith(MARKER):
                return issue
    return None


def sync_issue(gh: GitHubCLI, repo: str, exitcode: int, report_markdown: str,
               run_url: str | None = None) -> tuple[str, dict[str, Any] | None]:
    """Open, update or close the drift issue after `plan --refresh --detailed-exitcode` exited with
    `exitcode` (2: drift or changes, 0: none). Returns what was done ("opened", "updated", "closed",
    "none") and the issue."""
    if exitcode not in (ExitStatus.SUCCESS, ExitStatus.CHANGES_PRESENT):
        raise ValueError(f"the drift issue follows a plan that ran (exit 0 or 2), not exit {exitcode}")
    existing = find_issue(gh, repo)
    if exitcode == ExitStatus.CHANGES_PRESENT:
        body = issue_body(report_markdown, run_url)
        if existing is not None:
            return "updated", _first(gh.send("PATCH", f"repos/{repo}/issues/{existing['number']}", {"body": body}),
                                     existing)
        return "opened", _first(gh.send("POST", f"repos/{repo}/issues",
                                        {"title": TITLE, "body": body, "labels": [LABEL]}), None)
    if existing is None:
        return "none", None
    note = "Marketo matches the lead files again" + (f" ([run]({run_url}))" if run_url else "") + "; closing."
    gh.send("POST", f"repos/{repo}/issues/{existing['number']}/comments", {"body": note})
    closed = gh.send("PATCH", f"repos/{repo}/issues/{existing['number']}",
                     {"state": "closed", "state_reason": "completed"})
    return "closed", _first(closed, existing)


def _first(out: str, fallback: dict[str, Any] | None) -> dict[str, Any] | None:
    values = json_values(out) if out.strip() else []
    return values[0] if values and isinstance(values[0], dict) else fallback
