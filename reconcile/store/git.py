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
