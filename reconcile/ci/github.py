"""GitHub Actions glue: the logic behind `action.yml` and `.github/workflows/`, kept out of YAML.

Run as ``python -m reconcile.ci.github COMMAND``::

    annotate          stdin → stdout: `error: FILE:LINE: message` lines become
                      `::error file=FILE,line=LINE::message` workflow commands; other lines pass through
    comment-body      the Markdown of the sticky pull-request comment (or the job summary) for a plan,
                      or for the errors that stopped it; truncated to GitHub's limit with a pointer to
                      the full plan uploaded as an artifact
    sticky-comment    create or update (never duplicate) the pull-request comment holding the marker,
                      through `gh api`
    summarize-apply   apply's exit status and log → a job summary that says what happened and what to do
    commit-state      commit the state file back to the branch after an apply (retrying a push race)

Everything here reads the variables GitHub Actions sets (GITHUB_WORKSPACE, GITHUB_OUTPUT,
GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH, GITHUB_REPOSITORY, ...) with command-line overrides, so each
command can be run and tested outside GitHub. None of it ever prints a credential.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

MARKER = "<!-- reconcile-plan -->"
COMMENT_LIMIT = 65_536  # GitHub rejects issue comments longer than this many characters
SUMMARY_LIMIT = 1_000_000  # a step summary may be at most 1 MiB
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"

EXIT_MEANINGS = {
    0: "success",
    1: "unexpected error (a bug in reconcile)",
    2: "changes present",
    3: "invalid input",
    4: "remote failure",
    5: "partial apply",
    6: "stale plan",
    7: "state locked",
    64: "usage error",
    130: "interrupted",
}


# --------------------------------------------------------------------------------------------------
# Workflow commands (annotations)


def escape_data(text: str) -> str:
    """GitHub's escaping of a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """GitHub's escaping of a workflow command's property value (file=, line=, title=)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


_ERROR_LINE = re.compile(r"(?P<level>error|warning): (?P<rest>.*)", re.DOTALL)
_WITH_LINE = re.compile(r"(?P<file>[^\s:][^:\n]*?):(?P<line>\d+): (?P<message>.*)", re.DOTALL)
_FILE_ONLY = re.compile(r"(?P<file>[^\s:]+\.(?:ya?ml|json|journal|lock)): (?P<message>.*)", re.DOTALL)


@dataclass(frozen=True)
class Annotation:
    level: str  # "error" | "warning"
    message: str
    file: str | None = None
    line: int | None = None

    def command(self) -> str:
        props = []
        if self.file is not None:
            props.append(f"file={escape_property(self.file)}")
        if self.line is not None:
            props.append(f"line={self.line}")
        head = f"::{self.level}" + (" " + ",".join(props) if props else "")
        return f"{head}::{escape_data(self.message)}"


def _repo_relative(file: str, workspace: str | None, cwd: str | None) -> str:
    """A path as GitHub wants it in an annotation: relative to the repository root, with slashes."""
    if not workspace:
        return file.replace(os.sep, "/")
    absolute = file if os.path.isabs(file) else os.path.join(cwd or os.getcwd(), file)
    absolute = os.path.normpath(absolute)
    root = os.path.normpath(os.path.abspath(workspace))
    try:
        relative = os.path.relpath(absolute, root)
    except ValueError:  # another drive
        return file.replace(os.sep, "/")
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return file.replace(os.sep, "/")
    return relative.replace(os.sep, "/")


def parse_error_line(text: str, workspace: str | None = None, cwd: str | None = None) -> Annotation | None:
    """`error: leads/a.yaml:12: leads[3].email: ...` → Annotation; None for any other line."""
    match = _ERROR_LINE.fullmatch(text.rstrip("\r\n"))
    if match is None:
        return None
    level, rest = match["level"], match["rest"]
    located = _WITH_LINE.fullmatch(rest)
    if located is not None:
        return Annotation(level, located["message"], _repo_relative(located["file"], workspace, cwd),
                          int(located["line"]))
    file_only = _FILE_ONLY.fullmatch(rest)
    if file_only is not None:
        return Annotation(level, file_only["message"], _repo_relative(file_only["file"], workspace, cwd))
    return Annotation(level, rest)


