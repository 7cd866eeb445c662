"""plan, validate, fields and import write nothing under the repository but the lead file import was
asked to write and the state: caches, Describe answers and the emulator's database live in the user's
cache directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.inputs import cache

EXAMPLES = Path(__file__).resolve().parents[2] / "leads"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout


def snapshot(work: Path) -> tuple[str, frozenset[str]]:
    """git's view, ignored files included, and every path in the tree (git or not)."""
    paths = frozenset(path.relative_to(work).as_posix() for path in work.rglob("*") if ".git" not in path.parts)
    return git(work, "status", "--ignored", "--porcelain"), paths


def test_plan_validate_fields_and_import_write_only_what_they_are_asked_to(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)  # every cache layer writes
    work = tmp_path / "repo"
    (work / "leads").mkdir(parents=True)
    for name in ("customers.yaml", "partners.yml"):
        shutil.copy(EXAMPLES / name, work / "leads" / name)
    shutil.copy(Path(__file__).resolve().parents[2] / ".gitignore", work / ".gitignore")
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "leads")
    monkeypatch.chdir(work)
    before = snapshot(work)

    for args in (("plan",), ("plan",), ("plan", "--format", "markdown"), ("validate",),
                 ("fields", "--emulator"), ("fields", "--emulator")):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert snapshot(work) == before, args
    workspace = cache.workspace_dir(work / "reconcile.state.json", {})
    kept = {path.relative_to(workspace).parts[0] for path in workspace.rglob("*") if path.is_file()}
    assert {"leads", "plans", "describe", "emulator-db.json"} <= kept

    result = invoke("import", "--emulator", "--id", "1090238", "--out", "leads/legacy.yaml")
    assert result.exit_code == 0, result.stderr
    status, paths = snapshot(work)
    state = ("reconcile.state.json", "reconcile.state.d")  # the state: its top file and its shards
    new = paths - before[1]
    assert "leads/legacy.yaml" in new and "reconcile.state.json" in new
    assert all(path == "leads/legacy.yaml" or path.startswith(state) for path in new), new
    assert {line[3:].rstrip("/") for line in status.splitlines()} <= {"leads/legacy.yaml", *state}, status
