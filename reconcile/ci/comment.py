"""The plan's pull-request comment: its Markdown, and one sticky comment kept up to date through `gh api`.

The comment is found by its marker *and* its author: anyone can post a comment that starts with the
marker, and the workflow must never edit theirs.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from reconcile.ci import annotations, markdown
from reconcile.errors import ExitStatus, RemoteError

MARKER = "<!-- reconcile-plan -->"
COMMENT_LIMIT = 65_536  # GitHub rejects issue comments longer than this many characters
SUMMARY_LIMIT = 1_000_000  # a step summary may be at most 1 MiB
BOT_LOGIN = "github-actions[bot]"  # the identity of GITHUB_TOKEN


def failure_markdown(exitcode: int | None, diagnostics: Sequence[dict[str, Any]], command: str) -> str:
    errors = [annotations.describe(d) for d in diagnostics if d.get("severity") == "error"]
    out = [f"### reconcile {command}: failed", ""]
    if exitcode is None:
        text = (f"reconcile found errors before it could {command}, so there is no {command}." if errors
                else f"reconcile stopped before it could {command}; see the workflow run's log.")
    elif exitcode == ExitStatus.INVALID_INPUT:
        text = f"The lead files or the state file are invalid (exit {exitcode}), so there is no {command}."
    else:
        text = (f"`reconcile {command}` exited with {exitcode} ({ExitStatus.describe(exitcode)}), "
                f"so there is no {command}.")
    if errors:
        text += (f" {len(errors)} error(s); those with a file and line are also annotated on that line in the "
                 "pull request's **Files changed** tab.")
    out.append(text)
    if errors:
        out += [""] + markdown.code_block(errors)
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class CommentContext:
    """Where the plan came from and where the full plan is: the footer and the truncation notice."""

    artifact_url: str | None = None
    artifact_name: str = "reconcile-plan"
    run_url: str | None = None
    sha: str | None = None


def comment_body(*, plan_markdown: str | None, exitcode: int | None, diagnostics: Sequence[dict[str, Any]] = (),
                 context: CommentContext = CommentContext(), for_comment: bool = True,
                 limit: int | None = None, marker: str = MARKER) -> str:
    """The sticky comment (or, with for_comment=False, the job summary) for one plan run."""
    limit = limit or (COMMENT_LIMIT if for_comment else SUMMARY_LIMIT)
    planned = plan_markdown is not None and exitcode in (ExitStatus.SUCCESS, ExitStatus.CHANGES_PRESENT)
    main = plan_markdown.rstrip("\n") + "\n" if planned else failure_markdown(exitcode, diagnostics, "plan")
    footer_bits = []
    if planned:
        footer_bits.append("Merging this pull request applies this plan to Marketo"
                           if exitcode == ExitStatus.CHANGES_PRESENT
                           else "Merging this pull request changes nothing in Marketo")
    if context.sha:
        footer_bits.append(f"Commit `{context.sha[:12]}`")
    if context.run_url:
        footer_bits.append(f"[workflow run]({context.run_url})")
    if for_comment:
        footer_bits.append("this comment is updated on every push")
    footer = "\n---\n<sub>" + " · ".join(footer_bits) + "</sub>\n" if footer_bits else ""
    head = (marker + "\n") if for_comment and marker else ""
    name = context.artifact_name
    where = (f"[`{name}`]({context.artifact_url})" if context.artifact_url
             else f"`{name}`" + (f" of [this workflow run]({context.run_url})" if context.run_url else ""))
    notice = (f"> [!WARNING]\n> This {'plan' if planned else 'report'} is {len(main):,} characters long, more than "
              f"a {'pull-request comment' if for_comment else 'job summary'} can hold, and was cut short here. "
              f"The full plan is in the artifact {where}.")
    return head + markdown.truncate(main, limit - len(head) - len(footer), notice) + footer


# --------------------------------------------------------------------------------------------------
# The sticky comment, through the GitHub CLI


class GitHubCLIError(RemoteError):
    """`gh` is missing or a GitHub API call through it failed."""


@dataclass(frozen=True)
class GitHubCLI:
    executable: str = "gh"
    environ: Mapping[str, str] | None = None
    tmpdir: str | None = None

    def call(self, args: Sequence[str]) -> str:
        try:
            done = subprocess.run([self.executable, *args], capture_output=True, text=True,
                                  env=dict(self.environ if self.environ is not None else os.environ))
        except FileNotFoundError as exc:
            raise GitHubCLIError(f"the GitHub CLI ({self.executable}) is not installed") from exc
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise GitHubCLIError(f"gh {' '.join(args[:3])} failed (exit {done.returncode}): "
                                 + (message[-1] if message else "no message"))
        return done.stdout

    def send(self, method: str, path: str, payload: Mapping[str, Any]) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.tmpdir, delete=False,
                                         encoding="utf-8") as handle:
            json.dump(payload, handle)
        try:
            return self.call(["api", "--method", method, path, "--input", handle.name])
        finally:
            os.unlink(handle.name)


def json_values(text: str) -> list[Any]:
    """`gh api --paginate` prints one JSON array per page, back to back: decode them all."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


def own_logins(gh: GitHubCLI) -> frozenset[str]:
    """Who the workflow comments as: GITHUB_TOKEN is always `github-actions[bot]`; a personal or app
    token is whoever `gh api user` says (an installation token may not ask, which is fine)."""
    try:
        values = json_values(gh.call(["api", "user"]))
    except (GitHubCLIError, ValueError):
        return frozenset({BOT_LOGIN})
    login = values[0].get("login") if values and isinstance(values[0], dict) else None
    return frozenset({BOT_LOGIN} | ({login} if isinstance(login, str) and login else set()))


def find_comment(gh: GitHubCLI, repo: str, number: int, marker: str = MARKER) -> dict[str, Any] | None:
    """The first comment of pull request `number` that starts with `marker` and was written by the
    workflow's own identity, or None."""
    logins = own_logins(gh)
    out = gh.call(["api", "--paginate", f"repos/{repo}/issues/{number}/comments?per_page=100"])
    for page in json_values(out):
        for comment in page if isinstance(page, list) else [page]:
            if not isinstance(comment, dict):
                continue
            author = (comment.get("user") or {}).get("login")
            if author in logins and str(comment.get("body") or "").lstrip().startswith(marker):
                return comment
    return None


def upsert_comment(gh: GitHubCLI, repo: str, number: int, body: str,
                   marker: str = MARKER) -> tuple[str, dict[str, Any]]:
    """Update our marked comment in place, or create it. Returns ("updated"|"created", the comment)."""
    if not body.lstrip().startswith(marker):
        body = marker + "\n" + body
    existing = find_comment(gh, repo, number, marker)
    if existing is not None:
        out = gh.send("PATCH", f"repos/{repo}/issues/comments/{existing['id']}", {"body": body})
        action = "updated"
    else:
        out = gh.send("POST", f"repos/{repo}/issues/{number}/comments", {"body": body})
        action = "created"
    values = json_values(out) if out.strip() else []
    comment = values[0] if values and isinstance(values[0], dict) else (existing or {})
    return action, comment