def annotate_lines(lines: Iterable[str], workspace: str | None = None, cwd: str | None = None) -> Iterable[str]:
    for raw in lines:
        annotation = parse_error_line(raw, workspace, cwd)
        yield annotation.command() if annotation is not None else raw.rstrip("\r\n")


def error_lines(text: str) -> list[str]:
    """The `error: ...` lines of a command's output, without the prefix."""
    return [m["rest"] for m in map(_ERROR_LINE.match, text.splitlines()) if m and m["level"] == "error"]


# --------------------------------------------------------------------------------------------------
# Markdown: the plan comment and summaries


def _fence_for(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def _close_open_blocks(text: str) -> str:
    """Close a code fence and any <details> left open by cutting `text` short."""
    fence: str | None = None
    details = 0
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is not None:
            if match and match[1][0] == fence[0] and len(match[1]) >= len(fence) and not line.strip()[len(match[1]):]:
                fence = None
            continue
        if match:
            fence = match[1]
            continue
        details += line.count("<details") - line.count("</details>")
    closing = []
    if fence is not None:
        closing.append(fence)
    closing += ["", "</details>"] * max(details, 0)
    return text.rstrip("\n") + ("\n" + "\n".join(closing) if closing else "")


def truncate_markdown(text: str, limit: int, notice: str) -> str:
    """`text` if it fits in `limit` characters; else its head (cut at a line, blocks closed) + `notice`."""
    if len(text) <= limit:
        return text
    budget = limit - len(notice) - 64
    while budget > 0:
        cut = text.rfind("\n", 0, budget)
        head = text[:cut if cut > 0 else budget]
        result = _close_open_blocks(head) + "\n\n" + notice + "\n"
        if len(result) <= limit:
            return result
        budget -= max(len(result) - limit, 64)
    return notice[:limit]


def _run_url(environ: Mapping[str, str]) -> str | None:
    server, repo, run_id = (environ.get("GITHUB_SERVER_URL", "https://github.com"), environ.get("GITHUB_REPOSITORY"),
                            environ.get("GITHUB_RUN_ID"))
    if not repo or not run_id:
        return None
    return f"{server}/{repo}/actions/runs/{run_id}"


def _event(environ: Mapping[str, str]) -> dict[str, Any]:
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _head_sha(environ: Mapping[str, str]) -> str | None:
    pull = _event(environ).get("pull_request") or {}
    return (pull.get("head") or {}).get("sha") or environ.get("GITHUB_SHA")


def _failure_markdown(exitcode: int | None, logs: Sequence[str], command: str) -> str:
    errors = [line for text in logs for line in error_lines(text)]
    out = [f"### reconcile {command}: failed", ""]
    if exitcode is None:
        text = ("`reconcile validate` failed, so there is no plan." if errors
                else f"reconcile stopped before it could {command}; see the workflow run's log.")
    elif exitcode == 3:
        text = "The lead files or the state file are invalid (exit 3), so there is no plan."
    else:
        text = (f"`reconcile {command}` exited with {exitcode} ({EXIT_MEANINGS.get(exitcode, 'failure')}), "
                "so there is no plan.")
    if errors:
        text += (f" {len(errors)} error(s); those with a file and line are also annotated on that line in the "
                 "pull request's **Files changed** tab.")
    out.append(text)
    if errors:
        body = "\n".join(errors)
        fence = _fence_for(body)
        out += ["", f"{fence}text", body, fence]
    return "\n".join(out) + "\n"


def comment_body(*, plan_markdown: str | None, exitcode: int | None, logs: Sequence[str] = (),
                 artifact_url: str | None = None, run_url: str | None = None, sha: str | None = None,
                 marker: str = MARKER, limit: int = COMMENT_LIMIT, artifact_name: str = "reconcile-plan",
                 for_comment: bool = True) -> str:
    """The sticky comment (or, with for_comment=False, the job summary) for one plan run."""
    planned = plan_markdown is not None and exitcode in (0, 2)
    main = plan_markdown.rstrip("\n") + "\n" if planned else _failure_markdown(exitcode, logs, "plan")
    footer_bits = []
    if planned:
        footer_bits.append("Merging this pull request applies this plan to Marketo" if exitcode == 2
                           else "Merging this pull request changes nothing in Marketo")
    if sha:
        footer_bits.append(f"Commit `{sha[:12]}`")
    if run_url:
        footer_bits.append(f"[workflow run]({run_url})")
    if for_comment:
        footer_bits.append("this comment is updated on every push")
    footer = "\n---\n<sub>" + " · ".join(footer_bits) + "</sub>\n" if footer_bits else ""
    head = (marker + "\n") if for_comment and marker else ""
    where = (f"[`{artifact_name}`]({artifact_url})" if artifact_url
             else f"`{artifact_name}`" + (f" of [this workflow run]({run_url})" if run_url else ""))
    room = limit - len(head) - len(footer)
    notice = (f"> [!WARNING]\n> This {'plan' if planned else 'report'} is {len(main):,} characters long, more than "
              f"a {'pull-request comment' if for_comment else 'job summary'} can hold, and was cut short here. "
              f"The full plan is in the artifact {where}.")
    return head + truncate_markdown(main, room, notice) + footer


# --------------------------------------------------------------------------------------------------
# The sticky comment, through the GitHub CLI


class GitHubCLIError(RuntimeError):
    pass


def _gh(args: Sequence[str], *, gh: str = "gh", environ: Mapping[str, str] | None = None) -> str:
    try:
        done = subprocess.run([gh, *args], capture_output=True, text=True, env=dict(environ or os.environ))
    except FileNotFoundError as exc:
        raise GitHubCLIError(f"the GitHub CLI ({gh}) is not installed") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise GitHubCLIError(f"gh {' '.join(args[:3])} failed (exit {done.returncode}): "
                             + (message[-1] if message else "no message"))
    return done.stdout


def _json_values(text: str) -> list[Any]:
    """`gh api --paginate` prints one JSON array per page, back to back: decode them all."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


def find_comment(repo: str, number: int, marker: str = MARKER, *, gh: str = "gh",
                 environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The first comment of pull request `number` whose body starts with `marker`, or None."""
    out = _gh(["api", "--paginate", f"repos/{repo}/issues/{number}/comments?per_page=100"], gh=gh, environ=environ)
    for page in _json_values(out):
        for comment in page if isinstance(page, list) else [page]:
            if isinstance(comment, dict) and str(comment.get("body") or "").lstrip().startswith(marker):
                return comment
    return None


def upsert_comment(repo: str, number: int, body: str, marker: str = MARKER, *, gh: str = "gh",
                   environ: Mapping[str, str] | None = None, tmpdir: str | None = None) -> tuple[str, dict[str, Any]]:
    """Update the marked comment in place, or create it. Returns ("updated"|"created", the comment)."""
    import tempfile

    if not body.lstrip().startswith(marker):
        body = marker + "\n" + body
    existing = find_comment(repo, number, marker, gh=gh, environ=environ)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=tmpdir, delete=False, encoding="utf-8") as payload:
        json.dump({"body": body}, payload)
    try:
        if existing is not None:
            args = ["api", "--method", "PATCH", f"repos/{repo}/issues/comments/{existing['id']}",
                    "--input", payload.name]
            action = "updated"
        else:
            args = ["api", "--method", "POST", f"repos/{repo}/issues/{number}/comments", "--input", payload.name]
            action = "created"
        out = _gh(args, gh=gh, environ=environ)
    finally:
        os.unlink(payload.name)
    values = _json_values(out) if out.strip() else []
    comment = values[0] if values and isinstance(values[0], dict) else (existing or {})
    return action, comment


