"""After apply: commit the state file back to the branch. Before plan: refuse a tracked journal or lock.

git runs with the token (if any) as an HTTP header in configuration passed through the environment:
never on a command line, never in .git/config.
"""

from __future__ import annotations

import base64
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from reconcile.errors import InputError, InputErrors, Location, ReconcileError, RemoteError, UsageError
from reconcile.store.git import LOCAL_DIRECTORY, runtime_paths
from reconcile.store.state import load_state
from reconcile.store.statecodec import serialize_v1
from reconcile.store.statefiles import shard_dir_for

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
    """Commit the state (its top file and, in format 2, the shard directory beside it; nothing else) and
    push it to `branch`, rebasing onto a newer branch tip up to `attempts` times. Returns the commit's
    SHA, or None when the state did not change."""
    env = git_env(environ)
    shards = str(shard_dir_for(state))  # named as git, in cwd, sees it
    paths = [state] + ([shards] if (Path(cwd or ".") / shards).is_dir() else [])
    if not _git(["status", "--porcelain", "--", *paths], env, cwd).stdout.strip():
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
        if _git(["rebase", "--quiet", "FETCH_HEAD"], env, cwd, check=False).returncode != 0:
            _git(["rebase", "--abort"], env, cwd, check=False)
            raise CommitError(f"{branch} changed {state} while this apply ran, and the two cannot be merged "
                              "automatically; the applied state is kept in this run's artifact")
        sleep(min(2 ** attempt, 10))
    raise CommitError(f"could not push to {branch} after {attempts} attempts; the applied state is kept in "
                      "this run's artifact")


class TrackedRuntimeFile(InputError):
    """A journal, lock or `.reconcile/` is in git, or a symbolic link: apply would act on what nobody
    reviewed in the plan."""


def tracked_runtime_files(state: str, environ: Mapping[str, str], cwd: str | None = None) -> list[str]:
    """The runtime files git tracks: the state's journal and lock, any other `*.json.journal`/`.lock`,
    and anything under a `.reconcile/` directory."""
    names = [str(path) for path in runtime_paths(state)]
    pathspecs = names + [f":(glob)**/{pattern}" for pattern in RUNTIME_PATTERNS] + [f":(glob)**/{LOCAL_DIRECTORY}"]
    listed = _git(["ls-files", "-z", "--", *pathspecs], git_env(environ), cwd, check=False)
    if listed.returncode != 0:
        raise UsageError("cannot list the files git tracks here: " + (listed.stderr.strip().splitlines() or ["?"])[-1])
    found = {name for name in listed.stdout.split("\0") if name}
    return sorted({_runtime_root(name) for name in found})


def _runtime_root(name: str) -> str:
    """A file under `.reconcile/` as that directory (one line for all its files)."""
    parts = name.split("/")
    return "/".join(parts[:parts.index(LOCAL_DIRECTORY) + 1]) if LOCAL_DIRECTORY in parts[:-1] else name


def _what(name: str) -> str:
    return ("an apply journal" if name.endswith(".journal") else "a state lock" if name.endswith(".lock")
            else "reconcile's local directory")


def refuse_tracked_runtime_files(state: str, environ: Mapping[str, str], cwd: str | None = None) -> None:
    tracked = tracked_runtime_files(state, environ, cwd)
    errors = [TrackedRuntimeFile(
        f"{_what(name)} is committed to git; apply would honour it although the plan did not show it. "
        f"Remove it: git rm {'-r ' if _what(name).endswith('directory') else ''}--cached -- {name}", Location(name))
        for name in tracked]
    errors += [TrackedRuntimeFile(f"{path} is a symbolic link; reconcile never follows one for its own files",
                                  Location(str(path)))
               for path in runtime_paths(Path(cwd or ".") / state) if path.is_symlink()]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise InputErrors(list(errors))


def state_text(state: str, environ: Mapping[str, str], *, committed: bool = False,
               cwd: str | None = None) -> str | None:
    """The whole state at `state`, whatever its format, as one format-1 document (what the summary
    compares); with `committed`, as the checked-out commit has it (before apply changed it). None when
    there is none; an unreadable state comes back as its top file's text."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(cwd or ".") / state
        if committed:  # the committed top file and shards, laid out in a scratch directory
            path = Path(scratch) / state
            if not _extract_committed([state, str(shard_dir_for(state))], scratch, environ, cwd) \
                    and not _extract_committed([state], scratch, environ, cwd):
                return None
        if not path.is_file():
            return None
        try:
            return serialize_v1(load_state(path)).decode("utf-8")
        except (ReconcileError, OSError):
            try:
                return path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None


def _extract_committed(paths: Sequence[str], target: str, environ: Mapping[str, str], cwd: str | None) -> bool:
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", "--", *paths], capture_output=True,
                             cwd=cwd, env=git_env(environ))
    if archive.returncode != 0:
        return False
    return subprocess.run(["tar", "-x", "-C", target], input=archive.stdout, capture_output=True).returncode == 0
