"""Whether git tracks a file. Local files a run leaves behind (journal, lock) must never be committed:
one that arrives through a pull request is someone else's claim about this repository's Marketo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_TIMEOUT = 10.0  # seconds; git answers this from the index


def is_tracked_by_git(path: Path | str) -> bool:
    """True when `path` is in the index of the git repository holding its directory.

    No git installed, not a repository, or git failing in any way: not tracked.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        done = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path.name], cwd=directory,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, timeout=GIT_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


LOCAL_DIRECTORY = ".reconcile"  # where earlier versions kept caches beside the state: never read now


def runtime_paths(state_path: Path | str) -> list[Path]:
    """The files beside a state that a run makes and nobody reviews: the journal, the lock, and
    `.reconcile/` (earlier versions' caches and emulator database)."""
    state_path = Path(state_path)
    return [state_path.with_name(state_path.name + ".journal"), state_path.with_name(state_path.name + ".lock"),
            state_path.with_name(LOCAL_DIRECTORY)]


def untrusted_runtime_files(state_path: Path | str) -> list[tuple[Path, str]]:
    """(path, why) for each of `runtime_paths` that is a symbolic link or is in git's index: one that
    came with a pull request would make apply act on what its plan never showed."""
    paths = runtime_paths(state_path)
    found = [(path, "a symbolic link; reconcile never follows one for its own files")
             for path in paths if path.is_symlink()]
    directory = paths[0].parent if str(paths[0].parent) else Path(".")
    try:
        done = subprocess.run(["git", "ls-files", "-z", "--", *(path.name for path in paths)], cwd=directory,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, timeout=GIT_TIMEOUT)
        tracked = done.stdout.decode("utf-8", "surrogateescape").split("\0") if done.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):  # no git, not a repository: nothing is committed
        tracked = []
    for path in paths:
        if any(name == path.name or name.startswith(path.name + "/") for name in tracked):
            made_by = ("earlier versions kept caches there" if path.name == LOCAL_DIRECTORY
                       else "apply makes it while it runs")
            found.append((path, f"tracked by git: {made_by}, nobody reviews it, so a committed one is never "
                                f"trusted; remove it with git rm {'-r ' if path.name == LOCAL_DIRECTORY else ''}"
                                f"--cached -- {path.name}"))
    return found


def refuse_untrusted_runtime_files(state_path: Path | str) -> None:
    """Raise InputError (exit 3), one line naming the file, for the first of `untrusted_runtime_files`."""
    from reconcile.errors import InputError, Location

    for path, why in untrusted_runtime_files(state_path):
        raise InputError(why, Location(str(path)))  # shown as `error: PATH: why`