# --------------------------------------------------------------------------------------------------
# Apply summary


def _load_state_leads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    leads = data.get("leads") if isinstance(data, dict) else None
    return leads if isinstance(leads, dict) else {}


def state_changes(before: str | None, after: str | None) -> list[tuple[str, str, Any]]:
    """(change, state key, lead ID) for every lead the apply recorded, forgot or re-synced."""
    old, new = _load_state_leads(before), _load_state_leads(after)
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            changes.append(("recorded", key, (new[key] or {}).get("leadId")))
        elif key not in new:
            changes.append(("forgotten", key, (old[key] or {}).get("leadId")))
        elif old[key] != new[key]:
            changes.append(("updated", key, (new[key] or {}).get("leadId")))
    return changes


_REMEDY = {
    3: ("The lead files or the state file on main are invalid, so nothing was sent to Marketo. The errors are "
        "annotated on their lines. Fix them in a pull request; merging it runs apply again."),
    4: ("Marketo refused the request or could not be reached (authentication, network, a SOAP fault or the "
        "daily quota), so nothing more could be sent. Leads applied before the failure are recorded in the "
        "state, which is committed back to main. Check the `MARKETO_*` repository secrets and Marketo's "
        "status, then re-run this workflow (**Re-run jobs**, or **Run workflow** on main): apply sends only "
        "what is still missing."),
    5: ("Some leads FAILED in Marketo (the errors are below); every other lead was applied and is recorded in "
        "the state, which is committed back to main. Fix the failing leads in a pull request; merging it "
        "applies the rest."),
    6: "The state changed since the plan was made. Re-run this workflow; it plans again from main.",
    7: ("Another apply holds the state lock. Applies on main never overlap (the workflow's concurrency "
        "group), so the lock is left over: if no apply is running, remove it with "
        "`reconcile force-unlock LOCK_ID` and re-run this workflow."),
    130: "The apply was interrupted. Leads applied before it stopped are recorded; re-run this workflow to finish.",
    1: "reconcile hit an unexpected error (a bug). Re-run with `--debug` locally to see the traceback, and report it.",
}


