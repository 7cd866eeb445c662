"""Files and directories reconcile creates respect the user's umask: under `umask 077` nothing it
makes (the state, `.reconcile/` with its caches and the emulator's database, a lock) is readable by
other users. Modes are never widened by an explicit chmod or a fixed mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.emulator import Emulator, EmulatorConfig, create_database


@pytest.fixture
def private_umask():
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def widened(root: Path, skip: set[Path] = frozenset()) -> list[str]:
    """Everything under `root` (but `skip`) that group or others may read, write or enter."""
    found = []
    for path in sorted(root.rglob("*")):
        if path in skip or any(parent in skip for parent in path.parents):
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{oct(mode)} {path.relative_to(root)}")
    return found


def test_an_apply_against_the_emulator_creates_nothing_others_can_read(tmp_path: Path, monkeypatch,
                                                                       private_umask) -> None:
    work, user_cache = tmp_path / "work", tmp_path / "user-cache"
    work.mkdir()
    monkeypatch.chdir(work)
    leads = work / "leads"
    leads.mkdir()
    (leads / "a.yaml").write_text("leads:\n  - email: ada@example.com\n    attributes: {FirstName: Ada}\n")
    for args in (("plan",), ("apply", "--emulator", "--auto-approve"),
                 ("apply", "--emulator", "--auto-approve", "--api", "rest")):
        result = invoke(*args, environ={"RECONCILE_CACHE_DIR": str(user_cache)})
        assert result.exit_code == 0, result.stderr
    made = {path.relative_to(work).parts[0] for path in work.iterdir()}
    assert {"reconcile.state.json", "reconcile.state.d"} <= made
    assert list(user_cache.glob("workspaces/*/emulator-db.json")), "the emulator's database is in the user cache"
    assert widened(tmp_path, skip={leads}) == []


def test_the_emulator_database_respects_the_umask(tmp_path: Path, private_umask) -> None:
    created = tmp_path / "new" / "seeded.json"
    created.parent.mkdir()
    assert create_database(created)
    with Emulator(EmulatorConfig(db_path=tmp_path / "db" / "leads.json")) as emulator:
        with emulator.store.transaction() as tx:
            tx.set_email(tx.create(), "ada@example.com")
    assert (tmp_path / "db").is_dir() and list((tmp_path / "db").iterdir())
    assert widened(tmp_path) == []
