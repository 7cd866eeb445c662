"""After apply: commit the state file back to the branch. Before plan: refuse a tracked journal or lock.

git runs with the token (if any) as an HTTP header in configuration passed through the environment:
never on a command line, never in .git/config.
"""

from __future__ import annotations

import base64
import subprocess
import time
from typing import Callable, Mapping, Sequence

from reconcile.errors import InputError, InputErrors, Location, RemoteError, UsageError
from reconcile.store.journal import journal_path
from reconcile.store.lock import lock_path

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
# What an apply leaves beside a state file while it runs; never reviewed, so never committed.
RUNTIME_PATTERNS = ("*.json.journal", "*.json.lock")


class CommitError(RemoteError):
    """The state could not be committed and pushed."""


def git_env(environ: Mapping[str, str]) -> dict[str, str]:
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


def _git(args: Sequence[str], env: Mapping[str, str], cwd: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess:
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
                 environ: Mapping[str, str], cwd: str | None = None,
                 sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = lambda _: None) -> str | None:
    """Commit `state` (only that file) and push it to `branch`, rebasing onto a newer branch tip up to
    `attempts` times. Returns the commit's SHA, or None when the state file did not change."""
    env = git_env(environ)
    if not _git(["status", "--porcelain", "--", state], env, cwd).stdout.strip():
        log(f"{state} is unchanged: nothing to commit.")
        return None
    _git(["config", "user.name", BOT_NAME], env, cwd)
    _git(["config", "user.email", BOT_EMAIL], env, cwd)
    _git(["add", "--", state], env, cwd)
    _git(["commit", "--no-verify", "--quiet", "-m", message, "--", state], env, cwd)
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
        if _git(["rebase", "--quiet", "FETCH_HEAD"], env, cwd, check=False).returncode != 0:
            _git(["rebase", "--abort"], env, cwd, check=False)
            raise CommitError(f"{branch} changed {state} while this apply ran, and the two cannot be merged "
                              "automatically; the applied state is kept in this run's artifact")
        sleep(min(2 ** attempt, 10))
    raise CommitError(f"could not push to {branch} after {attempts} attempts; the applied state is kept in "
                      "this run's artifact")


class TrackedRuntimeFile(InputError):
    """A journal or lock file is in git: apply would act on what nobody reviewed in the plan."""


def tracked_runtime_files(state: str, environ: Mapping[str, str], cwd: str | None = None) -> list[str]:
    """The journal and lock files git tracks: the state's own, and any other `*.json.journal`/`.lock`."""
    names = [str(journal_path(state)), str(lock_path(state))]
    pathspecs = names + [f":(glob)**/{pattern}" for pattern in RUNTIME_PATTERNS]
    listed = _git(["ls-files", "-z", "--", *pathspecs], git_env(environ), cwd, check=False)
    if listed.returncode != 0:
        raise UsageError("cannot list the files git tracks here: " + (listed.stderr.strip().splitlines() or ["?"])[-1])
    return sorted({name for name in listed.stdout.split("\0") if name})


def refuse_tracked_runtime_files(state: str, environ: Mapping[str, str], cwd: str | None = None) -> None:
    tracked = tracked_runtime_files(state, environ, cwd)
    errors = [TrackedRuntimeFile(
        f"{'an apply journal' if name.endswith('.journal') else 'a state lock'} is committed to git; apply "
        f"would replay or honour it although the plan did not show it. Remove it: git rm --cached -- "
        f"{name}", Location(name)) for name in tracked]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise InputErrors(list(errors))


def committed_text(path: str, environ: Mapping[str, str], cwd: str | None = None) -> str | None:
    """`path` as the checked-out commit has it (before apply changed it); None when it is not there."""
    shown = _git(["show", f"HEAD:./{path}"], git_env(environ), cwd, check=False)
    return shown.stdout if shown.returncode == 0 else None