def apply_summary(*, exitcode: int | None, log: str = "", before: str | None = None, after: str | None = None,
                  journal_present: bool = False, artifact_name: str | None = None, run_url: str | None = None,
                  evidence: Sequence[str] = (), max_rows: int = 200) -> str:
    out: list[str] = []
    if exitcode is None:
        out += ["### reconcile apply: did not run", "",
                "The job stopped before `reconcile apply` ran, so nothing was sent to Marketo."]
        return "\n".join(out) + "\n"
    meaning = EXIT_MEANINGS.get(exitcode, "failure")
    if exitcode == 0:
        out.append("### reconcile apply: succeeded")
    elif exitcode == 5:
        out.append("### reconcile apply: partially applied (exit 5)")
    else:
        out.append(f"### reconcile apply: failed (exit {exitcode}, {meaning})")
    out.append("")
    complete = [line for line in log.splitlines() if line.startswith("Apply complete")]
    if complete:
        out += [complete[-1], ""]
    if exitcode != 0:
        out += [_REMEDY.get(exitcode, f"`reconcile apply` exited with {exitcode}; see the log."), ""]
    errors = error_lines(log)
    if errors:
        body = "\n".join(errors)
        fence = _fence_for(body)
        out += [f"{fence}text", body, fence, ""]
    changes = state_changes(before, after)
    if changes:
        out += [f"The state records {len(changes)} change(s):", "", "| | State key | Lead ID |", "|---|---|---:|"]
        for change, key, lead_id in changes[:max_rows]:
            out.append(f"| {change} | `{key}` | {lead_id if lead_id is not None else '–'} |")
        if len(changes) > max_rows:
            out.append(f"| … | {len(changes) - max_rows} more | |")
        out.append("")
    elif exitcode == 0:
        out += ["Marketo already matched the lead files: the state is unchanged.", ""]
    if exitcode != 0:
        where = f"the artifact `{artifact_name}`" if artifact_name else "this run's artifacts"
        if evidence:
            out.append(f"Kept in {where}: " + ", ".join(f"`{name}`" for name in evidence) + ".")
        if journal_present:
            out.append("The apply journal (`*.journal`) lists calls that were sent and never answered: Marketo "
                       "may hold leads the state does not record. See the README's *Recovering from a failed "
                       "apply*.")
        if evidence or journal_present:
            out.append("")
    if run_url:
        out.append(f"<sub>[workflow run]({run_url})</sub>")
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------------
# Committing the state back


