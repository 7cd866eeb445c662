"""`reconcile ci ...`: the steps of action.yml (hidden), over the modules of reconcile/ci."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile.cli.environment import env
from reconcile.cli.root import StateOption, ci_app
from reconcile.core.safetext import visible
from reconcile.errors import ExitStatus, UsageError

def _read_text(path: Optional[Path]) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _exitcode(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else None


@ci_app.command("annotate")
def ci_annotate(workspace: Annotated[Optional[str], typer.Option(
        "--workspace", help="Repository root for relative paths (default: $GITHUB_WORKSPACE).")] = None) -> int:
    """Copy stdin to stdout, turning reconcile's JSON diagnostics into ::error/::warning annotations."""
    from reconcile.ci.annotations import Annotation, annotate

    root = workspace or env().environ.get("GITHUB_WORKSPACE")
    for item in annotate(env().stdin, root, os.getcwd()):
        if isinstance(item, Annotation):
            env().workflow_command(item.command())
        else:
            env().out(item + "\n")
    return ExitStatus.SUCCESS


@ci_app.command("check-tracked")
def ci_check_tracked(state: StateOption = Path("reconcile.state.json")) -> int:
    """Fail when git tracks a journal or lock file: apply must do exactly what the reviewed plan showed."""
    from reconcile.ci.commit import refuse_tracked_runtime_files

    refuse_tracked_runtime_files(str(state), env().environ)
    env().out("No apply journal, state lock or .reconcile directory is committed, and none is a symbolic link.")
    return ExitStatus.SUCCESS


@ci_app.command("comment-body")
def ci_comment_body(
    plan: Annotated[Optional[Path], typer.Option("--plan", help="The plan's Markdown.")] = None,
    exitcode: Annotated[str, typer.Option("--exitcode", help="plan's exit status (empty: it did not run).")] = "",
    log: Annotated[Optional[list[Path]], typer.Option("--log", help="Output with JSON diagnostics (repeatable).")]
    = None,
    artifact_url: Annotated[str, typer.Option("--artifact-url")] = "",
    artifact_name: Annotated[str, typer.Option("--artifact-name")] = "reconcile-plan",
    run_url: Annotated[str, typer.Option("--run-url")] = "",
    sha: Annotated[str, typer.Option("--sha")] = "",
    summary: Annotated[bool, typer.Option("--summary", help="For the job summary: no marker, 1 MB limit.")]
    = False,
    max_chars: Annotated[int, typer.Option("--max-chars", min=0)] = 0,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write here instead of stdout.")] = None,
) -> int:
    """The Markdown of the sticky plan comment, or of the plan job's summary."""
    from reconcile.ci import context
    from reconcile.ci.annotations import diagnostics_in
    from reconcile.ci.comment import CommentContext, comment_body

    environ = env().environ
    where = CommentContext(artifact_url=artifact_url or None, artifact_name=artifact_name,
                           run_url=run_url or context.run_url(environ), sha=sha or context.head_sha(environ))
    body = comment_body(plan_markdown=_read_text(plan), exitcode=_exitcode(exitcode),
                        diagnostics=[d for path in log or () for d in diagnostics_in(_read_text(path) or "")],
                        context=where, for_comment=not summary, limit=max_chars or None)
    if output is not None:
        output.write_text(body, encoding="utf-8")
    else:
        env().out(body)
    return ExitStatus.SUCCESS


@ci_app.command("sticky-comment")
def ci_sticky_comment(
    body_file: Annotated[Path, typer.Option("--body-file")],
    repo: Annotated[Optional[str], typer.Option("--repo", help="owner/name (default: $GITHUB_REPOSITORY).")]
    = None,
    pr: Annotated[Optional[int], typer.Option("--pr", help="Pull request (default: from the event).")] = None,
    gh: Annotated[str, typer.Option("--gh", help="The GitHub CLI executable.")] = "gh",
) -> int:
    """Create or update (never duplicate, never someone else's) the plan comment on the pull request."""
    from reconcile.ci import context
    from reconcile.ci.comment import GitHubCLI, upsert_comment

    environ = env().environ
    repo = repo or environ.get("GITHUB_REPOSITORY")
    number = pr or context.pull_request_number(environ)
    if not repo or not number:
        raise UsageError("sticky-comment needs a repository and a pull request number "
                         "(GITHUB_REPOSITORY and a pull_request event, or --repo and --pr)")
    client = GitHubCLI(executable=gh, environ=environ, tmpdir=environ.get("RUNNER_TEMP"))
    action, comment = upsert_comment(client, repo, number, body_file.read_text(encoding="utf-8"))
    url = str(comment.get("html_url") or "")
    env().out(f"{action.capitalize()} the plan comment on pull request #{number}" + (f": {visible(url)}" if url
                                                                                     else "."))
    context.append_to(environ.get("GITHUB_OUTPUT"), context.output_text(
        {"comment-action": action, "comment-id": str(comment.get("id", "")), "comment-url": url}))
    return ExitStatus.SUCCESS


