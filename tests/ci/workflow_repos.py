"""The repositories the workflow tests run against: the project's workflow files and action, a bare
`origin` holding lead files with a developer's clone that commits and pushes to it, the `git` used
to drive them, and the names the workflows are run with (repository, pull request, comment marker).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

from reconcile.store.state import lead_to_json, load_state

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PLAN_WORKFLOW = WORKFLOWS / "reconcile-plan.yml"
APPLY_WORKFLOW = WORKFLOWS / "reconcile-apply.yml"
ACTION = ROOT / "action.yml"
REPO = "acme/marketo-leads"
PR_NUMBER = 7
MARKER = "<!-- reconcile-plan -->"

LEADS = textwrap.dedent("""\
    leads:
      - email: ada@example.com
        attributes:
          Company: Analytical Engines
          FirstName: Ada
      - email: grace@example.com
        attributes: {Company: Navy, FirstName: Grace, PostalCode: 01234}
      - foreignSysPersonId: "A-1"
        foreignSysType: SFDC
        email: sam@example.com
        attributes: {LastName: Lee}
    """)

GIT_ENV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev",
           "GIT_COMMITTER_EMAIL": "dev@example.com", "GIT_CONFIG_NOSYSTEM": "1"}


# --------------------------------------------------------------------------------------------------
# An origin repository

# Fixtures: an origin repository, a fake `gh`, a runner


def git(*args: str, cwd: Path, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV, "HOME": str(cwd)})
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout


class Origin:
    """A bare `origin` and a developer's clone of it."""

    def __init__(self, base: Path, files: dict[str, str]):
        self.bare = base / "origin.git"
        self.clone = base / "dev"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare), cwd=base)
        git("clone", "--quiet", str(self.bare), str(self.clone), cwd=base)
        git("checkout", "--quiet", "-b", "main", cwd=self.clone)
        shutil.copytree(ROOT / "schemas", self.clone / "schemas")
        self.commit(files, "Initial lead files")

    def commit(self, files: dict[str, str | None], message: str, branch: str = "main") -> str:
        if git("rev-parse", "--abbrev-ref", "HEAD", cwd=self.clone, check=False).strip() != branch:
            exists = git("rev-parse", "--verify", "--quiet", branch, cwd=self.clone, check=False).strip()
            git("checkout", "--quiet", *([] if exists else ["-b"]), branch, cwd=self.clone)
        if git("ls-remote", "origin", f"refs/heads/{branch}", cwd=self.clone).strip():
            git("pull", "--quiet", "--rebase", "origin", branch, cwd=self.clone)
        for name, text in files.items():
            path = self.clone / name
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        git("add", "-A", cwd=self.clone)
        git("commit", "--quiet", "-m", message, cwd=self.clone)
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone).strip()

    def show(self, ref: str, path: str) -> str:
        return git("show", f"{ref}:{path}", cwd=self.bare)

    def state(self, ref: str, into: Path) -> dict:
        """The state committed at `ref` (its top file and shards), as {"leads": {key: fields}}."""
        into.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", ref], cwd=self.bare, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
        state = load_state(into / "reconcile.state.json")
        return {"leads": {key: lead_to_json(lead) for key, lead in state.leads.items()}}

    def log(self, ref: str = "main", fmt: str = "%an <%ae>%n%B%x00") -> list[str]:
        return [entry.strip() for entry in git("log", f"--format={fmt}", ref, cwd=self.bare).split("\x00")
                if entry.strip()]