class CommitError(RuntimeError):
    pass


def _git_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for git: the token (if any) as an HTTP header in config set through the
    environment (never on a command line, never in .git/config), the bot as committer."""
    env = dict(environ)
    token = environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN")
    if token:
        server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        env[f"GIT_CONFIG_KEY_{count}"] = f"http.{server}/.extraheader"
        env[f"GIT_CONFIG_VALUE_{count}"] = f"AUTHORIZATION: basic {basic}"
        env["GIT_CONFIG_COUNT"] = str(count + 1)
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    return env


def _git(args: Sequence[str], env: Mapping[str, str], cwd: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", *args], capture_output=True, text=True, env=dict(env), cwd=cwd)
    if check and done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise CommitError(f"git {args[0]} failed: " + (lines[-1] if lines else f"exit {done.returncode}"))
    return done


def commit_message(*, sha: str | None, summary_line: str | None, run_url: str | None, state: str) -> str:
    subject = f"reconcile: record apply results in {state}"
    if sha:
        subject += f" for {sha[:7]}"
    body = []
    if summary_line:
        body.append(summary_line)
    if run_url:
        body.append(f"Applied by {run_url}")
    body.append("Written by `reconcile apply` in GitHub Actions; pushed with the workflow token, which starts "
                "no workflow.")
    return subject + " [skip ci]\n\n" + "\n".join(body) + "\n"


def commit_state(state: str, *, branch: str, message: str, remote: str = "origin", attempts: int = 4,
                 environ: Mapping[str, str] | None = None, cwd: str | None = None,
                 sleep=time.sleep, log=print) -> str | None:
    """Commit `state` (only that file) and push it to `branch`, rebasing onto a newer branch tip up to
    `attempts` times. Returns the commit's SHA, or None when the state file did not change."""
    from reconcile.store.state import shard_dir_for

    env = _git_env(environ if environ is not None else os.environ)
    # the top file and, in state format 2, the shard directory beside it (named as git, in cwd, sees them)
    shards = str(shard_dir_for(state))
    paths = [state] + ([shards] if (Path(cwd or ".") / shards).is_dir() else [])
    status = _git(["status", "--porcelain", "--", *paths], env, cwd).stdout.strip()
    if not status:
        log(f"{state} is unchanged: nothing to commit.")
        return None
    _git(["config", "user.name", BOT_NAME], env, cwd)
    _git(["config", "user.email", BOT_EMAIL], env, cwd)
    _git(["add", "-A", "--", *paths], env, cwd)
    _git(["commit", "--no-verify", "--quiet", "-m", message, "--", *paths], env, cwd)
    for attempt in range(1, attempts + 1):
        pushed = _git(["push", "--quiet", remote, f"HEAD:refs/heads/{branch}"], env, cwd, check=False)
        if pushed.returncode == 0:
            sha = _git(["rev-parse", "HEAD"], env, cwd).stdout.strip()
            log(f"Pushed {sha[:12]} to {branch}.")
            return sha
        if attempt == attempts:
            break
        log(f"Push to {branch} was rejected (attempt {attempt} of {attempts}): rebasing onto the new tip.")
        _git(["fetch", "--quiet", remote, branch], env, cwd)
        rebased = _git(["rebase", "--quiet", "FETCH_HEAD"], env, cwd, check=False)
        if rebased.returncode != 0:
            _git(["rebase", "--abort"], env, cwd, check=False)
            raise CommitError(f"{branch} changed {state} while this apply ran, and the two cannot be merged "
                              "automatically; the applied state is kept in this run's artifact")
        sleep(min(2 ** attempt, 10))
    raise CommitError(f"could not push to {branch} after {attempts} attempts; the applied state is kept in "
                      "this run's artifact")


# --------------------------------------------------------------------------------------------------
# Command line


def _write_output(environ: Mapping[str, str], values: Mapping[str, str]) -> None:
    path = environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        for name, value in values.items():
            if "\n" in value:
                delimiter = f"ghadelimiter_{os.urandom(8).hex()}"
                handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                handle.write(f"{name}={value}\n")