@ci_app.command("drift-issue")
def ci_drift_issue(
    exitcode: Annotated[str, typer.Option("--exitcode", help="plan --refresh --detailed-exitcode's exit status.")],
    report: Annotated[Path, typer.Option("--report", help="The refreshed plan's Markdown.")],
    repo: Annotated[Optional[str], typer.Option("--repo", help="owner/name (default: $GITHUB_REPOSITORY).")]
    = None,
    gh: Annotated[str, typer.Option("--gh", help="The GitHub CLI executable.")] = "gh",
) -> int:
    """Open or update the one `reconcile-drift` issue on drift; close it when the drift is gone."""
    from reconcile.ci import context
    from reconcile.ci.comment import GitHubCLI
    from reconcile.ci.drift_issue import sync_issue

    environ = env().environ
    repo = repo or environ.get("GITHUB_REPOSITORY")
    status = _exitcode(exitcode)
    if not repo:
        raise UsageError("drift-issue needs a repository (GITHUB_REPOSITORY or --repo)")
    if status not in (ExitStatus.SUCCESS, ExitStatus.CHANGES_PRESENT):
        raise UsageError(f"drift-issue follows a plan that ran (exit 0 or 2), not exit {exitcode!r}")
    client = GitHubCLI(executable=gh, environ=environ, tmpdir=environ.get("RUNNER_TEMP"))
    action, issue = sync_issue(client, repo, status, _read_text(report) or "", context.run_url(environ))
    url = str((issue or {}).get("html_url") or "")
    env().out(("No drift, and no open drift issue." if action == "none"
               else f"{action.capitalize()} the drift issue #{(issue or {}).get('number', '?')}")
              + (f": {visible(url)}" if url and action != "none" else ""))
    context.append_to(environ.get("GITHUB_OUTPUT"), context.output_text({"issue-action": action, "issue-url": url}))
    return ExitStatus.SUCCESS


@ci_app.command("summarize-apply")
def ci_summarize_apply(
    exitcode: Annotated[str, typer.Option("--exitcode", help="apply's exit status (empty: it did not run).")] = "",
    log: Annotated[Optional[Path], typer.Option("--log", help="apply's output (with --error-format json).")]
    = None,
    state: StateOption = Path("reconcile.state.json"),
    before: Annotated[Optional[Path], typer.Option("--before", help="The state before apply "
                                                   "(default: the committed version).")] = None,
    artifact_name: Annotated[str, typer.Option("--artifact-name")] = "",
    collect: Annotated[Optional[Path], typer.Option("--collect", help="Copy the state, the journal and the log "
                                                    "into this folder.")] = None,
) -> int:
    """Apply's exit status and output → the job summary (stdout when there is no GITHUB_STEP_SUMMARY)."""
    from reconcile.ci import context
    from reconcile.ci.annotations import diagnostics_in
    from reconcile.ci.commit import state_text
    from reconcile.ci.summary import ApplyOutcome, apply_summary, collect_evidence, complete_line
    from reconcile.store.journal import journal_path

    environ = env().environ
    journal = journal_path(state)
    log_text = _read_text(log) or ""
    evidence = (collect_evidence([str(state), str(journal), str(log) if log else None], str(collect))
                if collect is not None else [])
    text = apply_summary(ApplyOutcome(
        exitcode=_exitcode(exitcode), complete_line=complete_line(log_text), diagnostics=diagnostics_in(log_text),
        state_before=_read_text(before) if before is not None else state_text(str(state), environ, committed=True),
        state_after=state_text(str(state), environ), journal_present=journal.exists(), evidence=evidence,
        artifact_name=artifact_name or None, run_url=context.run_url(environ)))
    if environ.get("GITHUB_STEP_SUMMARY"):
        context.append_to(environ["GITHUB_STEP_SUMMARY"], text)
    else:
        env().out(text)
    return ExitStatus.SUCCESS


@ci_app.command("commit-state")
def ci_commit_state(
    state: StateOption = Path("reconcile.state.json"),
    branch: Annotated[Optional[str], typer.Option("--branch", help="Default: $GITHUB_REF_NAME.")] = None,
    remote: Annotated[str, typer.Option("--remote")] = "origin",
    attempts: Annotated[int, typer.Option("--attempts", min=1)] = 4,
    log: Annotated[Optional[Path], typer.Option("--log", help="apply's output, for the commit message.")] = None,
) -> int:
    """Commit the state file and push it, rebasing over a concurrent push."""
    from reconcile.ci import context
    from reconcile.ci.commit import CommitError, commit_message, commit_state
    from reconcile.ci.summary import complete_line

    environ = env().environ
    branch = branch or environ.get("GITHUB_REF_NAME") or "main"
    message = commit_message(sha=environ.get("GITHUB_SHA"), summary_line=complete_line(_read_text(log) or ""),
                             run_url=context.run_url(environ), state=str(state))
    try:
        sha = commit_state(str(state), branch=branch, message=message, remote=remote, attempts=attempts,
                           environ=environ, log=lambda text: env().out(visible(text)))
    except CommitError as exc:
        context.append_to(environ.get("GITHUB_STEP_SUMMARY"), f"\n**The state was not committed:** {exc}.\n")
        context.append_to(environ.get("GITHUB_OUTPUT"), context.output_text({"committed": "false"}))
        raise
    context.append_to(environ.get("GITHUB_OUTPUT"),
                      context.output_text({"committed": "true" if sha else "false", "commit": sha or ""}))
    if sha:
        context.append_to(environ.get("GITHUB_STEP_SUMMARY"),
                          f"\nCommitted the updated `{state}` to `{branch}` as `{sha[:12]}`.\n")
    return ExitStatus.SUCCESS