def _append_summary(environ: Mapping[str, str], text: str) -> None:
    path = environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")


def _read(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _exitcode(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def _cmd_annotate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    workspace = args.workspace or environ.get("GITHUB_WORKSPACE")
    for line in annotate_lines(sys.stdin, workspace, os.getcwd()):
        print(line, flush=True)
    return 0


def _cmd_comment_body(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    exitcode = _exitcode(args.exitcode)
    for_comment = not args.summary
    body = comment_body(
        plan_markdown=_read(args.plan), exitcode=exitcode, logs=[_read(p) or "" for p in args.log],
        artifact_url=args.artifact_url or None, run_url=args.run_url or _run_url(environ),
        sha=args.sha or _head_sha(environ), marker=args.marker, for_comment=for_comment,
        limit=args.max_chars or (COMMENT_LIMIT if for_comment else SUMMARY_LIMIT), artifact_name=args.artifact_name)
    if args.output:
        Path(args.output).write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)
    return 0


def _cmd_sticky_comment(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    repo = args.repo or environ.get("GITHUB_REPOSITORY")
    number = args.pr
    if number is None:
        event = _event(environ)
        number = (event.get("pull_request") or {}).get("number") or (event.get("issue") or {}).get("number")
    if not repo or not number:
        print("error: sticky-comment needs a repository and a pull request number "
              "(GITHUB_REPOSITORY and a pull_request event, or --repo and --pr)", file=sys.stderr)
        return 64
    body = Path(args.body_file).read_text(encoding="utf-8")
    try:
        action, comment = upsert_comment(repo, int(number), body, args.marker, gh=args.gh, environ=environ,
                                         tmpdir=environ.get("RUNNER_TEMP"))
    except GitHubCLIError as exc:
        print(f"error: could not comment on pull request #{number}: {exc}", file=sys.stderr)
        return 4
    url = comment.get("html_url", "")
    print(f"{action.capitalize()} the plan comment on pull request #{number}" + (f": {url}" if url else "."))
    _write_output(environ, {"comment-action": action, "comment-id": str(comment.get("id", "")),
                            "comment-url": url})
    return 0


def _state_text(state: str, ref: str | None = None) -> str | None:
    """The state at `state` (or as committed at `ref`), whatever its format, as one format 1 document:
    what state_changes reads. None when there is none or it is unreadable."""
    import tempfile

    from reconcile.errors import ReconcileError
    from reconcile.store.state import load_state, serialize_v1, shard_dir_for

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(state)
        if ref is not None:  # the committed top file and shards, laid out in a scratch directory
            archive = subprocess.run(["git", "archive", "--format=tar", ref, "--", state, str(shard_dir_for(state))],
                                     capture_output=True)
            if archive.returncode != 0:
                archive = subprocess.run(["git", "archive", "--format=tar", ref, "--", state], capture_output=True)
            if archive.returncode != 0 or subprocess.run(["tar", "-x", "-C", scratch], input=archive.stdout,
                                                         capture_output=True).returncode != 0:
                return None
            path = Path(scratch) / state
        if not path.is_file():
            return None
        try:
            return serialize_v1(load_state(path)).decode("utf-8")
        except (ReconcileError, OSError):
            return _read(str(path))


def _cmd_summarize_apply(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    after = _state_text(args.state) if args.state else None
    before = _read(args.before) if args.before else None
    if args.before is None and args.state:
        before = _state_text(args.state, ref="HEAD")
    journal = args.journal or (args.state + ".journal" if args.state else None)
    evidence: list[str] = []
    if args.collect:
        # one flat folder for the artifact: the state, the journal (if any) and the log
        import shutil

        target = Path(args.collect)
        target.mkdir(parents=True, exist_ok=True)
        for path in (args.state, journal, args.log):
            if path and Path(path).is_file():
                shutil.copy2(path, target / Path(path).name)
                evidence.append(Path(path).name)
    text = apply_summary(exitcode=_exitcode(args.exitcode), log=_read(args.log) or "", before=before, after=after,
                         journal_present=bool(journal and Path(journal).exists()), evidence=evidence,
                         artifact_name=args.artifact_name or None, run_url=_run_url(environ))
    _append_summary(environ, text)
    if not environ.get("GITHUB_STEP_SUMMARY"):
        sys.stdout.write(text)
    return 0


def _cmd_commit_state(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    log_text = _read(args.log) or ""
    summary = next((line for line in reversed(log_text.splitlines()) if line.startswith("Apply complete")), None)
    branch = args.branch or environ.get("GITHUB_REF_NAME") or "main"
    message = commit_message(sha=environ.get("GITHUB_SHA"), summary_line=summary, run_url=_run_url(environ),
                             state=args.state)
    try:
        sha = commit_state(args.state, branch=branch, message=message, remote=args.remote, attempts=args.attempts,
                           environ=environ)
    except CommitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _append_summary(environ, f"\n**The state was not committed:** {exc}.\n")
        _write_output(environ, {"committed": "false"})
        return 1
    _write_output(environ, {"committed": "true" if sha else "false", "commit": sha or ""})
    if sha:
        _append_summary(environ, f"\nCommitted the updated `{args.state}` to `{branch}` as `{sha[:12]}`.\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reconcile.ci.github", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("annotate", help="turn `error: FILE:LINE: ...` lines on stdin into ::error annotations")
    p.add_argument("--workspace", help="repository root for relative paths (default: $GITHUB_WORKSPACE)")
    p.set_defaults(func=_cmd_annotate)

    p = sub.add_parser("comment-body", help="Markdown for the sticky plan comment or the job summary")
    p.add_argument("--plan", help="the plan's Markdown (reconcile plan --format markdown)")
    p.add_argument("--exitcode", default="", help="reconcile plan's exit status (empty: plan did not run)")
    p.add_argument("--log", action="append", default=[], help="a log whose `error:` lines explain a failure")
    p.add_argument("--artifact-url", default="", help="where the full plan was uploaded")
    p.add_argument("--artifact-name", default="reconcile-plan")
    p.add_argument("--run-url", default="")
    p.add_argument("--sha", default="")
    p.add_argument("--marker", default=MARKER)
    p.add_argument("--summary", action="store_true", help="for the job summary: no marker, 1 MB limit")
    p.add_argument("--max-chars", type=int, default=0)
    p.add_argument("--output", help="write here instead of stdout")
    p.set_defaults(func=_cmd_comment_body)

    p = sub.add_parser("sticky-comment", help="create or update the marked pull-request comment via `gh api`")
    p.add_argument("--body-file", required=True)
    p.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    p.add_argument("--pr", type=int, help="pull request number (default: from $GITHUB_EVENT_PATH)")
    p.add_argument("--marker", default=MARKER)
    p.add_argument("--gh", default="gh", help="the GitHub CLI executable")
    p.set_defaults(func=_cmd_sticky_comment)

    p = sub.add_parser("summarize-apply", help="apply's exit status and log → the job summary")
    p.add_argument("--exitcode", default="", help="reconcile apply's exit status (empty: it did not run)")
    p.add_argument("--log", help="apply's combined output")
    p.add_argument("--state", default="reconcile.state.json")
    p.add_argument("--before", help="the state before apply (default: the committed HEAD version)")
    p.add_argument("--journal", help="the journal (default: STATE.journal)")
    p.add_argument("--artifact-name", default="")
    p.add_argument("--collect", help="copy the state, the journal and the log into this folder")
    p.set_defaults(func=_cmd_summarize_apply)

    p = sub.add_parser("commit-state", help="commit the state file and push it, retrying a push race")
    p.add_argument("--state", default="reconcile.state.json")
    p.add_argument("--branch", help="default: $GITHUB_REF_NAME")
    p.add_argument("--remote", default="origin")
    p.add_argument("--attempts", type=int, default=4)
    p.add_argument("--log", help="apply's output, for the commit message's summary line")
    p.set_defaults(func=_cmd_commit_state)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args, os.environ if environ is None else environ)


if __name__ == "__main__":
    sys.exit(main())
